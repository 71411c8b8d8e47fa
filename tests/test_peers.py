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
