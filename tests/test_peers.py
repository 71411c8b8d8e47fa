"""The peers' CamVid table (bpkd.report.peers): their published numbers as the issue and
the dataset's SOURCE.md give them, our paired gains and ranks beside theirs, and a clear
error naming the key of a malformed entry."""
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bpkd.report import peers
from bpkd.report.tables import METHOD_LABELS

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camvid" / "SOURCE.md"


def test_camvid_peers_are_the_published_numbers():
    camvid = peers.peer_tables()["camvid"]
    assert camvid["split"] == "test" and camvid["teacher"] == {"name": "DeepLabV3-R101", "miou": 69.84}
    assert camvid["students"] == {
        "DeepLabV3-R18": {"baseline": 66.92, "skds": 67.46, "ifvd": 67.28, "cwd": 67.71, "cirkd": 68.21},
        "PSPNet-R18": {"baseline": 66.73, "skds": 67.83, "ifvd": 67.61, "cwd": 67.92, "cirkd": 68.65}}
    assert "CIRKD" in camvid["source"] and "Af-DCD" in camvid["source"] and "40k" in camvid["regime"]


@pytest.mark.skipif(not SOURCE.is_file(), reason=f"the real CamVid copy's SOURCE.md is not at {SOURCE}")
def test_camvid_peers_match_the_datasets_source_file():
    text = " ".join(SOURCE.read_text().split())
    names = {"baseline": "baseline", "SKD": "skds", "IFVD": "ifvd", "CWD": "cwd", "CIRKD": "cirkd"}
    for student, rows in peers.peer_tables()["camvid"]["students"].items():
        listed = re.search(rf"{re.escape(student)}: ([^;]+?)(?:;|\.$| - |$)", text).group(1)
        found = {names[k]: float(v) for k, v in re.findall(r"(baseline|SKD|IFVD|CWD|CIRKD) (\d+\.\d+)", listed)}
        assert found == rows, (student, listed)
    assert "teacher DeepLabV3-R101 69.84" in text


def _runs() -> pd.DataFrame:
    # Seeds 0-2: the baseline at 50, 51, 52; each method a fixed offset a seed, so the
    # paired Δ is known (CWD +3 ± 0, SKDS +1 with a spread, BPKD -2).
    offsets = {"baseline": [0, 0, 0], "cwd": [3, 3, 3], "skds": [0, 1, 2], "ifvd": [0.5, 0.5, 0.5],
               "cirkd": [2, 2, 2], "bpkd": [-2, -2, -2]}
    rows = [{"pair": "hrnet_w48_w18s", "model": m, "Methods": METHOD_LABELS.get(m, "S: HRNetV2P-W18S"), "seed": s,
             "mIoU(%)": 50.0 + s + off[s]} for m, off in offsets.items() for s in range(3)]
    return pd.DataFrame(rows)


def test_peer_table_puts_our_paired_gain_and_rank_beside_theirs():
    caption, table = peers.peer_table(_runs(), "camvid", "hrnet_w48_w18s", "W48 → W18S")
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")]
                                          for line in table.splitlines()[2:])}
    assert list(rows) == ["SKDS", "IFVD", "CIRKD", "CWD", "BPKD(Ours)"]
    assert rows["CWD"][1:3] == ["+3.00 ± 0.00 *", "1"] and rows["SKDS"][1:3] == ["+1.00 ± 0.58", "3"]
    assert rows["BPKD(Ours)"][1:] == ["-2.00 ± 0.00 *", "5", "—", "—", "—", "—"]  # the peers do not report BPKD
    # theirs: method - their baseline, CIRKD first for both students
    assert rows["CIRKD"][3:] == ["+1.29", "1", "+1.92", "1"] and rows["IFVD"][3:] == ["+0.36", "4", "+0.88", "4"]
    assert "not absolute mIoU" in caption and "69.84" in caption and "test split" in caption
    sentence = peers.order_sentence(_runs(), "camvid", "hrnet_w48_w18s")
    assert sentence.startswith("Order of the methods both report, largest gain first: ours CWD > CIRKD > SKDS > IFVD;")
    assert "DeepLabV3-R18: CIRKD > CWD > SKDS > IFVD (Kendall's τ with ours +0.67)" in sentence


@pytest.mark.parametrize("raw, key", [
    ({"camvid": {"source": "x", "regime": "y", "split": "test", "teacher": {"name": "T", "miou": 1},
                 "students": {"R18": {"baseline": 1, "cwd": "high"}}}}, "camvid.students.R18.cwd"),
    ({"camvid": {"source": "x", "regime": "y", "split": "test", "teacher": {"name": "T", "miou": 1},
                 "students": {"R18": {"cwd": 1.0}}}}, "camvid.students.R18"),
    ({"camvid": {"source": "x"}}, "camvid"),
])
def test_a_malformed_peer_table_names_its_key(raw, key):
    with pytest.raises(peers.PeerTablesError, match=re.escape(f"{key}: expected")):
        peers.validate(raw)
    yaml.safe_dump(raw)  # the cases are YAML a user could write


def _snapshot(folder: Path, profile: str, dataset: str, scores: dict[str, list[float]]) -> Path:
    """A study snapshot as `python -m bpkd.study render` writes it: study.json and evaluations."""
    import json

    pair = "hrnet_w48_w18s"
    for model, mious in scores.items():
        for seed, miou in enumerate(mious):
            path = folder / "eval" / dataset / pair / ("teacher.json" if model == "teacher" else f"seed{seed}/{model}.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"mIoU": miou, "mIoU_edge": miou - 10, "mBF": 20.0}))
    study = "seeds" if dataset == "synthetic" else "camvid_seeds"
    (folder / "study.json").write_text(json.dumps({
        "study": study, "point": "three", "experiment": f"{study}-three", "based_on": "abcdef0123",
        "rendered": "2026-12-07", "params": {"profile": profile, "datasets": [dataset], "pairs": [pair],
                                             "methods": [m for m in scores if m not in ("teacher", "baseline")], "released": [], "seeds": [0, 1, 2],
                                             "baseline_seeds": [0, 1, 2], "same_compute_seeds": []}}))
    return folder


def test_readme_block_shows_the_runs_own_study_then_camvids_with_the_peers_table(tmp_path):
    from bpkd.report import study_results, summary

    demo = _snapshot(tmp_path / "seeds", "demo", "synthetic",
                     {"teacher": [48.0], "baseline": [43.0, 44.0, 45.0], "cwd": [46.0, 47.0, 48.0],
                      "bpkd": [35.0, 36.0, 37.0]})
    camvid = _snapshot(tmp_path / "camvid", "camvid", "camvid",
                       {"teacher": [40.0], "baseline": [30.0, 31.0, 32.0], "skds": [31.0, 31.0, 31.0],
                        "cwd": [33.0, 33.5, 35.0], "bpkd": [25.0, 26.0, 27.0]})
    assert study_results.load(camvid, "demo", ["synthetic"]) is None  # not the run's own study
    block = summary.readme_block([study_results.load(demo, "demo", ["synthetic"]), study_results.load(camvid)])
    headings = [line for line in block.splitlines() if line.startswith("#")]
    assert headings == ["### The committed studies", "#### Synthetic streets (embedded): the `seeds` study",
                        "#### CamVid (real street frames, test split): the `camvid_seeds` study"]
    synthetic, cv = block.split("#### CamVid")
    assert "| BPKD(Ours) " in synthetic and "-8.00 ± 0.00 (p 0.00) *" in synthetic and "DeepLabV3-R18" not in synthetic
    # CamVid: its own rows (CWD - S = 3, 2.5, 3: +2.83 ± 0.17), then the peers' gains and ranks
    assert "| CWD " in cv and "+2.83 ± 0.17 (p 0.00) *" in cv and "profile `camvid`" in cv
    ours, theirs = [[c.strip() for c in line.strip("|").split("|")] for line in cv.splitlines()
                    if line.startswith("| CWD ")]
    assert theirs == ["CWD", "+2.83 ± 0.17 *", "1", "+0.79", "2", "+1.19", "2"]
    assert "not absolute mIoU" in cv and "Order of the methods both report, largest gain first: ours CWD > SKDS;" in cv
