"""README's commands run as written from a plain shell (issue #43).

README states once, in "The commands", how its commands run: `make` targets from any
shell, everything else after `source .venv/bin/activate`. This test takes every command
of README's fenced blocks and runs its executable the way README says, in a shell whose
PATH is the system's (no venv, no pyenv shims), after that setup line: `make -n <target>`,
`dvc <subcommand> --help`, `python <script or -m module> --help`, `command -v` for
anything else. test_docs_truth.py checks the flags each stage script and module takes;
this one checks that a reader's shell finds what the page tells it to run.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import pytest

from bpkd.devtools.scratch import REPO
from test_docs_truth import EXCERPT, GENERATED, commands, fenced_blocks

README = REPO / "README.md"
SETUP = "source .venv/bin/activate"
# A login shell's PATH with nothing of this project's or of the developer's Python on it.
PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"
# dvc's command groups: their second word names the command (`dvc exp run`, `dvc metrics diff`).
DVC_GROUPS = {"exp", "metrics", "params", "plots", "remote", "stage", "queue", "cache", "config"}


def check_of(cmd: str) -> str | None:
    """The shell line that shows ``cmd``'s executable runs as written, None for the setup line."""
    argv = shlex.split(cmd)
    exe = argv[0]
    if cmd == SETUP:
        return None
    if exe == "make":
        return shlex.join(["make", "-n", *argv[1:]])
    if exe == "dvc":
        words = argv[1:3] if len(argv) > 2 and argv[1] in DVC_GROUPS else argv[1:2]
        return shlex.join(["dvc", *words, "--help"])
    if exe in ("python", "python3"):
        target = argv[1:3] if argv[1] == "-m" else argv[1:2]
        return shlex.join([exe, *target, "--help"])
    return f"command -v {shlex.quote(exe)}"


def typed(block: str) -> list[str]:
    """What a reader types from a fenced block: every command, or in a transcript marked
    `# excerpt` only its `$ ` lines (the rest is what the command printed)."""
    lines = block.split("\n")
    if any(line.strip() == EXCERPT for line in lines):
        block = "\n".join([lines[0], *(line for line in lines[1:-1] if line.startswith("$ ")), lines[-1]])
    return commands(block)


def failures(readme_text: str) -> list[str]:
    """Each check that fails in a plain shell after the page's own setup line (when the page
    has one), with what it printed; all checks run in one shell."""
    cmds = [c for block in fenced_blocks(GENERATED.sub("", readme_text)) for c in typed(block)]
    checks = list(dict.fromkeys(c for c in map(check_of, cmds) if c))
    assert checks, "README shows no command"
    script = ["cd " + shlex.quote(str(REPO))]
    if SETUP in cmds:
        script.append(SETUP)
    for check in checks:
        script.append(f"out=$({check} 2>&1 >/dev/null) || printf '%s\\n' {shlex.quote('FAILED: ' + check)} \"$out\"")
    env = {"PATH": PLAIN_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-c", "\n".join(script)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line.startswith("FAILED: ")]


def test_readme_states_the_setup_line_before_its_first_command():
    text = README.read_text()
    first = fenced_blocks(GENERATED.sub("", text))[0]
    assert SETUP in commands(first), f"README's first command block does not show `{SETUP}`"


def test_every_readme_command_runs_from_a_plain_shell_after_the_setup_line():
    assert failures(README.read_text()) == []


@pytest.mark.skipif(shutil.which("dvc", path=PLAIN_PATH) is not None, reason="dvc is installed outside the venv")
def test_the_check_sees_a_page_without_the_setup_line():
    page = "```\nmake venv\ndvc repro\npython -m bpkd.study list\nmake no-such-target\n```\n"
    assert failures(page) == ["FAILED: dvc repro --help", "FAILED: python -m bpkd.study --help",
                              "FAILED: make -n no-such-target"]
