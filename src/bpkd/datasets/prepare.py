"""The ``prepare`` stage: produce a dataset in mmseg's layout under ``data/prepared``.

synthetic is generated; the real datasets are converted from the raw download the
user placed under ``data/raw/<dataset>`` (one module each: :mod:`.cityscapes`,
:mod:`.ade20k`, :mod:`.pascal_context`)."""
from __future__ import annotations

import importlib
from pathlib import Path

from ..atomic import atomic_path, write_json
from ..params import Params, ParamsError, _int
from . import specs
from .raw import require
from .synthetic import CLASSES, generate
from .validate import DataError, validate_layout

# dataset -> module of this package with ``convert(raw, out) -> dict``.
CONVERTERS = {"cityscapes": "cityscapes", "ade20k": "ade20k", "pascal_context59": "pascal_context",
              "camvid": "camvid"}


def default_raw_dir(dataset: str) -> str:
    """Where dvc.yaml's ``prepare@<dataset>`` declares the raw folder (its dependency)."""
    return f"data/raw/{dataset}"


def raw_dir(params: Params, dataset: str, raw: str | Path | None = None) -> Path:
    """The raw folder: ``raw`` (the stage's ``--raw``), else params' ``data.<dataset>.raw_dir``,
    else the default. Both given and different is an error: DVC would watch one folder
    while the stage reads another."""
    key = f"data.{dataset}.raw_dir"
    configured = _group(params, dataset).get("raw_dir")
    if configured is not None and (not isinstance(configured, str) or not configured):
        raise ParamsError(f"params.yaml: {key} = {configured!r} is invalid; expected a folder path")
    if raw is not None and configured is not None and Path(raw) != Path(configured):
        raise ParamsError(f"params.yaml: {key} = {configured!r} but the stage was given --raw {str(raw)!r} "
                          f"(the folder dvc.yaml declares as its dependency); expected the same folder")
    return Path(raw if raw is not None else configured or default_raw_dir(dataset))


def expected_counts(params: Params, dataset: str) -> dict[str, int]:
    """Image/label pairs per split the prepared dataset must have: params'
    ``data.<dataset>.expected_counts`` (tests use tiny trees), else the official ones."""
    key = f"data.{dataset}.expected_counts"
    spec = specs.get(dataset)
    counts = _group(params, dataset).get("expected_counts", spec.official_counts)
    if (not isinstance(counts, dict) or set(counts) != set(spec.splits)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in counts.values())):
        wanted = ", ".join(f"{split}: N" for split in spec.splits)
        raise ParamsError(f"params.yaml: {key} = {counts!r} is invalid; expected {{{wanted}}}, integers >= 1")
    return dict(counts)


# Datasets whose converter can write the frames at another size than they come
# (``data.<dataset>.height``/``width``), as the demo draws its scenes smaller than the paper's frames.
RESIZABLE = ("camvid",)


def image_hw(params: Params, dataset: str) -> tuple[int, int] | None:
    """The size (height, width) ``prepare`` writes a real dataset's frames at: params'
    ``data.<dataset>.height`` and ``width`` (both or neither), None for the size they come at."""
    group = _group(params, dataset)
    given = [k for k in ("height", "width") if group.get(k) is not None]
    if not given:
        return None
    key = f"data.{dataset}.{given[0]}"
    if dataset not in RESIZABLE:
        raise ParamsError(f"params.yaml: {key} = {group[given[0]]!r} is not supported for {dataset}; "
                          f"expected no height/width (only {', '.join(RESIZABLE)} can be prepared at another size)")
    if len(given) == 1:
        missing = "width" if given == ["height"] else "height"
        raise ParamsError(f"params.yaml: data.{dataset}.{missing} is missing; expected both height and width, "
                          f"or neither (the frames as they come)")
    return tuple(_int(params.tree, f"data.{dataset}.{k}", minimum=16) for k in ("height", "width"))


def _group(params: Params, dataset: str) -> dict:
    group = params.tree.get("data", {}).get(dataset) or {}
    if not isinstance(group, dict):
        raise ParamsError(f"params.yaml: data.{dataset} = {group!r} is invalid; expected a mapping")
    return group


def _classes(spec: specs.DatasetSpec) -> list[str]:
    import mmseg.datasets  # noqa: F401  (registers the dataset classes)
    from mmseg.registry import DATASETS

    from . import mmseg_dataset  # noqa: F401  (registers this package's: CamVid)

    return list(DATASETS.get(spec.mmseg_type).METAINFO["classes"])


def prepare(params: Params, dataset: str, out: str | Path, raw: str | Path | None = None) -> None:
    spec = specs.get(dataset)
    expected, expected_from = None, ""
    if dataset != "synthetic":
        raw = raw_dir(params, dataset, raw)
        expected = expected_counts(params, dataset)
        expected_from = f"params.yaml: data.{dataset}.expected_counts, by default the official counts"
        converter = importlib.import_module(f".{CONVERTERS[dataset]}", __package__)
        size = image_hw(params, dataset)
        # Before anything is created: without the download no folder appears at all.
        require(dataset, raw, converter.PIECES)
    with atomic_path(out, is_dir=True) as tmp:
        if dataset == "synthetic":
            s = params.synthetic()
            generate(tmp, s.num_train, s.num_val, s.height, s.width, s.seed)
            info = dict(dataset=dataset, classes=list(CLASSES), num_train=s.num_train, num_val=s.num_val,
                        image_hw=[s.height, s.width])
        else:
            # A bad raw file is a DataError naming it; atomic_path removes the temporary folder.
            info = converter.convert(Path(raw), Path(tmp), **({"image_hw": size} if size else {}))
        # Checked before the rename: a dataset with a bad file never appears at ``out``
        # (atomic_path removes the temporary folder when this raises DataError).
        try:
            counts = validate_layout(tmp, spec, shown_as=out, expected=expected, expected_from=expected_from)
        except DataError as e:
            if dataset == "synthetic":
                raise
            raise DataError(e.problems, note=f"The files under {out} are links to (or converted from) the raw "
                                             f"files of the same name under {raw}: fix or replace the raw file "
                                             f"and rerun") from None
        if dataset != "synthetic":
            info = dict(dataset=dataset, classes=_classes(spec), **{f"num_{split}": n for split, n in counts.items()},
                        raw_dir=str(raw), **info)
        write_json(Path(tmp) / "dataset.json", info)
