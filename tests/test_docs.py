"""README.md and docs/: every relative link and image resolves in a fresh clone, every
anchor names a heading, README stays a short user's guide, and the DAG picture is the
live `dvc dag --mermaid` (issue #24)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bpkd.devtools import dag_doc
from bpkd.devtools.scratch import REPO, tool_env

README_MAX_LINES = 250
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`]*`")
# [text](target) and ![alt](target), with an optional "title"; the text may hold brackets
# of its own only as code, which is removed first.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
EXTERNAL = ("http://", "https://", "mailto:")


def prose(text: str) -> str:
    """The Markdown without fenced blocks and code spans, where nothing is a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lower-cased, punctuation dropped
    (letters, digits, `_`, `-` and spaces kept), spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in ``path``; a repeated slug gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def shipped() -> set[str]:
    """Paths a fresh clone has once the work tree is committed: git's tracked files and the
    new ones not ignored (the docs pages themselves may not be added yet). A link into
    an ignored or DVC-managed output (data/models, data/qualitative) is not in a clone."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {name for name in out.split("\0") if name and (REPO / name).exists()}


def broken_links(page: Path, files: set[str], text: str | None = None) -> list[str]:
    """What is wrong with each relative link of ``page`` (or of ``text`` read as if it were
    ``page``), one message per link."""
    problems = []
    for target in LINK.findall(prose(page.read_text() if text is None else text)):
        if target.startswith(EXTERNAL):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        try:
            rel = dest.relative_to(REPO).as_posix()
        except ValueError:
            problems.append(f"{target}: outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{target}: {rel} does not exist")
        elif dest.is_file() and rel not in files:
            problems.append(f"{target}: {rel} is not tracked by git (a fresh clone lacks it)")
        elif dest.is_dir() and not any(f.startswith(rel.rstrip("/") + "/") or rel == "." for f in files):
            problems.append(f"{target}: {rel}/ holds no tracked file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading of {rel} has the anchor #{anchor}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_and_image_resolves(page):
    assert broken_links(page, shipped()) == []


def test_the_link_check_sees_links_images_and_anchors():
    # The check itself, on a page of docs/: one good link, three broken ones, one in code.
    text = ("[ok](../README.md#results) ![img](../metrics/figures/nope.png) "
            "[gone](nothere.md) [anchor](methods.md#no-such-heading) `[code](ignored.md)`\n")
    problems = broken_links(REPO / "docs" / "dag.md", shipped(), text)
    assert [p.split(": ")[0] for p in problems] == ["../metrics/figures/nope.png", "nothere.md",
                                                    "methods.md#no-such-heading"], problems


def test_readme_is_a_short_users_guide():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines, the budget is {README_MAX_LINES}: move detail to a docs/ page")


@pytest.mark.parametrize("page", PAGES[1:], ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_docs_page_says_what_it_answers(page):
    # The title, then two lines on what the page answers, so a reader knows at once
    # whether this is the page they need.
    paragraphs = [p for p in page.read_text().split("\n\n") if p.strip()]
    assert paragraphs[0].startswith("# "), page
    assert paragraphs[1].startswith("What this page answers:") and len(paragraphs[1].splitlines()) <= 2, page


def shared_titles(pages: dict[str, str]) -> dict[str, list[str]]:
    """Titles that more than one page starts with: the part of each `# title` before its
    first colon, which is also what links to the page call it."""
    seen: dict[str, list[str]] = {}
    for name, text in pages.items():
        head = text.split("\n", 1)[0].lstrip("#").split(":")[0].strip().lower()
        seen.setdefault(head, []).append(name)
    return {head: names for head, names in seen.items() if len(names) > 1}


def test_no_two_docs_pages_share_a_title():
    assert shared_titles({p.relative_to(REPO).as_posix(): p.read_text() for p in PAGES[1:]}) == {}


def test_the_title_check_sees_a_shared_title():
    pages = {"a.md": "# BPKD on the demo: one\n", "b.md": "# BPKD on the demo: two\n", "c.md": "# Other\n"}
    assert shared_titles(pages) == {"bpkd on the demo": ["a.md", "b.md"]}


@pytest.mark.skipif(shutil.which("dvc", path=tool_env()["PATH"]) is None, reason="dvc is not on PATH")
def test_the_dag_picture_is_the_live_dag():
    assert dag_doc.check(REPO) is None
