"""A study whose points run several seeds: its table from each experiment's own commit."""
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from bpkd.report import study_results, summary
from bpkd.report.tables import render
from bpkd.study import seeded
from bpkd.study.records import Record
from bpkd.study.spec import load

PAIR = "hrnet_w48_w18s"
REPO = Path(__file__).resolve().parents[1]


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _commit(repo, files: dict[str, dict]) -> str:
    """A commit whose metrics/ holds exactly ``files`` (path -> JSON content); its sha."""
    subprocess.run(["rm", "-rf", str(repo / "metrics")], check=True)
    for path, content in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(content if isinstance(content, str) else json.dumps(content))
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "exp", "--allow-empty")
    return _git(repo, "rev-parse", "HEAD")


def _trace(seed, **terms):
    """A step log per term (``balance.<term>.tsv``, as DVCLive writes it): ``term=[value at 40, at 80]``."""
    logs = f"metrics/synthetic/{PAIR}/train/seed{seed}/bpkd/plots/metrics"
    return {f"{logs}/balance.{t}.tsv": f"step\tbalance.{t}\n40\t{v[0]}\n80\t{v[1]}\n" for t, v in terms.items()}


def _run(model, seed, miou, ce, balance=None):
    ev = f"metrics/eval/synthetic/{PAIR}/seed{seed}/{model}.json"
    log = f"metrics/synthetic/{PAIR}/train/seed{seed}/{model}/metrics.json"
    return {ev: {"mIoU": miou, "mIoU_edge": miou - 20, "mIoU_body": miou + 5, "mBF": 30.0},
            log: {"decode.loss_ce": ce, **(balance or {}), "balance.ce_grad_norm": 9.0}}


TREE = {"methods": ["bpkd"], "seeds": [0], "baseline_seeds": [0], "loss": {"edge_weight": 50.0},
        "studies": {"arms": {"model": "bpkd", "points": {"published": {}, "edge_only_tenth": {"loss.edge_weight": 5.0}},
                             "set": {"seeds": [0, 1, 2], "baseline_seeds": [0, 1, 2]}}}}


def test_arms_are_paired_with_the_reference_point_and_the_baseline_seed_by_seed(tmp_path):
    _git(tmp_path, "init", "-q")
    study = load(TREE, "arms")
    params = {"datasets": ["synthetic"], "pairs": [PAIR], "seeds": [0, 1, 2], "baseline_seeds": [0, 1, 2]}
    baseline = {k: v for s, m in enumerate([44.0, 40.0, 45.0]) for k, v in _run("baseline", s, m, 0.9).items()}
    published = dict(baseline, **{k: v for s, m in enumerate([36.0, 35.0, 37.0])
                                  for k, v in _run("bpkd", s, m, 1.0, {"balance.bpkd_edge": 2.0 + s}).items()})
    tenth = dict(baseline, **{k: v for s, m in enumerate([40.0, 38.0, 41.0])
                              for k, v in _run("bpkd", s, m, 0.95, {"balance.bpkd_edge": 0.2}).items()})
    for s in range(3):  # the term balance over training; the tenth's body term at weight 0 logs 0
        published.update(_trace(s, bpkd_edge=[2.0 + s, 1.0 + s], ce_grad_norm=[9.0, 8.0]))
        tenth.update(_trace(s, bpkd_edge=[0.2, 0.2], bpkd_body=[0.0, 0.0]))
    records = {name: Record(name, _commit(tmp_path, files), "success", params, {})
               for name, files in (("arms-published", published), ("arms-edge_only_tenth", tenth))}
    assert seeded.several(study, list(records.values()))
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "plots").symlink_to(REPO / ".dvc" / "plots")
    path, tsv, png = seeded.write(study, records, tmp_path / "out", cwd=str(tmp_path))
    text = path.read_text()
    table, trace = text.split("### Term balance over training")
    rows = {c[0]: c for c in ([x.strip() for x in line.strip("|").split("|")]
                              for line in table.splitlines() if line.startswith("| "))}
    assert rows["point"] == ["point", "n", "mIoU(%)", "edge mIoU(%)", "body mIoU(%)", "BF(%)", "final decode CE",
                             "final ‖∇bpkd_edge‖/‖∇CE‖", "Δ mIoU vs published", "Δ mIoU vs S"]
    # By hand: published 36, 35, 37 -> 36.00 ± 1.00; vs S: -8, -5, -8 -> -7.00 ± 1.00, beyond 2 SE;
    # the tenth: 40, 38, 41 -> 39.67 ± 1.53; vs published: 4, 3, 4 -> +3.67 ± 0.33 *; vs S: -4, -2, -4.
    assert rows["published"][1:] == ["3", "36.00 ± 1.00", "16.00 ± 1.00", "41.00 ± 1.00", "30.00 ± 0.00",
                                     "1.00 ± 0.00", "3.00 ± 1.00", "", "-7.00 ± 1.00 *"]
    assert rows["edge_only_tenth"][1:] == ["3", "39.67 ± 1.53", "19.67 ± 1.53", "44.67 ± 1.53", "30.00 ± 0.00",
                                           "0.95 ± 0.00", "0.20 ± 0.00", "+3.67 ± 0.33 *", "-3.33 ± 0.67 *"]
    # The trace, mean over seeds: published's edge term (2, 3, 4) -> 3.00 at step 40, (1, 2, 3)
    # -> 2.00 at 80; the CE's own norm (the denominator) and a term at weight 0 are left out.
    assert [[x.strip() for x in line.strip("|").split("|")] for line in trace.splitlines()
            if line.startswith("| ")] == [["point", "term", "40", "80"], ["published", "bpkd_edge", "3.00", "2.00"],
                                          ["edge_only_tenth", "bpkd_edge", "0.20", "0.20"]]
    assert tsv.read_text().splitlines() == ["step\tmethod\tterm\tvalue", "40\tpublished\tbpkd_edge\t3",
                                            "80\tpublished\tbpkd_edge\t2", "40\tedge_only_tenth\tbpkd_edge\t0.2",
                                            "80\tedge_only_tenth\tbpkd_edge\t0.2"]
    assert png == tmp_path / "out" / "arms_balance.png" and png.read_bytes().startswith(b"\x89PNG")


def test_a_study_of_all_students_renders_the_reports_tables_of_its_experiment(tmp_path):
    _git(tmp_path, "init", "-q")
    tree = yaml.safe_load(yaml.safe_dump(TREE))
    tree["same_compute_seeds"] = []
    tree["studies"] = {"seeds": {"model": "all", "points": {"three": {}},
                                 "set": {"seeds": [0, 1], "baseline_seeds": [0, 1]}}}
    study = load(tree, "seeds")
    files = {}
    for model, mious in {"baseline": [40.0, 42.0], "bpkd": [38.0, 39.0]}.items():
        for seed, m in enumerate(mious):
            files.update({k: v for k, v in _run(model, seed, m, 1.0).items() if "/eval/" in k})
    params = {"profile": "demo", "datasets": ["synthetic"], "pairs": [PAIR], "methods": ["bpkd"], "seeds": [0, 1],
              "baseline_seeds": [0, 1], "same_compute_seeds": [], "released": []}
    record = Record("seeds-three", _commit(tmp_path, files), "success", params, {})
    path, folder = seeded.write(study, {"seeds-three": record}, tmp_path / "out", cwd=str(tmp_path),
                                base_rev="abcdef0123")
    text = path.read_text()
    assert "## Results" in text and "Spread over seeds" in text
    # BPKD - S over seeds 0, 1: -2, -3 -> -2.50 ± 0.50 (n=2), beyond 2 SE? 2.5 > 1.0: yes.
    assert "BPKD(Ours) vs S -2.50 ± 0.50 (n=2)" in text

    # The snapshot: what the tables read, with the params they ran at; the report renders
    # README's block from it on its own profile only, the same numbers, no gains table.
    assert folder == tmp_path / "out/seeds/three"
    assert sorted(str(f.relative_to(folder)) for f in folder.rglob("*.json")) == sorted(
        ["study.json"] + [k.removeprefix("metrics/") for k in files])
    info = json.loads((folder / "study.json").read_text())
    assert (info["experiment"], info["based_on"], info["params"]["seeds"]) == ("seeds-three", "abcdef0123", [0, 1])
    assert study_results.load(folder, "smoke", ["synthetic"]) is None  # another profile's
    assert study_results.load(tmp_path / "none", "demo", ["synthetic"]) is None
    results = study_results.load(folder, "demo", ["synthetic"])
    assert study_results.load(folder).folder == folder  # any profile: a study shown beside the run's own
    block = summary.readme_block([results])
    # Its first line says it shows the committed studies, not the reader's run, and how to render one's own.
    assert block.startswith("### The committed studies\n\nThis block shows the committed studies (`seeds`), not "
                            "your run")
    assert "`metrics/tables.md`" in block and "`python -m bpkd.study render <study>`" in block
    assert "Experiment `seeds-three`, based on commit `abcdef0`, profile `demo`" in block
    # one compact row per student, the same paired numbers as the full tables
    assert "| BPKD(Ours) " in block and "-2.50 ± 0.50 (p " in block
    assert "BPKD(Ours) vs S -2.50 ± 0.50 (n=2)" in block and "Gains of each" not in block
    (folder / "study.json").write_text('{"study": "seeds"}')
    with pytest.raises(study_results.SnapshotError, match="study.json: missing point, experiment"):
        study_results.load(folder, "demo", ["synthetic"])
