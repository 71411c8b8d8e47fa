"""Static figures of the plots page, for README and for readers without a browser.

The charts are the very specs ``dvc plots show`` draws: the same table, the same
template in ``.dvc/plots/`` and the same properties as ``charts@…`` declares in
``dvc.yaml``, filled by DVC's own renderer (``dvc_render``), then rendered to PNG
offline by ``vl-convert`` (Vega-Lite in an embedded JS engine, no browser, no
network). The qualitative grid is copied scaled down, so the committed PNGs stay
small; the full-size grid is on the page.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .offline_page import VL_VERSION

# (file name, table in the charts folder, plot properties as in dvc.yaml's charts stage)
CHARTS = [
    ("val_miou.png", "mIoU.tsv",
     dict(template="overlay", x="step", y="mIoU", y_label="val mIoU (%)",
          title="{dataset} / {pair}: val mIoU of every model")),
    ("per_class_iou.png", "per_class.tsv",
     dict(template="grouped_bar", x="class", y="IoU", y_label="IoU (%)",
          title="{dataset} / {pair}: per-class IoU of every model")),
]
QUALITATIVE = "qualitative.png"
QUALITATIVE_WIDTH = 960  # px; the demo's grid is 2560 px wide


def chart_spec(table: Path, props: dict, templates_dir: str | Path, **names) -> dict:
    """The Vega-Lite spec DVC renders for ``table`` (rows as DVC reads them, rev 'workspace')."""
    from dvc_render import VegaRenderer

    with open(table, newline="") as f:
        rows = [dict(r, rev="workspace") for r in csv.DictReader(f, delimiter="\t")]
    props = dict(props, title=props["title"].format(**names), template_dir=str(templates_dir))
    return VegaRenderer(rows, str(table), **props).get_filled_template()


def _small_png(img, colours: int) -> bytes:
    """A palette PNG: charts and label maps are a few flat colours, so this is ~6-10x
    smaller than vl-convert's RGBA output (tens of KB at most in git) and looks the same."""
    import io

    out = io.BytesIO()
    img.convert("RGB").quantize(colours).save(out, "PNG", optimize=True)
    return out.getvalue()


def to_png(spec: dict) -> bytes:
    import io

    import vl_convert
    from PIL import Image

    return _small_png(Image.open(io.BytesIO(vl_convert.vegalite_to_png(spec, scale=1, vl_version=VL_VERSION))), 64)


def scaled_png(path: Path, width: int = QUALITATIVE_WIDTH) -> bytes:
    from PIL import Image

    img = Image.open(path)
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    return _small_png(img, 128)


def render(*, charts_dir: Path, qualitative: Path, templates_dir: Path, out_dir: Path,
           dataset: str, pair: str) -> list[str]:
    """Write the figures of one dataset/pair into ``out_dir``; returns the names written.

    A chart whose table is missing or empty (nothing trained yet) and a grid that
    does not exist yet are skipped, as the tables show ``—`` for runs not done.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table, props in CHARTS:
        path = charts_dir / table
        if not path.is_file():
            continue
        spec = chart_spec(path, props, templates_dir, dataset=dataset, pair=pair)
        if spec:  # dvc_render gives {} for a table without rows
            (out_dir / name).write_bytes(to_png(spec))
            written.append(name)
    if qualitative.is_file():
        (out_dir / QUALITATIVE).write_bytes(scaled_png(qualitative))
        written.append(QUALITATIVE)
    return written


CAPTIONS = {"val_miou.png": "val mIoU of every model over training",
            "per_class_iou.png": "per-class IoU of every model",
            QUALITATIVE: "qualitative grid: image, ground truth, edge/body regions, each model's prediction"}


def markdown(figures_dir: str, dataset: str, pair: str, names: list[str]) -> str:
    """README lines embedding the figures (paths relative to the README, at the repo root)."""
    return "\n\n".join(f"![{dataset} / {pair}: {CAPTIONS[n]}]({figures_dir}/{dataset}/{pair}/{n})"
                       for n in names)
