"""Keep the DAG picture of ``docs/dag.md`` equal to ``dvc dag --mermaid`` (``make docs-dag``).

The page's block between ``<!-- dag:start -->`` and ``<!-- dag:end -->`` is a
```` ```mermaid ```` fence holding DVC's own output, so the picture is regenerated,
never hand-drawn, and follows every new stage or matrix entry of ``dvc.yaml`` /
``params.yaml``. ``tests/test_docs.py`` compares it with the live output.

    python -m bpkd.devtools.dag_doc [--check] [--doc docs/dag.md] [--repo .]

Without ``--check`` the block is rewritten (atomically); with it nothing is written
and the exit code is 1 when the page is stale, with the command that fixes it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ..atomic import write_text
from .scratch import REPO, tool_env

START, END = "<!-- dag:start -->", "<!-- dag:end -->"
DOC = Path("docs/dag.md")


def live(repo: Path = REPO) -> str:
    """``dvc dag --mermaid`` of ``repo``, trailing whitespace stripped (the venv's dvc first on PATH)."""
    proc = subprocess.run(["dvc", "dag", "--mermaid"], cwd=repo, env=tool_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc dag --mermaid failed ({proc.returncode}) in {repo}:\n{proc.stderr[-2000:]}")
    return proc.stdout.rstrip()


def block(mermaid: str) -> str:
    """The text that goes between the markers."""
    return f"```mermaid\n{mermaid}\n```"


def _split(text: str, path: Path) -> tuple[str, str, str]:
    i, j = text.find(START), text.find(END)
    if i < 0 or j < i:
        raise ValueError(f"{path}: expected a '{START}' line followed by a '{END}' line")
    return text[:i + len(START)], text[i + len(START):j], text[j:]


def check(repo: Path = REPO, doc: Path = DOC) -> str | None:
    """None when ``doc``'s block equals the live DAG, else a message saying how to fix it."""
    path = repo / doc
    _, current, _ = _split(path.read_text(), path)
    if current.strip() == block(live(repo)):
        return None
    return (f"{doc} does not show the current DAG (dvc dag --mermaid changed); "
            f"run `make docs-dag` (python -m bpkd.devtools.dag_doc) and commit the page")


def rewrite(repo: Path = REPO, doc: Path = DOC) -> bool:
    """Rewrite ``doc``'s block from the live DAG; True when the file changed."""
    path = repo / doc
    text = path.read_text()
    head, _, tail = _split(text, path)
    new = f"{head}\n{block(live(repo))}\n{tail}"
    if new == text:
        return False
    write_text(path, new)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the page differs; write nothing")
    ap.add_argument("--repo", type=Path, default=Path.cwd(), help="the repository (default: the current directory)")
    ap.add_argument("--doc", type=Path, default=DOC, help="the page, relative to --repo")
    args = ap.parse_args(argv)
    if args.check:
        message = check(args.repo, args.doc)
        if message:
            print(message, file=sys.stderr)
            return 1
        print(f"{args.doc}: up to date")
        return 0
    print(f"{args.doc}: {'rewritten' if rewrite(args.repo, args.doc) else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
