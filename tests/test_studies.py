"""Seeds and studies: spec validation, rendering from DVC's experiment records, and the
real thing on the smoke profile (a two-point study through `dvc exp run --queue`, then
a second seed through `dvc exp run -S seeds=…`)."""
import copy
import json
from pathlib import Path

import pytest
import yaml

from bpkd.params import ParamsError
from bpkd.study import records, render, spec

from conftest import run

REPO = Path(__file__).resolve().parents[1]
TREE = yaml.safe_load((REPO / "params.yaml").read_text())
PAIR = "hrnet_w48_w18s"


def test_shipped_studies_are_valid_and_sweep_the_papers_ablations():
    studies = {name: spec.load(TREE, name) for name in TREE["studies"]}
    assert [p.overrides for p in studies["edge_weight"].points] == [
        {"loss.edge_weight": w} for w in (0.0, 5.0, 50.0, 500.0)]
    assert [p.label for p in studies["loss_terms"].points] == ["edge_only", "body_only", "both"]
    assert [p.overrides["loss.edge_width"] for p in studies["band_radius"].points] == [1, 2, 3, 5]
    assert studies["edge_weight"].points[1].experiment("edge_weight") == "edge_weight-5"


def test_a_studys_targets_expand_over_each_points_seeds_and_stop_its_experiments_there():
    terms = spec.load(TREE, "bpkd_terms")
    assert terms.points[0].targets == tuple(f"evaluate@synthetic-{PAIR}-bpkd-{s}" for s in (0, 1, 2))
    assert spec.load(TREE, "edge_weight").points[0].targets == ()  # no targets: the whole DAG
    tree = copy.deepcopy(TREE)
    tree["studies"]["two"] = {"model": "bpkd", "points": {"a": {}}, "set": {"seeds": [4, 5]},
                              "targets": ["evaluate@{dataset}-{pair}-bpkd-{seed}", "report"]}
    assert spec.load(tree, "two").points[0].targets == (
        f"evaluate@synthetic-{PAIR}-bpkd-4", f"evaluate@synthetic-{PAIR}-bpkd-5", "report")
    del tree["studies"]["two"]["set"]  # params.yaml's own seeds: [0]
    assert spec.load(tree, "two").points[0].targets == (f"evaluate@synthetic-{PAIR}-bpkd-0", "report")


@pytest.mark.parametrize("study,message", [
    ({"model": "bpkd", "grid": {"loss.edge_wieght": [1.0]}}, "sweeps 'loss.edge_wieght', which params.yaml"),
    ({"model": "teacher", "grid": {"loss.edge_weight": [1.0]}}, "studies.bad.model = 'teacher' is invalid"),
    ({"model": "bpkd", "grid": {"loss": [1.0]}}, "a mapping or list"),
    ({"model": "bpkd"}, "exactly one of `grid`"),
    ({"model": "bpkd", "grid": {"loss.edge_weight": []}}, "studies.bad.grid"),
    ({"model": "bpkd", "grid": {"loss.edge_weight": [1.0]}, "targets": "evaluate"}, "studies.bad.targets"),
    ({"model": "bpkd", "grid": {"loss.edge_weight": [1.0]}, "targets": ["evaluate@{model}"]}, "not a stage name"),
])
def test_bad_study_is_refused_naming_its_key(study, message):
    tree = copy.deepcopy(TREE)
    tree["studies"]["bad"] = study
    with pytest.raises(ParamsError, match="params.yaml: studies.bad"):
        spec.load(tree, "bad")
    with pytest.raises(ParamsError) as err:
        spec.load(tree, "bad")
    assert message in str(err.value)


def _eval(miou, edge):
    return {"data": {"mIoU": miou, "mAcc": 50.0, "mIoU_edge": edge, "mIoU_body": 60.0, "mBF": 30.0}}


def _state(name, weight, seeds, mious, state="success"):
    metrics = {f"metrics/eval/synthetic/{PAIR}/seed{s}/bpkd.json": _eval(m, m - 20) for s, m in zip(seeds, mious)}
    params = {"datasets": ["synthetic"], "pairs": [PAIR], "seeds": seeds, "loss": {"edge_weight": weight}}
    return {"rev": f"{name or 'base'}000", "name": name, "error": None, "experiments": None,
            "data": {"params": {"params.yaml": {"data": params}}, "metrics": metrics}}, state


def test_study_table_reads_dvcs_records_and_averages_each_experiments_seeds(tmp_path):
    base, _ = _state(None, 50.0, [0, 1], [40.0, 42.0])
    exps = [_state("ew-0", 0.0, [0, 1], [38.0, 39.0]), _state("ew-5", 5.0, [0, 1], [44.0, 45.5]),
            _state("ew-500", 500.0, [0, 1], [1.0, 1.0], state="queued")]
    base["experiments"] = [{"revs": [s], "name": s["name"], "executor": {"state": st}} for s, st in exps]
    baseline, experiments = records.parse([{"rev": "workspace", "data": {}}, base])
    assert [(r.name, r.state) for r in experiments] == [("ew-0", "success"), ("ew-5", "success"), ("ew-500", "queued")]
    tree = {"methods": ["bpkd"], "loss": {"edge_weight": 50.0},
            "studies": {"ew": {"model": "bpkd", "grid": {"loss.edge_weight": [0.0, 5.0, 500.0]}}}}
    study = spec.load(tree, "ew")
    done = {r.name: r for r in experiments if r.state == "success"}
    written = render.write(study, baseline, done, tmp_path, templates_dir=REPO / ".dvc" / "plots")
    table = (tmp_path / "ew.md").read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| ")]
    # mean over seeds 0 and 1: default 41.00; 0 -> 38.50 (-2.50); 5 -> 44.75 (+3.75); 500 has not finished
    assert [(r[0], r[3], r[8]) for r in rows[1:]] == [("default (50.0)", "41.00", ""), ("0", "38.50", "-2.50"),
                                                    ("5", "44.75", "+3.75"), ("500", "—", "—")]
    assert (tmp_path / "charts" / "ew.tsv").read_text().splitlines()[:3] == [
        "point\tmetric\tvalue", "default (50.0)\tmIoU\t41.0000", "default (50.0)\tedge mIoU\t21.0000"]
    plots = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["plots"]
    assert plots == [{"charts/ew.tsv": dict(render.PLOT_PROPS, x_label="loss.edge_weight",
                                            title="study ew: bpkd mIoU and edge mIoU per point")}]
    assert (tmp_path / "ew.png").read_bytes().startswith(b"\x89PNG") and tmp_path / "ew.png" in written


def test_a_killed_workspace_study_restarts_from_the_params_it_started_from(tmp_path):
    """`--workspace` runs the points one after another in the workspace, each from the
    params the study started from (not the last point's), and names the stages DVC ran.
    A study killed inside a point leaves that point's knobs in params.yaml; its rerun
    must not take them for the study's own params."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from bpkd.devtools.scratch import tool_env

    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    # One stage reading both knobs; it waits while `block` exists, so the study can be
    # killed inside its first point.
    (tmp_path / "stage.py").write_text(
        "import json, os, time, yaml\n"
        "open('started', 'w').close()\n"
        "while os.path.exists('block'):\n    time.sleep(0.1)\n"
        "json.dump(yaml.safe_load(open('params.yaml')), open('out.json', 'w'))\n")
    (tmp_path / "params.yaml").write_text("k: 1\nj: 1\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: python stage.py\n    deps: [stage.py]\n    params: [k, j]\n"
        "    metrics: [{out.json: {cache: false}}]\n")
    (tmp_path / ".gitignore").write_text("block\nstarted\n")
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "tiny"], tmp_path)
    study = ("from bpkd.study import queue, spec; queue.run(spec.Study('ws', 'bpkd', ['k', 'j'], "
             "[spec.Point('a', {'k': 2}), spec.Point('b', {'j': 3})]), workspace=True)")

    (tmp_path / "block").touch()
    proc = subprocess.Popen([sys.executable, "-c", study], cwd=tmp_path, env=tool_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "point a never started its stage"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Its `dvc exp run`, orphaned by the kill, is reaped by PID 1, which on some hosts takes
    # a while (a container's init): until then DVC takes its lock as held ("is busy").
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the killed study's processes outlived the kill"
        time.sleep(0.1)
    assert yaml.safe_load((tmp_path / "params.yaml").read_text()) == {"k": 2, "j": 1}  # point a's, left behind

    (tmp_path / "block").unlink()
    again = run([sys.executable, "-c", study], tmp_path)
    assert "was interrupted; params.yaml is back to the params it started from" in again.stdout, again.stdout
    # the killed point runs again, then the next, each naming the stage DVC ran
    assert [line.split(" into the study; ")[1] for line in again.stdout.splitlines() if ": done, " in line] == [
        "ran s", "ran s"], again.stdout
    # point b ran on the study's own params (k: 1), not on the killed point a's (k: 2)
    assert json.loads((tmp_path / "out.json").read_text()) == {"k": 1, "j": 3}
    assert not (tmp_path / ".dvc" / "tmp" / "study-ws.params.yaml").exists()


def _ran(stdout):
    return sorted(line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage"))


def test_an_ablation_reruns_only_bpkd_then_a_study_runs_through_the_queue_then_a_second_seed(smoke_copy):
    """On a copy of the reproduced smoke repo: an ablation of BPKD's knobs, which the user
    commits, then a study around it, then a second seed."""
    # Both BPKD knobs at once: any stage outside BPKD's branch that read either would run.
    exp = run(["dvc", "exp", "run", "-S", "loss.edge_weight=5.0", "-S", "loss.edge_norm=frame"], smoke_copy)
    assert _ran(exp.stdout) == ["boundary@synthetic-hrnet_w48_w18s", "charts@synthetic-hrnet_w48_w18s",
                                "distill@synthetic-hrnet_w48_w18s-bpkd-0", "evaluate@synthetic-hrnet_w48_w18s-bpkd-0",
                                "method@bpkd", "qualitative@synthetic-hrnet_w48_w18s", "report"], exp.stdout
    params = smoke_copy / "params.yaml"
    tree = yaml.safe_load(params.read_text())
    assert (tree["loss"]["edge_weight"], tree["loss"]["edge_norm"]) == (5.0, "frame")
    # The study's first point is the committed ablation itself (its experiment reruns
    # nothing); the second trains BPKD's branch once more.
    # Its experiments stop at BPKD's evaluation (`targets`): the table reads nothing else.
    tree["studies"]["two_points"] = {"model": "bpkd", "grid": {"loss.edge_weight": [5.0, 2.0]},
                                     "targets": ["evaluate@{dataset}-{pair}-bpkd-{seed}"]}
    params.write_text(yaml.safe_dump(tree, sort_keys=False))
    run(["git", "add", "-A"], smoke_copy)
    run(["git", "commit", "-qm", "the smoke run"], smoke_copy)

    first = run(["python", "-m", "bpkd.study", "run", "two_points"], smoke_copy)
    assert "two_points-5: queued" in first.stdout and "two_points-2: queued" in first.stdout
    ran = _ran(run(["dvc", "queue", "logs", "two_points-2"], smoke_copy).stdout)
    # (prepare@ too: the queue's fresh temporary workspace regenerates the uncached prepared set)
    assert ran == ["distill@synthetic-hrnet_w48_w18s-bpkd-0", "evaluate@synthetic-hrnet_w48_w18s-bpkd-0",
                   "method@bpkd", "prepare@synthetic"], ran
    table = (smoke_copy / "metrics/studies/two_points.md").read_text()
    rows = {r[0]: r for r in ([c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
                              if line.startswith("| "))}
    shown = json.loads(run(["dvc", "exp", "show", "--json"], smoke_copy).stdout)
    for point, weight in (("5", "5.0"), ("2", "2.0")):
        name = f"two_points-{point}"
        assert rows[point][1] == weight and rows[point][-1] == name
        # the row's numbers are the experiment's own metrics file, as DVC stored it
        exp = next(r["revs"][0] for r in shown[1]["experiments"] if r["name"] == name)
        miou = exp["data"]["metrics"][f"metrics/eval/synthetic/{PAIR}/seed0/bpkd.json"]["data"]["mIoU"]
        assert rows[point][3] == f"{miou:.2f}"
    again = run(["python", "-m", "bpkd.study", "run", "two_points"], smoke_copy)  # trains nothing
    assert "queued" not in again.stdout and again.stdout.count(": reused") == 2
    page = json.loads(run(["dvc", "plots", "show", "--json"], smoke_copy).stdout)
    assert page["data"]["metrics/studies/charts/two_points.tsv"][0]["content"]["title"].startswith("study two_points")

    # A second seed of BPKD alone: only its seed-1 branch runs (the baseline's seed 1, one
    # of its default baseline_seeds, has run already; the other methods leave the tables).
    # It stops at the report (`report` as the target): the boundary views are the first
    # step's to check, and they would only be redrawn.
    exp = run(["dvc", "exp", "run", "-S", "seeds=[0,1]", "-S", "methods=[bpkd]", "-S", "models=[bpkd]", "report"],
              smoke_copy)
    assert _ran(exp.stdout) == ["charts@synthetic-hrnet_w48_w18s",
                                "distill@synthetic-hrnet_w48_w18s-bpkd-1", "evaluate@synthetic-hrnet_w48_w18s-bpkd-1",
                                "qualitative@synthetic-hrnet_w48_w18s", "report"], exp.stdout
    tables = (smoke_copy / "metrics/tables.md").read_text()
    assert ("The baseline student ran once per seed (0, 1, 2), each distilled student once per seed (0, 1)"
            in tables and "paired t-test" in tables)
    spread = [line for line in tables.splitlines() if line.startswith(f"| {PAIR}") and "±" in line]
    assert [(line.split("|")[2].strip(), line.split("|")[3].strip()[-3:]) for line in spread] == [
        ("S: HRNetV2P-W18S", "(3)"), ("BPKD(Ours)", "(2)")]
    evals = {s: json.loads((smoke_copy / f"metrics/eval/synthetic/{PAIR}/seed{s}/bpkd.json").read_text())["mIoU"]
             for s in (0, 1)}
    bpkd = next(line for line in spread if "BPKD" in line)
    assert f"{(evals[0] + evals[1]) / 2:.2f} ± " in bpkd
