"""The ``prepare`` stage: produce a dataset in mmseg's layout under ``data/prepared``."""
from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path, write_json
from ..params import Params
from . import specs
from .synthetic import CLASSES, generate
from .validate import validate_layout


class RawDataMissing(RuntimeError):
    """The user has not placed a real dataset's raw download yet."""


_HOW_TO_GET = {
    "cityscapes": "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from https://www.cityscapes-dataset.com",
    "ade20k": "ADEChallengeData2016.zip from http://sceneparsing.csail.mit.edu",
    "pascal_context59": "VOCtrainval_03-May-2010.tar and trainval_merged.json (Pascal Context)",
}


def prepare(params: Params, dataset: str, out: str | Path) -> None:
    spec = specs.get(dataset)
    with atomic_path(out, is_dir=True) as tmp:
        if dataset == "synthetic":
            s = params.synthetic()
            generate(tmp, s.num_train, s.num_val, s.height, s.width, s.seed)
            info = dict(dataset=dataset, classes=list(CLASSES), num_train=s.num_train, num_val=s.num_val,
                        image_hw=[s.height, s.width])
        else:
            raw = params.tree.get("data", {}).get(dataset, {}).get("raw_dir")
            raise RawDataMissing(
                f"prepare@{dataset}: the raw dataset is not converted by this version; place "
                f"{_HOW_TO_GET[dataset]} under {raw!r} (params.yaml: data.{dataset}.raw_dir) and "
                f"convert it with mmseg's tools/dataset_converters into mmseg's layout for {spec.mmseg_type}.")
        # Checked before the rename: a dataset with a bad file never appears at ``out``
        # (atomic_path removes the temporary folder when this raises DataError).
        validate_layout(tmp, spec, shown_as=out)
        write_json(Path(tmp) / "dataset.json", info)
