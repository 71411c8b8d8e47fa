"""`make check` (python -m bpkd.devtools.check): every stage in a scratch copy.

Cheap by design: the check's function runs on a copy of the session's reproduced
smoke repo (`smoke_copy`: its `dvc repro` runs no stage, and the check's log lands in
the copy); no second smoke DAG runs for this file.
"""
import hashlib
import subprocess
import sys

import yaml

from bpkd.devtools import check

from conftest import REPO


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


# Taken at collection, before any fixture reproduced a scratch copy.
WORK_TREE_LOCK = _digest(REPO / "dvc.lock")


def test_help_names_the_make_target_and_keep():
    out = subprocess.run([sys.executable, "-m", "bpkd.devtools.check", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "make check" in out and "--keep" in out and "smoke" in out


def test_check_of_the_smoke_copy_finds_every_stage_recorded_and_its_tables(smoke_copy):
    lines = []
    result = check.check(smoke_copy, echo=lines.append)
    assert result.ok, (result.missing, result.status)
    assert not [line for line in lines if "Running stage" in line]  # the fixture ran them all
    # Every generated stage: the baseline and its evaluation at the three default baseline_seeds.
    for seed in (0, 1, 2):
        assert f"baseline@synthetic-hrnet_w48_w18s-{seed}" in result.stages
        assert f"evaluate_baseline@synthetic-hrnet_w48_w18s-{seed}" in result.stages
    assert "evaluate@synthetic-hrnet_w48_w18s-bpkd-0" in result.stages and len(result.stages) == 29
    assert "| S: HRNetV2P-W18S" in result.tables and "(n=3)" in result.tables
    # The scratch copy's runs left the work tree's dvc.lock as it was.
    assert _digest(REPO / "dvc.lock") == WORK_TREE_LOCK


def test_a_stage_the_lock_does_not_record_fails_the_check(smoke_repo):
    lock = yaml.safe_load((smoke_repo / "dvc.lock").read_text())
    stages = list(lock["stages"])
    assert check.unrecorded(stages, lock) == []
    del lock["stages"]["evaluate_baseline@synthetic-hrnet_w48_w18s-2"]  # e.g. a repro that stopped before it
    assert check.unrecorded(stages, lock) == ["evaluate_baseline@synthetic-hrnet_w48_w18s-2"]
    assert check.unrecorded(stages, None) == stages  # no lock at all: nothing ran
    result = check.Result(repo=smoke_repo, stages=stages, missing=["report"], status="up to date", tables="| x |")
    assert not result.ok
