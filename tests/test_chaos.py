"""Kill anywhere (``bpkd.devtools.chaos``, ``make chaos``): a copy of the shared smoke run's
sources reproduced again from scratch, SIGKILLed inside every kind of stage (two kills
aimed at the teacher's checkpoint and export writes) and rerun after each kill, ends
with the shared run's ``dvc.lock``: every output, models and step logs included, md5 for
md5. This is also the suite's check that every stage reproduces bit for bit on CPU."""
import json

import yaml

from bpkd.devtools import chaos


def test_the_dag_killed_inside_every_stage_kind_ends_where_the_uninterrupted_run_ends(smoke_repo, smoke_durations,
                                                                                       chaos_result):
    # The smoke profile's students cross a checkpoint (iteration 2 of 3) and a mid-run
    # validation (iterations 2 and 3), where the demo's CWD once drifted, and log every
    # iteration: their rerun must match there too.
    smoke = yaml.safe_load((smoke_repo / "params.yaml").read_text())["profiles"]["smoke"]
    iters, train = smoke["student"]["iters"], smoke["train"]
    assert train["checkpoint_interval"] < iters and smoke["student"]["val_interval"] < iters
    assert train["log_interval"] == 1
    kinds = {chaos.kind(s) for s in smoke_durations}
    assert kinds == {"prepare", "teacher", "baseline", "method", "distill", "evaluate", "evaluate_baseline",
                     "evaluate_teacher", "complexity", "charts", "qualitative", "boundary", "report"}
    result = chaos_result  # made in the background beside the other tests (conftest.py)
    print("\n".join(result["log"]))
    print(json.dumps({k: v for k, v in result.items() if k not in ("events", "log")}))
    assert result["kills"] == result["planned"] == len(kinds) + 1, result["log"]
    assert result["kinds_hit"] == sorted(kinds), result["log"]
    assert result["lock_identical"] and not result["differing_outputs"], result["differing_outputs"]
    # Every output of every stage (models, step logs, metrics, figures, README) md5 for md5.
    assert result["outputs"] > 60 and not result["leftovers"] and result["dvc_status_clean"]
    assert result["passed"]


def test_the_plan_kills_once_inside_the_first_stage_of_each_kind():
    durations = {"prepare@synthetic": 4.0, "teacher@synthetic-p": 19.0, "baseline@synthetic-p-0": 10.0,
                 "baseline@synthetic-p-1": 10.0, "method@skds": 4.0, "method@cwd": 4.0, "report": 8.0}
    kills = chaos.plan(durations, seed=3)
    assert [(k.aim, k.stage) for k in kills] == [(None, "prepare@synthetic"), ("checkpoint", None), ("export", None),
                                                 (None, "baseline@synthetic-p-0"), (None, "method@skds"),
                                                 (None, "report")]
    for k in kills[:1] + kills[3:]:
        assert 0.2 * durations[k.stage] <= k.delay <= 0.6 * durations[k.stage]
    assert chaos.plan(durations, seed=3) == kills and chaos.plan(durations, seed=4) != kills


def test_half_written_outputs_and_work_dirs_are_leftovers(tmp_path):
    (tmp_path / "data/models/synthetic").mkdir(parents=True)
    (tmp_path / "metrics/eval").mkdir(parents=True)
    (tmp_path / "data/models/synthetic/bpkd.pth").write_bytes(b"done")  # a finished output: fine
    assert chaos.leftovers(tmp_path) == []
    (tmp_path / "data/models/synthetic/.bpkd.pth.tmp-41").write_bytes(b"half")  # killed mid-export
    (tmp_path / "metrics/eval/.bpkd.json.old-7").write_text("{}")  # killed mid-replace
    (tmp_path / "data/weights.pth.part").write_bytes(b"partial download")
    (tmp_path / "data/work/x").mkdir(parents=True)
    (tmp_path / "data/work/x/iter_2.pth").write_bytes(b"resume point")  # never cleaned up
    assert chaos.leftovers(tmp_path) == ["data/models/synthetic/.bpkd.pth.tmp-41", "data/weights.pth.part",
                                         "data/work/x/iter_2.pth", "metrics/eval/.bpkd.json.old-7"]


def test_the_comparison_leaves_timings_out_and_masks_only_the_train_time_cells(tmp_path):
    """Cost records differ in every run (timings): the comparison drops them, and compares
    the report's tables with their train-time cells masked, nothing else."""
    def lock(wall_md5, readme_md5):
        return {"schema": "2.0", "stages": {
            "baseline@s-p-0": {"cmd": "c", "deps": [{"path": "src", "md5": "a"}],
                               "outs": [{"path": "data/m.pth", "md5": "m"},
                                        {"path": "metrics/cost/s/p/seed0/baseline.json", "md5": wall_md5}]},
            "report": {"cmd": "r", "deps": [{"path": "metrics/cost", "md5": wall_md5 + ".dir"}],
                       "outs": [{"path": "README.md", "md5": readme_md5}]}}}

    assert chaos.without_timings(lock("w1", "r1")) == chaos.without_timings(lock("w2", "r2"))
    assert chaos.without_timings(lock("w1", "r1"))["stages"]["baseline@s-p-0"]["outs"] == [
        {"path": "data/m.pth", "md5": "m"}]
    a, b = tmp_path / "a", tmp_path / "b"
    for root, cost, score in ((a, "2.41×", "44.67"), (b, "2.38×", "44.67")):
        (root / "metrics").mkdir(parents=True)
        (root / "README.md").write_text(f"| BPKD | {score} | {cost} |\n")
        (root / "metrics" / "tables.md").write_text(f"| BPKD | {score} | {cost} |\n")
    assert chaos.timed_differ(a, b) == []
    (b / "README.md").write_text("| BPKD | 44.68 | 2.38× |\n")  # a score that differs is still caught
    assert chaos.timed_differ(a, b) == ["README.md"]


def test_a_kill_aimed_at_a_stage_that_ends_first_is_tried_again_on_that_stage_alone(tmp_path):
    """Stage times vary between runs (a busy host): a stage that ends before its planned
    moment is rerun alone (``dvc repro -f -s``) with half the delay, until the kill lands
    inside it; the kill that fell in the next stage's start is not counted as a hit."""
    from bpkd.devtools.scratch import run

    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  quick:\n    cmd: sleep 1.5 && echo a > a.txt\n    outs: [a.txt]\n"
        "  next:\n    cmd: sleep 30 && cat a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n")
    events = chaos.kill_inside(tmp_path, chaos.Kill(stage="quick", delay=6.0), log=lambda line: None)
    # 6 s: quick ends first, the kill falls at next's start; 3 s alone: it ends first
    # again; 1.5 s alone: on its edge; 0.75 s alone: inside.
    assert events[0]["killed"] and events[0]["stage"] == "next", events
    assert all(e["planned"].endswith("(run again alone)") for e in events[1:]), events
    assert events[-1]["killed"] and events[-1]["stage"] == "quick", events
    assert [e["planned"].split(" s ")[0] for e in events][:2] == ["6.0", "3.0"]
    assert not (tmp_path / "b.txt").exists()  # every try was killed before `next` could finish
