"""A scratch git + DVC copy of this repository, to run the pipeline without touching
the working tree (tests, ``python -m bpkd.devtools.chaos``, ``python -m bpkd.devtools.check``)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
GIT_ENV = {"GIT_AUTHOR_NAME": "bpkd", "GIT_AUTHOR_EMAIL": "bpkd@localhost", "GIT_COMMITTER_NAME": "bpkd",
           "GIT_COMMITTER_EMAIL": "bpkd@localhost"}


def tool_env() -> dict:
    """Environment in which `dvc` and `python` are this interpreter's (the .venv)."""
    env = dict(os.environ, **GIT_ENV)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _in_snapshot(src: Path, name: str) -> bool:
    """``name`` lies in a study snapshot (bpkd.study.seeded.snapshot): metrics/studies/<study>/<point>/…"""
    parts = Path(name).parts
    return len(parts) > 4 and parts[:2] == ("metrics", "studies") and (src.joinpath(*parts[:4]) / "study.json").is_file()


def copy_repo(dst: Path, profile: str = "smoke", src: Path = REPO, untracked: bool = True) -> Path:
    """A fresh git+DVC copy of ``src``'s files as they are in the working tree (without
    ``dvc.lock`` and ``metrics/``, which the copy regenerates, but with the committed
    study snapshots, ``metrics/studies/<study>/<point>/`` with a ``study.json``, which no
    stage writes and the report reads), with ``profile`` selected.
    The files are git's tracked ones and, with ``untracked``, the new ones not yet added
    (``git ls-files --others --exclude-standard``: nothing .gitignore'd), so that a module
    about to be committed is part of the copy the pipeline runs in."""
    listing = ["git", "ls-files", "-z", *(["--cached", "--others", "--exclude-standard"] if untracked else [])]
    files = subprocess.run(listing, cwd=src, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in sorted(set(filter(None, files))):
        if ((name.startswith(("metrics/", "dvc.lock")) and not _in_snapshot(src, name))
                or not (src / name).is_file()):  # deleted, not yet staged
            continue
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / name, target)
    params = dst / "params.yaml"
    params.write_text(params.read_text().replace("profile: demo", f"profile: {profile}", 1))
    run(["git", "init", "-q"], dst)
    run(["git", "add", "-A"], dst)
    run(["git", "commit", "-qm", "copy"], dst)
    return dst
