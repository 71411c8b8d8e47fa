"""Shared fixtures: one real `dvc repro` of the smoke profile for the whole session, and the
kill-anywhere run checked against it, both made in a background thread.

The two smoke DAGs (the reference run and the chaos run, ``bpkd.devtools.chaos``) are
mostly single-threaded work (interpreter and library start-up, DVC's bookkeeping), so
they run beside the tests that do not need them: those run first, then the tests that
read the reference run (the first waits for it) while the chaos run goes on, and last
the test that checks the chaos run (``pytest_collection_modifyitems``). The background
starts only when a selected test needs it.
"""
import hashlib
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

# One OpenMP thread per process, in this process (set before torch loads) and in every
# process a test or the background starts: with the background's stages beside the
# tests' own, two-thread processes would share 2 cores, and OpenMP's spinning threads
# then wait seconds per step for each other (measured: the smoke DAG took 13 min instead
# of 4.4). A test that needs two threads sets them itself (test_vml_warmup.py).
os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402

from bpkd.devtools import chaos  # noqa: E402
from bpkd.devtools.scratch import GIT_ENV, REPO, copy_repo, run, tool_env  # noqa: F401  (used by the tests)

# Fixtures that need the reference run, or the chaos run after it.
SMOKE_FIXTURES = {"smoke_repo", "smoke_copy", "smoke_durations", "chaos_result"}


def _fingerprint(repo: Path) -> tuple:
    """What a test that only reads the shared smoke repo must leave as it was: the git
    commit, the work tree's changes against it, params.yaml and dvc.lock."""
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    changes = run(["git", "status", "--porcelain"], repo).stdout
    files = {name: hashlib.sha256((repo / name).read_bytes()).hexdigest() for name in ("params.yaml", "dvc.lock")}
    return head, changes, files


class SmokeRuns(threading.Thread):
    """The reference smoke run (a real `dvc repro` in a copy of the work tree), then, if
    asked, the kill-anywhere check against it (its own copy, SIGKILLed inside every stage
    kind and rerun; its kills are planned on the reference run's stage times)."""

    def __init__(self, root: Path, with_chaos: bool):
        super().__init__(name="smoke-runs", daemon=True)
        self.root, self.with_chaos = root, with_chaos
        self.reference_done, self.chaos_done = threading.Event(), threading.Event()
        self.reference = self.chaos = self.error = None
        self.log: list[str] = []  # the chaos check's progress lines (kept out of the tests' output)
        # The environment as the session starts: a test's monkeypatch.setenv (a hand-written
        # cpuinfo, say) must not reach the stages started meanwhile in the background.
        self.env = tool_env()

    def run(self):
        try:
            repo = copy_repo(self.root / "smoke")
            durations, log = chaos.timed_repro(repo, self.env)
            (repo / "repro.log").write_text(log)
            self.reference = (repo, _fingerprint(repo), durations)
            self.reference_done.set()
            if self.with_chaos:
                self.chaos = chaos.check(self.root, seed=0, profile="smoke", straight=repo, durations=durations,
                                         log=self.log.append, env=self.env)
        except BaseException as exc:  # re-raised in the test that waits for it
            self.error = exc
        finally:
            self.reference_done.set()
            self.chaos_done.set()

    def wait(self, event: threading.Event):
        event.wait()
        if self.error is not None:
            raise RuntimeError(f"the background smoke run failed: {self.error}") from self.error


_RUNS: SmokeRuns | None = None


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected
def pytest_collection_modifyitems(config, items):
    """Tests of the shared smoke run after the others, the one that waits for the chaos run
    last (stable order otherwise), and the background started."""
    global _RUNS

    def phase(item) -> int:
        names = set(item.fixturenames)
        return 2 if "chaos_result" in names else 1 if SMOKE_FIXTURES & names else 0

    items.sort(key=phase)
    needed = set().union(*(set(item.fixturenames) for item in items)) if items else set()
    if SMOKE_FIXTURES & needed and not config.option.collectonly:
        _RUNS = SmokeRuns(scratch_folder("bpkd-smoke-"), with_chaos="chaos_result" in needed)
        _RUNS.start()


# The session's scratch folders (the smoke runs' copies: ~1.5 GB), removed when it ends:
# normally, on Ctrl-C (pytest's KeyboardInterrupt) and on SIGTERM (what `timeout` and
# CI runners send, which would otherwise end the process with no cleanup at all).
_SCRATCH: list[Path] = []


def scratch_folder(prefix: str) -> Path:
    """A new folder in the system's temporary directory that this session removes as it ends."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    _SCRATCH.append(folder)
    return folder


def _stop_and_clean() -> None:
    # The `dvc repro`s run in sessions of their own (bpkd.devtools.chaos), so no signal
    # sent to this process reaches them; killed again until the background ends, as the
    # chaos run may start its next repro after a kill.
    chaos.stop_all()
    deadline = time.monotonic() + 30
    while _RUNS is not None and _RUNS.is_alive() and time.monotonic() < deadline:
        chaos.stop_all()
        _RUNS.join(timeout=0.5)
    for folder in _SCRATCH:
        shutil.rmtree(folder, ignore_errors=True)


def _on_sigterm(signum, frame):
    _stop_and_clean()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # ends with the signal's own status, as without the handler


_PREVIOUS_SIGTERM = pytest.StashKey()


def pytest_configure(config):
    config.stash[_PREVIOUS_SIGTERM] = signal.signal(signal.SIGTERM, _on_sigterm)


def pytest_unconfigure(config):
    signal.signal(signal.SIGTERM, config.stash[_PREVIOUS_SIGTERM])


def pytest_sessionfinish(session):
    _stop_and_clean()


@pytest.fixture(scope="session")
def _smoke_reproduced() -> tuple[Path, tuple, dict]:
    """The reference smoke run: the repo, its fingerprint and each stage's run time."""
    _RUNS.wait(_RUNS.reference_done)
    repo = _RUNS.reference[0]
    yield _RUNS.reference
    # At the end of the session: every stage still up to date, i.e. no test changed an
    # output, a dependency or a param of the shared copy behind DVC's back.
    _RUNS.wait(_RUNS.chaos_done)  # the chaos run reads the reference to the end
    status = run(["dvc", "status"], repo).stdout
    assert "up to date" in status, f"a test changed the shared smoke repo:\n{status}"


@pytest.fixture
def smoke_repo(_smoke_reproduced) -> Path:
    """The shared, reproduced smoke repo, read only: a test that changes it fails here
    (a test that needs to change it takes ``smoke_copy``), so no test depends on the
    order in which the others ran."""
    repo, fingerprint, _ = _smoke_reproduced
    yield repo
    assert _fingerprint(repo) == fingerprint, "this test changed the shared smoke repo; use smoke_copy"


@pytest.fixture
def smoke_durations(_smoke_reproduced) -> dict[str, float]:
    """``{stage: seconds}`` of the shared smoke run, in the order DVC ran them."""
    return _smoke_reproduced[2]


@pytest.fixture
def chaos_result(_smoke_reproduced) -> dict:
    """:func:`bpkd.devtools.chaos.check`'s result against the shared smoke run."""
    _RUNS.wait(_RUNS.chaos_done)
    return dict(_RUNS.chaos, log=list(_RUNS.log))


def _link_or_copy(src: str, dst: str) -> None:
    # DVC's cache files are read-only and never rewritten in place: a hard link shares them.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture
def smoke_copy(_smoke_reproduced, tmp_path) -> Path:
    """A private copy of the reproduced smoke repo (git, DVC cache, outputs, dvc.lock),
    already up to date, for a test that changes params, runs experiments or reruns stages."""
    repo = _smoke_reproduced[0]
    dst = tmp_path / "smoke"
    cache = repo / ".dvc" / "cache"
    shutil.copytree(repo, dst, symlinks=True,
                    ignore=lambda folder, names: ["cache"] if Path(folder) == cache.parent else [])
    shutil.copytree(cache, dst / ".dvc" / "cache", copy_function=_link_or_copy)
    return dst


# The suite's budget on the slowest host class (AMD EPYC, AVX2 only, 2 cores):
# docs/development.md, "The test suite". Reported, not asserted: a timing is not a test.
BUDGET_MINUTES = 15
_STARTED = time.monotonic()


@pytest.hookimpl(trylast=True)  # after the durations table
def pytest_terminal_summary(terminalreporter):
    minutes = (time.monotonic() - _STARTED) / 60
    over = minutes > BUDGET_MINUTES
    terminalreporter.write_line(f"suite wall time {minutes:.1f} min; budget {BUDGET_MINUTES} min on the AVX2-only "
                                f"class{' -- OVER BUDGET: see the slowest durations above' if over else ''}",
                                yellow=over)
