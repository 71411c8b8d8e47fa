"""README.md and docs/ stay true (issue #34), beside the link checks of test_docs.py:
every stage name and `make` target quoted exists; every stage script or package module
a code block runs takes the flags it is given (or the block is marked `# excerpt`); no
reference page hand-types a model's score outside a block a stage regenerates; and the
scores in README's results block are those of `metrics/eval/`, or of the committed
study snapshot the report renders them from.

The rules are docs/development.md's "Writing the documentation". Each check has a test on
a made-up page too, so that a check that sees nothing cannot pass for one that finds
nothing."""
from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from bpkd.devtools.scratch import REPO, tool_env
from test_docs import CODE_SPAN, FENCE, PAGES

HISTORY = REPO / "docs" / "history.md"
# Reference pages: what is true now. The history page holds dated measurements instead.
REFERENCE = [p for p in PAGES if p != HISTORY]
DVC = shutil.which("dvc", path=tool_env()["PATH"])
needs_dvc = pytest.mark.skipif(DVC is None, reason="dvc is not on PATH")

# Blocks that a stage or a make target regenerates (README's results block: `report`;
# docs/dag.md's picture: `make docs-dag`).
GENERATED = re.compile(r"<!-- (results|dag):start -->.*?<!-- \1:end -->", re.S)
EXCERPT = "# excerpt"  # a line of a fenced block that shows part of a command or one run's transcript


def rel(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


def fenced_blocks(text: str) -> list[str]:
    return [m.group(0) for m in FENCE.finditer(text)]


def code(text: str) -> str:
    """Everything a reader would type: the fenced blocks and the code spans, outside the
    generated blocks."""
    text = GENERATED.sub("", text)
    return "\n".join(fenced_blocks(text) + CODE_SPAN.findall(FENCE.sub("", text)))


# ---------------------------------------------------------------- stage names and make targets

# `family@rest`: a stage family of dvc.yaml, then a name, a pattern (`…`, `<dataset>`) or
# nothing (`boundary@`, the family itself).
STAGE = re.compile(r"(?<![\w./@-])([a-z][a-z_]*)@([^\s`'\"()\[\],;:|*]*)")
REPRO = re.compile(r"\bdvc repro((?:\s+-{1,2}[\w-]+)*)\s+([^\s`'\"&;|)<-][^\s`'\"&;|)]*)")
MAKE = re.compile(r"(?<![\w-])make\s+([a-z][\w-]*)")
PLACEHOLDER = re.compile(r"<[^<>]*>|\{[^{}]*\}|…|\.\.\.")
# A page that walks through a made-up method or dataset names it once, e.g.
# `<!-- hypothetical: logitmse, mapillary -->`; stage names holding such a name are not looked up.
HYPOTHETICAL = re.compile(r"<!-- hypothetical: ([^>]*?) -->")


def stage_families() -> set[str]:
    return set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


def _stage_list(workdir: Path) -> set[str]:
    out = subprocess.run([DVC, "stage", "list", "--name-only"], cwd=workdir, env=tool_env(),
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


@functools.lru_cache(maxsize=None)
def real_stages() -> frozenset[str]:
    """`dvc stage list` of this repository, with its params.yaml."""
    return frozenset(_stage_list(REPO))


@functools.lru_cache(maxsize=None)
def possible_stages() -> frozenset[str]:
    """Every stage the params can give: `dvc stage list` of this dvc.yaml with params.yaml's
    lists widened to every dataset, pair, method and released model the code supports and
    three seeds of each kind (Cityscapes' stages, the released ones, the same-compute row)."""
    from bpkd.datasets.specs import DATASETS
    from bpkd.distill.losses import METHODS
    from bpkd.models.pairs import PAIRS

    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    methods = list(METHODS)
    tree.update(datasets=sorted(DATASETS), pairs=sorted(PAIRS), methods=methods, models=methods,
                released=["baseline", *methods], seeds=[0, 1, 2], baseline_seeds=[0, 1, 2],
                same_compute_seeds=[0, 1, 2])
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(REPO / "dvc.yaml", tmp)
        (Path(tmp) / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
        subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=tmp, env=tool_env(), check=True)
        return frozenset(_stage_list(Path(tmp)) | real_stages())


def pattern(name: str) -> re.Pattern:
    """A quoted name with placeholders as a regex over stage names: `<dataset>` and
    `{dataset}` stand for one name part, `…` for any run of them."""
    parts, pos = [], 0
    for m in PLACEHOLDER.finditer(name):
        parts.append(re.escape(name[pos:m.start()]))
        parts.append(".+" if m.group(0) in ("…", "...") else r"[^@\s]+")
        pos = m.end()
    parts.append(re.escape(name[pos:]))
    return re.compile("".join(parts))


def stage_problems(text: str) -> list[str]:
    """What is wrong with each stage name quoted in ``text``."""
    families, problems = stage_families(), []
    made_up = {w.strip() for m in HYPOTHETICAL.findall(text) for w in m.split(",") if w.strip()}
    quoted = [(f, rest.rstrip(".")) for f, rest in STAGE.findall(text)
              if not any(re.search(rf"(?<![a-z0-9]){re.escape(w)}(?![a-z0-9])", rest) for w in made_up)]
    for m in REPRO.finditer(code(text)):
        target = m.group(2)
        if "@" not in target and not PLACEHOLDER.search(target):
            quoted.append((target, None))
    for family, rest in quoted:
        name = family if rest is None else f"{family}@{rest}"
        if family not in families:
            problems.append(f"{name}: no stage family {family!r} in dvc.yaml")
        elif rest is None:
            if name not in real_stages():
                problems.append(f"{name}: not in `dvc stage list`")
        elif not rest:
            continue  # the family itself, e.g. `boundary@`
        elif PLACEHOLDER.search(rest):
            if not any(pattern(name).fullmatch(s) for s in possible_stages()):
                problems.append(f"{name}: matches no stage the params can give")
        elif name not in possible_stages():
            problems.append(f"{name}: not in `dvc stage list`, nor with other datasets, pairs or seeds")
    return problems


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M))
    for line in re.findall(r"^\.PHONY:(.*)$", text, re.M):
        targets |= set(line.split())
    return targets


def make_problems(text: str) -> list[str]:
    targets = make_targets()
    return [f"make {t}: no such target in the Makefile" for t in MAKE.findall(code(text)) if t not in targets]


@needs_dvc
@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_quoted_stage_name_exists(page):
    assert stage_problems(page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_quoted_make_target_exists(page):
    assert make_problems(page.read_text()) == []


@needs_dvc
def test_the_stage_check_sees_wrong_names_and_matches_patterns():
    text = ("`distill@synthetic-hrnet_w48_w18s-bpkd-0` `evaluate@…-<model>-<seed>` `boundary@` "
            "`distill@cityscapes-hrnet_w48_w18s-bpkd-0` `released@…-<model>` "
            "`distill@cityscapes-hrnet_w48_w18s-bpkd` `evaluate@<dataset>-<pair>-teacher` "
            "`evalute@synthetic-hrnet_w48_w18s` `dvc repro report` `dvc repro -s reprot` `dvc repro <its stages>`\n"
            "<!-- hypothetical: mine -->`distill@synthetic-hrnet_w48_w18s-mine-0` `distill@synthetic-x-mine-0`\n")
    assert [p.split(":")[0] for p in stage_problems(text)] == [
        "distill@cityscapes-hrnet_w48_w18s-bpkd", "evaluate@<dataset>-<pair>-teacher",
        "evalute@synthetic-hrnet_w48_w18s", "reprot"]


def test_the_make_check_sees_a_missing_target():
    assert make_problems("`make demo` and `make venv && make docs-dag`, not `make dmeo`\n") == [
        "make dmeo: no such target in the Makefile"]


# ---------------------------------------------------------------- commands in code blocks

# `python stages/x.py …`, `python -m bpkd.x …`, or a stage script under torchrun.
RUNS = re.compile(r"(?:^|\s)(?:(?:python3?|torchrun)\s+(?:[^|;&]*?\s)?)?(stages/\w+\.py|-m\s+bpkd[\w.]*)(?=\s|$)")
SUBCOMMANDS = re.compile(r"\{([\w,-]+)\}")


@functools.lru_cache(maxsize=None)
def help_text(target: tuple[str, ...]) -> str:
    """`--help` of a stage script (`("stages/x.py",)`) or module (`("-m", "bpkd.x")`), with
    any subcommand after it; raises if it does not parse."""
    proc = subprocess.run([sys.executable, *target, "--help"], cwd=REPO, env=dict(tool_env(), OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or "usage" not in proc.stdout.lower():
        raise AssertionError(f"{' '.join(target)} --help failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def commands(block: str) -> list[str]:
    """The shell commands of a fenced block: continuation lines joined, prompts and
    comments dropped, split at `&&`, `||`, `;` and `|`."""
    lines = block.strip().split("\n")[1:-1]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for line in joined.split("\n"):
        line = re.sub(r"^\s*\$\s+", "", line)
        line = re.sub(r"(^|\s)#.*$", "", line)
        out += [c.strip() for c in re.split(r"&&|\|\||;|\|", line) if c.strip()]
    return out


def command_problems(cmd: str) -> list[str]:
    """Why ``cmd`` would not parse: a stage script or module whose `--help` fails, or a
    `--flag` it does not take."""
    m = RUNS.search(cmd)
    if not m:
        return []
    target = tuple(m.group(1).split())
    try:
        argv = shlex.split(cmd[m.end():])
    except ValueError:
        argv = cmd[m.end():].split()
    try:
        helps = [help_text(target)]
        positional = [a for a in argv if not a.startswith("-")]
        choices = SUBCOMMANDS.search(helps[0].split("\n\n")[0])
        if positional and choices and positional[0] in choices.group(1).split(","):
            helps.append(help_text((*target, positional[0])))
    except (AssertionError, subprocess.TimeoutExpired) as e:
        return [f"{cmd}: {e}"]
    flags = sorted({a.split("=")[0] for a in argv if re.fullmatch(r"--[a-z][\w-]*(=.*)?", a)})
    return [f"{cmd}: {' '.join(target)} takes no {flag}" for flag in flags
            if not any(re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", h) for h in helps)]


def block_problems(text: str) -> list[str]:
    problems = []
    for block in fenced_blocks(GENERATED.sub("", text)):
        if any(line.strip() == EXCERPT for line in block.split("\n")):
            continue
        for cmd in commands(block):
            problems += command_problems(cmd)
    # Commands in code spans are excerpts by nature (`…`), but the flags they show must exist.
    for span in CODE_SPAN.findall(FENCE.sub("", GENERATED.sub("", text))):
        problems += command_problems(span.strip("`"))
    return problems


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_command_shown_parses_or_is_marked_an_excerpt(page):
    assert block_problems(page.read_text()) == []


def test_the_command_check_sees_a_stale_flag_and_skips_an_excerpt():
    text = ("```\npython stages/train.py --dry-run --role baseline --dataset cityscapes \\\n"
            "    --pair hrnet_w48_w18s --epochs 3\npython -m bpkd.study run edge_weight --jobs 2\n"
            "python -m bpkd.study run edge_weight --workers 2   # a comment\n```\n"
            "```\n# excerpt\npython stages/train.py --no-such-flag\n```\n"
            "`python -m bpkd.datasets.validate --dataset NAME DIR --fix`\n")
    problems = block_problems(text)
    assert [p.split(" takes no ")[-1] for p in problems] == ["--epochs", "--workers", "--fix"], problems


# ---------------------------------------------------------------- scores: generated, never typed

# A model's score: a two-decimal number (49.02, 0.66) in a sentence or a table column that
# names mIoU, mAcc, edge or body mIoU, or the boundary F-score.
SCORE_WORDS = re.compile(r"\bm?IoU\b|\bmAcc\b|\bBF\b|F-score|boundary F\b")
SCORE = re.compile(r"(?<![\w.])\d{1,3}\.\d{2}(?![\d.×%])(?!\s?×)")
SENTENCE = re.compile(r"(?<=[.!?:])\s+(?=[A-Z(`*\[])|\n\s*\n|\n\s*[-*]\s|\n\s*\d+\.\s")


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def score_problems(text: str) -> list[str]:
    """Hand-typed scores of ``text`` (a reference page): outside generated blocks, fenced
    blocks and code spans."""
    text = CODE_SPAN.sub("", FENCE.sub("", GENERATED.sub("", text)))
    problems, rows, prose_lines = [], [], []  # rows: table lines, None between tables
    for line in text.split("\n"):
        if line.lstrip().startswith("|"):
            rows.append(line)
        else:
            rows.append(None)
            prose_lines.append(line)
    # Tables: a number in a column whose header names a score.
    header = None
    for row in rows:
        if row is None:
            header = None
            continue
        cells = _cells(row)
        if header is None:
            header = [bool(SCORE_WORDS.search(c)) for c in cells]
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        for cell, is_score in zip(cells, header):
            if is_score and SCORE.search(cell):
                problems.append(f"table row {row.strip()[:80]!r}: {SCORE.search(cell).group(0)}")
    # Prose: a number in a sentence that names a score.
    for sentence in SENTENCE.split("\n".join(prose_lines)):
        if SCORE_WORDS.search(sentence):
            problems += [f"{n} in {' '.join(sentence.split())[:100]!r}" for n in SCORE.findall(sentence)]
    return problems


@pytest.mark.parametrize("page", REFERENCE, ids=rel)
def test_no_reference_page_hand_types_a_score(page):
    # A model's mIoU, mAcc, edge/body mIoU or BF comes from metrics/: show it through README's
    # results block, metrics/tables.md or metrics/studies/, or date it on docs/history.md.
    assert score_problems(page.read_text()) == []


def test_the_score_check_sees_typed_scores_in_prose_and_tables():
    text = ("CWD reaches 49.02 mIoU on the demo. The band covers 0.21 of the cells (1.33×).\n\n"
            "| model | mIoU | time (s) |\n|---|---|---|\n| CWD | 49.02 | 12.50 |\n\n"
            "- the baseline's std is 0.66 (mIoU);\n- a speed-up of 0.85× per step\n\n"
            "`49.02 mIoU` in code\n\n<!-- results:start -->\n| mIoU |\n|---|\n| 49.02 |\n<!-- results:end -->\n")
    assert [p.split(" in ")[0] if not p.startswith("table") else p.rsplit(": ", 1)[1]
            for p in score_problems(text)] == ["49.02", "49.02", "0.66"]


# ---------------------------------------------------------------- README's block equals metrics/

SCORE_COLUMNS = {"mIoU(%)": "mIoU", "mIoU(%) mean ± std (n)": "mIoU", "mAcc(%)": "mAcc", "edge mIoU(%)": "mIoU_edge",
                 "body mIoU(%)": "mIoU_body", "BF(%)": "mBF"}


def block_sources() -> list[tuple[Path, dict]]:
    """Where README's block was rendered from, as the report stage decides: the committed
    study snapshots its command names (``--study``), when one was made on params.yaml's
    profile (then every one, each with the params it was rendered with), else
    ``metrics/`` with params.yaml's."""
    from bpkd.report import study_results

    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["report"]["cmd"]
    folders = [REPO / f for f in re.findall(r"--study\s+(\S+)", cmd)]
    own = next((s for s in (study_results.load(f, tree["profile"], tree["datasets"]) for f in folders) if s), None)
    if own is None:
        return [(REPO / "metrics", tree)]
    others = [s for f in folders for s in [study_results.load(f)] if s and s.folder != own.folder]
    return [(s.folder, {**tree, **s.params, "models": s.params["methods"]}) for s in (own, *others)]


def expected_scores(metrics: Path, tree: dict) -> dict[tuple[str, str, str], dict[str, float]]:
    """``{(dataset, pair, model): {key: mean over the model's seeds}}`` from the evaluation
    files of ``tree``'s datasets, pairs, models and seeds, as the report reads them."""
    out = {}
    for dataset in tree["datasets"]:
        for pair in tree["pairs"]:
            folder = metrics / "eval" / dataset / pair
            runs = {"teacher": [folder / "teacher.json"],
                    "baseline": [folder / f"seed{s}" / "baseline.json" for s in tree["baseline_seeds"]],
                    "baseline_same_compute": [folder / f"seed{s}" / "baseline_same_compute.json"
                                              for s in tree.get("same_compute_seeds") or []]}
            for model in tree["models"]:
                runs[model] = [folder / f"seed{s}" / f"{model}.json" for s in tree["seeds"]]
            for model in tree.get("released") or []:
                runs[model] = [folder / f"{model}.json"]
            for model, files in runs.items():
                found = [json.loads(f.read_text()) for f in files if f.is_file()]
                if found:
                    out[dataset, pair, model] = {k: statistics.mean(m[k] for m in found)
                                                 for k in SCORE_COLUMNS.values() if all(k in m for m in found)}
    return out


def block_score_problems(block: str, sources: list[tuple[Path, dict]]) -> tuple[list[str], set]:
    """Each score of the results block's tables against the metrics of ``sources``
    (:func:`block_sources`); also the models checked. A section's dataset is its heading's
    (``<dataset title>`` or ``<dataset title>: the `<study>` study``)."""
    from bpkd.report.tables import DATASET_TITLES, METHOD_LABELS

    expected, labels = {}, {v: k for k, v in METHOD_LABELS.items()}
    for metrics, tree in sources:
        expected.update(expected_scores(metrics, tree))
    titles = {v: k for k, v in DATASET_TITLES.items()}
    datasets = [d for _, tree in sources for d in tree["datasets"]]
    dataset = datasets[0] if len(datasets) == 1 else None
    problems, checked, header = [], set(), None
    for line in block.split("\n"):
        heading = re.match(r"#+\s+(.*?)(?:: the `[^`]+` study)?\s*$", line)
        if heading and heading.group(1).strip() in titles:
            dataset = titles[heading.group(1).strip()]
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = cells
            continue
        if "Methods" not in header or all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        row = dict(zip(header, cells))
        label = row["Methods"]
        model = ("teacher" if label.startswith("T:") else
                 "baseline_same_compute" if label.startswith("S:") and label.endswith("same compute")
                 else "baseline" if label.startswith("S:") else labels.get(label, label.lower()))
        pairs = {p for _, tree in sources for p in tree["pairs"]}
        pair = row.get("Pair") or (next(iter(pairs)) if len(pairs) == 1 else None)
        want = expected.get((dataset, pair, model))
        if want is None:
            continue  # a row this check cannot place (another dataset layout, a new kind of row)
        for column, key in SCORE_COLUMNS.items():
            number = re.match(r"\s*(-?\d+\.\d+)", row.get(column, ""))
            if number and key in want:
                checked.add(model)
                if abs(float(number.group(1)) - round(want[key], 2)) > 0.006:
                    problems.append(f"{label} {column}: README shows {number.group(1)}, "
                                    f"the {dataset} evaluations give {want[key]:.2f}")
    return problems, checked


def results_block(readme: str) -> str:
    m = re.search(r"<!-- results:start -->(.*?)<!-- results:end -->", readme, re.S)
    assert m, "README.md has no results block"
    return m.group(1)


def test_the_results_block_shows_the_scores_of_metrics():
    # From the study snapshot when README shows it (every row over several seeds), else metrics/.
    sources = block_sources()
    problems, checked = block_score_problems(results_block((REPO / "README.md").read_text()), sources)
    assert problems == []
    ran = {model for metrics, tree in sources for (_, _, model) in expected_scores(metrics, tree)}
    models = {"teacher", *(m for _, tree in sources for m in tree["models"])}
    assert checked == ran and models & ran <= checked, (checked, ran)


def test_the_block_check_sees_a_number_changed_by_hand():
    block = results_block((REPO / "README.md").read_text())
    sources = block_sources()
    metrics, tree = sources[0]
    miou = expected_scores(metrics, tree)[tree["datasets"][0], tree["pairs"][0], "cwd"]["mIoU"]
    shown = f"| {round(miou, 2):.2f} "
    row = next(line for line in block.split("\n") if line.startswith("| CWD ") and shown in line)
    changed = block.replace(row, row.replace(shown, f"| {round(miou, 2) + 0.01:.2f} ", 1))
    problems, _ = block_score_problems(changed, sources)
    assert len(problems) == 1 and problems[0].startswith("CWD mIoU(%)"), problems


# ---------------------------------------------------------------- the committed run's host and precision

# The cost records' fields (bpkd.training.cost) in the words the pages use. A class the
# training stages can write and this table lacks fails the check, naming it.
HOST_CLASS_WORDS = {"AVX2 only": "AVX2 only", "AVX-512, no native bf16": "AVX-512 and no native bf16",
                    "native bf16": "native bf16", "no AVX2": "no AVX2"}
PRECISION_WORDS = {"fp32": "fp32", "bf16": "bf16 autocast", "bfloat16": "bf16 autocast", "float16": "fp16 autocast"}
# A sentence that speaks of the committed models (run, numbers, …) and names a host or a precision.
COMMITTED = re.compile(r"\bcommitted\s+(?:[\w'’-]+\s+){0,2}?(?:models?|runs?|numbers|students?|weights|checkpoints|ones)\b"
                       r"|\bmodels were trained on\b", re.I)
HOST_OR_PRECISION = re.compile(r"Xeon|EPYC|\bAVX|avx2|avx512|\bAMX\b|amx_|\bbf16\b|\bfp32\b|\bfp16\b|mixed precision",
                               re.I)
# Pages that must say it: where reproducing or timing the committed run depends on it.
STATES_THE_HOST = ["docs/reliability.md", "docs/performance.md"]


def cost_records() -> list[dict]:
    """Every committed cost record of the default profile's models: the default run's
    (`metrics/cost/`) and those of the study snapshots made on its profile
    (`metrics/studies/<study>/<name>/cost/`). A study on another profile (CamVid's) names
    its own host in its own block."""
    profile = yaml.safe_load((REPO / "params.yaml").read_text())["profile"]
    own = [folder for folder in (REPO / "metrics" / "studies").glob("*/*") if (folder / "study.json").is_file()
           and json.loads((folder / "study.json").read_text())["params"]["profile"] == profile]
    files = [*(REPO / "metrics" / "cost").rglob("*.json"), *(f for folder in own for f in folder.glob("cost/**/*.json"))]
    assert files, "no cost record under metrics/"
    return [json.loads(f.read_text()) for f in sorted(files)]


# Study snapshots on another profile than the default, by the word pages name them with.
OTHER_STUDIES = {"camvid": "CamVid"}


def other_study_records() -> dict[str, list[dict]]:
    """``{word: cost records}`` of each committed study snapshot on another profile than the
    default whose dataset :data:`OTHER_STUDIES` names (CamVid's: its own host class)."""
    profile = yaml.safe_load((REPO / "params.yaml").read_text())["profile"]
    found: dict[str, list[dict]] = {}
    for folder in (REPO / "metrics" / "studies").glob("*/*"):
        info = json.loads((folder / "study.json").read_text()) if (folder / "study.json").is_file() else None
        if info and info["params"]["profile"] != profile:
            for dataset in info["params"]["datasets"]:
                if dataset in OTHER_STUDIES:
                    found.setdefault(OTHER_STUDIES[dataset], []).extend(
                        json.loads(f.read_text()) for f in sorted(folder.glob(f"cost/{dataset}/**/*.json")))
    return found


def committed_run_sentence(records: list[dict], models: str = "models") -> str:
    """The one sentence a page uses to state where the committed models (``models``:
    e.g. "CamVid models" for a study on another profile) were trained, from the records'
    `cpu`, `host_class` and `precision` (which must agree)."""
    runs = {(r["cpu"], r["host_class"].split(" (")[0], r["precision"].split()[0]) for r in records}
    assert len(runs) == 1, f"the cost records name several hosts or precisions, no one sentence fits: {sorted(runs)}"
    cpu, host_class, precision = runs.pop()
    assert host_class in HOST_CLASS_WORDS, f"host class {host_class!r}: add the words pages use to HOST_CLASS_WORDS"
    assert precision in PRECISION_WORDS, f"precision {precision!r}: add the words pages use to PRECISION_WORDS"
    article = "an" if cpu[:1].upper() in "AEIOU" else "a"
    return (f"The committed {models} were trained on {article} {cpu} with {HOST_CLASS_WORDS[host_class]}, "
            f"in {PRECISION_WORDS[precision]}.")


def host_statement_problems(text: str, records: list[dict], others: dict[str, list[dict]] | None = None) -> list[str]:
    """Each sentence of ``text`` (outside fenced and generated blocks) that states the
    committed run's host or precision other than by the records' sentence; a sentence
    that names another study's dataset (``others``: :func:`other_study_records`) is held
    to that study's own sentence."""
    others = others or {}
    problems = []
    for sentence in SENTENCE.split(FENCE.sub("", GENERATED.sub("", text))):
        flat = " ".join(sentence.replace("`", "").split())
        word = next((w for w in others if w in flat), None)
        expected = committed_run_sentence(others[word], f"{word} models") if word else committed_run_sentence(records)
        if COMMITTED.search(flat) and HOST_OR_PRECISION.search(flat) and expected not in flat:
            problems.append(f"{flat[:120]!r}: the cost records say {expected!r}")
    return problems


@pytest.mark.parametrize("page", REFERENCE, ids=rel)
def test_the_committed_runs_host_and_precision_are_those_of_its_cost_records(page):
    text = page.read_text()
    assert host_statement_problems(text, cost_records(), other_study_records()) == []
    if rel(page) in STATES_THE_HOST:
        assert committed_run_sentence(cost_records()) in " ".join(text.split())


def test_the_host_check_sees_a_wrong_host_or_precision():
    epyc = [{"cpu": "AMD EPYC", "host_class": "AVX2 only", "precision": "fp32 (OptimWrapper)"}]
    xeon = [{"cpu": "Intel Xeon", "host_class": "native bf16 (amx_bf16, avx512_bf16)",
             "precision": "bf16 autocast on CPU (CPUBF16AmpOptimWrapper), losses in fp32"}]
    text = ("The demo's committed models come from a 2-core Intel Xeon with `avx512_bf16`. "
            "The committed models were trained on an AMD EPYC with AVX2 only, in fp32. It trains other\n"
            "models than the committed bf16 ones by design.\n\n- The committed study is below; the demo "
            "trains in bf16 where the CPU has it.\n```\ncommitted models: bf16\n```\n")
    assert [p[1:12] for p in host_statement_problems(text, epyc)] == ["The demo's ", "It trains o"]
    assert [p[1:12] for p in host_statement_problems(text, xeon)] == ["The demo's ", "The committ", "It trains o"]
    assert committed_run_sentence(xeon) == ("The committed models were trained on an Intel Xeon with native bf16, "
                                            "in bf16 autocast.")
    with pytest.raises(AssertionError, match="several hosts"):
        committed_run_sentence(epyc + xeon)
    # A sentence naming another study's dataset is held to that study's records.
    camvid = ("The committed CamVid models were trained on an Intel Xeon with native bf16, in bf16 autocast. "
              "The committed CamVid models are fp32 ones.")
    assert [p[1:30] for p in host_statement_problems(camvid, epyc, {"CamVid": xeon})] == ["The committed CamVid models a"]


# The committed run's training time, where a page gives it: "N min (the sum of `wall_s` over `metrics/cost/`)".
WALL_SUM = re.compile(r"(\d+) min[^.;]{0,30}?the sum of `wall_s` over\s+`metrics/cost/`")


def wall_sum_problems(text: str, records: list[dict]) -> list[str]:
    minutes = round(sum(r["wall_s"] for r in records) / 60)
    return [f"{m.group(0)}: metrics/cost/ sums to {minutes} min" for m in WALL_SUM.finditer(text)
            if int(m.group(1)) != minutes]


def test_the_committed_runs_training_time_is_the_sum_of_its_cost_records():
    records = [json.loads(f.read_text()) for f in (REPO / "metrics" / "cost").rglob("*.json")]
    stated = [p for p in REFERENCE if WALL_SUM.search(p.read_text())]
    assert len([m for p in stated for m in WALL_SUM.finditer(p.read_text())]) >= 2, \
        "docs/instrument.md gives the committed run's training time (criterion 5, run time)"
    for page in stated:
        assert wall_sum_problems(page.read_text(), records) == [], rel(page)


def test_the_training_time_check_sees_a_stale_sum():
    records = [{"wall_s": 2700.0}, {"wall_s": 930.0}]  # 60.5 min
    assert wall_sum_problems("took 60 min (the sum of `wall_s` over `metrics/cost/`)", records) == []
    assert len(wall_sum_problems("took 72 min, the sum of `wall_s` over\n`metrics/cost/`", records)) == 1


# ---------------------------------------------------------------- the plots page, as dvc.yaml declares it

def declared_plots() -> list[str]:
    """The plots page per dataset/pair as dvc.yaml declares it: each chart's title, then each
    image's path (DVC's HTML puts images after the charts), with `<dataset>`/`<pair>` for the
    matrix items."""
    charts, images = [], []
    for stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values():
        for plot in stage.get("plots") or []:
            path, props = next(iter(plot.items())) if isinstance(plot, dict) else (plot, None)
            if props and props.get("title"):
                charts.append(props["title"])
            elif Path(path).suffix == ".png":
                images.append(path)
    return [re.sub(r"\$\{item\.(\w+)\}", r"<\1>", x) for x in charts + images]


def listed_plots(text: str) -> list[str]:
    """The numbered list of docs/dag.md's "The plots page" section: its first code span per item."""
    section = text.split("## The plots page", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\d+\.\s+`([^`]+)`", section, re.M)


def test_the_plots_page_section_lists_what_dvc_yaml_declares():
    assert listed_plots((REPO / "docs" / "dag.md").read_text()) == declared_plots()


def test_the_plots_list_check_sees_a_missing_chart():
    page = "## The plots page\n\n1. `<dataset> / <pair>: val mIoU of every model`\n2. `x`\n\n## Next\n3. `y`\n"
    assert listed_plots(page) == ["<dataset> / <pair>: val mIoU of every model", "x"]
    assert listed_plots(page) != declared_plots()
