"""The seed's reported numbers (src/bpkd/report/seed_tables.yaml) against the tables
of the seed README they were transcribed from."""
import re
from pathlib import Path

import pytest

from bpkd.report.reported import FIELDS, ROWS, SEED_TABLES_FILE, SeedTablesError, seed_tables, validate

# The results section of the paper's README, as published, shipped with the tests.
REFERENCE = Path(__file__).resolve().parent / "data" / "bpkd_readme_results.md"
HEADINGS = {"cityscapes": "Cityscapes", "ade20k": "ADE20K", "pascal_context59": "Pascal Context 59"}
METHOD_ROWS = {"SKDS": "skds", "IFVD": "ifvd", "CIRKD": "cirkd", "CWD": "cwd", "BPKD(Ours)": "bpkd"}
NUMBER = re.compile(r"^\d+(\.\d+)?$")


def _squash(name: str) -> str:
    """The seed spells one architecture several ways ("T:DeeplabV3P-R101", "S: PSPnet-R18")."""
    return re.sub(r"\s+", "", name).lower()


def _number(cell: str, where: str) -> str | None:
    text = cell.replace("\\", "").replace("*", "").strip()  # "**77.57**", "256\.89"
    if not text:
        return None
    assert NUMBER.match(text), f"{where}: not a number: {cell!r}"
    return text


def parse_seed_readme(text: str) -> dict:
    """``{dataset: {pair: {row: {field: "as printed" or None}}}}`` from the seed README's
    results tables. Strict: a table line it cannot place fails, naming its line."""
    from bpkd.models.pairs import ARCHS, PAIRS

    teachers = {_squash(ARCHS[p.teacher].name): name for name, p in PAIRS.items()}
    tables, dataset, pair = {}, None, None
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{REFERENCE.name} line {n}"
        if line.startswith("#"):
            title = line.lstrip("#").replace("*", "").strip()
            found = [d for d, h in HEADINGS.items() if line.startswith("### ") and title.startswith(h)]
            dataset, pair = (found[0], None) if found else (None, None)
            if dataset:
                assert dataset not in tables, f"{where}: a second {dataset} section"
                tables[dataset] = {}
            continue
        if not line.startswith("|"):
            continue
        assert dataset, f"{where}: a table row outside the three results sections: {line!r}"
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "Methods":
            assert cells[:5] == ["Methods", "FLOPs(G)", "Parameters(M)", "mIoU(%)", "mAcc(%)"], f"{where}: {line!r}"
            continue
        if set("".join(cells)) <= set("-: "):  # the header's rule, or a blank row between pairs
            continue
        label = cells[0].replace("*", "").strip()
        if label.startswith("T:"):
            pair = teachers.get(_squash(label[2:]))
            assert pair, f"{where}: teacher {label!r} is none of {sorted(teachers)}"
            assert pair not in tables[dataset], f"{where}: {pair} a second time"
            tables[dataset][pair] = {}
            row = "teacher"
        elif label.startswith("S:"):
            assert pair and _squash(label[2:]) == _squash(ARCHS[PAIRS[pair].student].name), f"{where}: {label!r}"
            row = "baseline"
        elif label in METHOD_ROWS and pair:
            row = METHOD_ROWS[label]
        else:
            raise AssertionError(f"{where}: unparsed row {line!r}")
        assert row not in tables[dataset][pair], f"{where}: {row} a second time in {pair}"
        assert len(cells) >= 5, f"{where}: fewer than 5 cells: {line!r}"
        tables[dataset][pair][row] = {f: _number(c, where) for f, c in zip(FIELDS, cells[1:5])}
    return tables


def test_every_reported_number_is_the_seed_readmes():
    printed = parse_seed_readme(REFERENCE.read_text())
    data = seed_tables()
    assert {d: {p: list(rows) for p, rows in pairs.items()} for d, pairs in printed.items()} == \
        {d: {p: list(rows) for p, rows in pairs.items()} for d, pairs in data.items()}  # same rows, same order
    assert sum(len(rows) for pairs in printed.values() for rows in pairs.values()) == 3 * 4 * 7
    for dataset, pairs in printed.items():
        for pair, rows in pairs.items():
            for row, fields in rows.items():
                for field, text in fields.items():
                    want = None if text is None else float(text)
                    assert data[dataset][pair][row][field] == want, (dataset, pair, row, field, text)


def test_the_data_file_keeps_the_seeds_printed_precision():
    # 88.7 (Cityscapes DeepLabV3+ teacher's mAcc) is printed with one decimal, 33.30 with two.
    text = SEED_TABLES_FILE.read_text()
    assert "macc: 88.7\n" in text and "miou: 33.30\n" in text


def test_the_data_file_has_every_row_of_every_pair():
    data = seed_tables()
    assert list(data) == ["cityscapes", "ade20k", "pascal_context59"]
    for pairs in data.values():
        assert list(pairs) == ["pspnet_r101_r18", "hrnet_w48_w18s", "deeplabv3p_r101_mv2", "isanet_r101_r18"]
        assert all(tuple(rows) == ROWS for rows in pairs.values())
    assert data["cityscapes"]["hrnet_w48_w18s"]["bpkd"] == {"flops_g": 10.49, "params_m": 3.97,
                                                           "miou": 78.58, "macc": 85.78}


@pytest.mark.parametrize("raw, message", [
    ({"synthetic": {}}, "synthetic: expected one of"),
    ({"cityscapes": {"pspnet_r101_r18": {"teacher": {}}}}, r"cityscapes\.pspnet_r101_r18: expected the rows"),
    ({"cityscapes": {"pspnet_r101_r18": {r: {"flops_g": 1, "params_m": 1, "miou": "79.7", "macc": 1}
                                         for r in ROWS}}}, r"cityscapes\.pspnet_r101_r18\.teacher\.miou: expected"),
])
def test_a_malformed_data_file_is_refused_naming_the_key(raw, message):
    with pytest.raises(SeedTablesError, match=message):
        validate(raw)
