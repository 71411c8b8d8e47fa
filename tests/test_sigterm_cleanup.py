"""A test session stopped by SIGTERM (what `timeout` and CI runners send) ends its background
`dvc repro`s and removes its scratch folders, as after Ctrl-C, and ends with SIGTERM's status
(tests/conftest.py; issue 43).

A pytest session of its own runs a tiny test that makes a scratch folder the way the smoke
runs make theirs (``scratch_folder``) and starts a real `dvc repro` in it the way they do
(``bpkd.devtools.chaos``, in a process session of its own) whose stage sleeps; the session
is sent SIGTERM while the stage runs. No smoke DAG runs here.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO

TINY_TEST = '''
from pathlib import Path

from bpkd.devtools import chaos
from conftest import run, scratch_folder


def test_a_dvc_repro_in_a_scratch_folder():
    repo = scratch_folder("bpkd-sigterm-")
    (repo / "dvc.yaml").write_text(
        "stages:\\n"
        "  sleep:\\n"
        "    cmd: echo \\"$$ $PWD\\" > {started}; exec sleep 300\\n")
    run(["dvc", "init", "--no-scm", "-q"], repo)
    chaos.timed_repro(repo)  # returns only when the stage ends: the session is stopped first
'''


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left to reap


def test_sigterm_stops_the_background_dvc_runs_and_removes_the_scratch_folders(tmp_path):
    started = tmp_path / "started"
    (tmp_path / "test_tiny.py").write_text(TINY_TEST.format(started=started))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "tests"),
                                                                     os.environ.get("PYTHONPATH")])))
    # tests/conftest.py loaded as a plugin: the session's hooks and scratch folders are its.
    session = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                                "test_tiny.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    stage_pid, folder = None, None
    try:
        deadline = time.monotonic() + 60
        while not (started.is_file() and started.read_text().endswith("\n")):
            assert session.poll() is None, f"the tiny session ended before its stage ran:\n{session.stdout.read()}"
            assert time.monotonic() < deadline, "the tiny session's stage did not start within 60 s"
            time.sleep(0.1)
        pid, cwd = started.read_text().split()
        stage_pid, folder = int(pid), Path(cwd)
        assert folder.name.startswith("bpkd-sigterm-") and folder.is_dir() and _alive(stage_pid)

        session.send_signal(signal.SIGTERM)
        out = session.communicate(timeout=60)[0]
        assert session.returncode == -signal.SIGTERM, out  # ended by the signal, as `timeout` expects
        assert not folder.exists(), "the scratch folder outlived the session"
        end = time.monotonic() + 5  # SIGKILLed with its `dvc repro`'s process group
        while _alive(stage_pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert not _alive(stage_pid), "the stage of the background `dvc repro` outlived the session"
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
        if stage_pid is not None and _alive(stage_pid):  # and its `dvc repro`: it would write there again
            os.killpg(os.getpgid(stage_pid), signal.SIGKILL)
        if folder is not None and folder.exists():
            subprocess.run(["rm", "-rf", str(folder)], check=False)
