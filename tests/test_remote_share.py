"""Sharing trained models through a DVC remote (docs/distributed.md, "Sharing trained models
through a DVC remote"; issue 43): the reproduced smoke run is pushed to a local-directory
remote, committed, cloned and pulled, and the clone's `dvc repro` trains and evaluates nothing.

What a clone lacks after `dvc pull` is what neither git nor the remote holds, an output
declared `cache: false` that git ignores; that is data/prepared/<dataset> alone (a real dataset
is links to the raw files each user places under their licence; the synthetic set is
regenerated, byte for byte, in seconds). Every other uncached output is git's (metrics/, README).
"""
import hashlib
import re

import yaml

from conftest import run

SYNTHETIC = "data/prepared/synthetic"


def _digests(repo, folders=("data/models", "data/methods", "data/qualitative")) -> dict[str, str]:
    return {path.relative_to(repo).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
            for folder in folders for path in sorted((repo / folder).rglob("*")) if path.is_file()}


def _ran(log: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", log, re.M)


def _changed_paths(status: str) -> set[str]:
    """The paths `dvc status` reports as deleted, modified, new or not in cache."""
    return set(re.findall(r"^\s+(?:deleted|modified|new|not in cache):\s+(\S+)", status, re.M))


def test_a_clone_pulls_the_pushed_models_and_reproduces_nothing(smoke_copy, tmp_path):
    remote, clone = tmp_path / "remote", tmp_path / "clone"
    # The team's side: a shared remote (here a folder), the run pushed to it, its config,
    # dvc.lock and metrics committed.
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], smoke_copy)
    pushed = run(["dvc", "push"], smoke_copy).stdout
    assert re.search(r"\d+ files? pushed", pushed), pushed
    run(["git", "add", "-A"], smoke_copy)
    run(["git", "commit", "-qm", "the smoke run, its models on the shared remote"], smoke_copy)

    # A teammate's (or a reader's) side: clone, pull.
    run(["git", "clone", "-q", str(smoke_copy), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    assert _digests(clone) == _digests(smoke_copy) and any(p.endswith("teacher.pth") for p in _digests(clone))
    # Only the synthetic set is missing (not pushed: regenerated); no model, no metric.
    assert _changed_paths(run(["dvc", "status"], clone).stdout) == {SYNTHETIC}
    assert not (clone / SYNTHETIC).exists()

    # Nothing reruns: with --allow-missing no stage at all; a plain repro regenerates the
    # synthetic set alone, byte for byte what dvc.lock records, so no stage after it runs.
    assert _ran(run(["dvc", "repro", "--allow-missing"], clone).stdout) == []
    log = run(["dvc", "repro"], clone).stdout
    assert _ran(log) == ["prepare@synthetic"], log
    unchanged = set(re.findall(r"^Stage '([^']+)' didn't change, skipping$", log, re.M))
    assert unchanged == set(yaml.safe_load((clone / "dvc.lock").read_text())["stages"]) - {"prepare@synthetic"}, log
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone).stdout
    assert _digests(clone) == _digests(smoke_copy)
