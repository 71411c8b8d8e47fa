from pathlib import Path

import pytest

from bpkd.devtools.scratch import GIT_ENV, REPO, copy_repo, run, tool_env  # noqa: F401  (used by the tests)


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory) -> Path:
    """The smoke profile reproduced once with a real `dvc repro` (shared by tests)."""
    repo = copy_repo(tmp_path_factory.mktemp("smoke"))
    proc = run(["dvc", "repro"], repo)
    (repo / "repro.log").write_text(proc.stdout + proc.stderr)
    return repo
