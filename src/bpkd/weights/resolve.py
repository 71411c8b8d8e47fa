"""From "a path or a URL" to a file the pipeline can load: the glue the stages call.

Downloaded files go under ``data/weights/downloads/`` by their published name
(OpenMMLab names embed the hash, so two versions never collide), converted ones
under ``data/weights/<what>/``. Neither should be a DVC stage output: DVC deletes
a stage's outputs before running it, which would throw away both a finished
download and the ``.part`` of an interrupted one; the stage's own output (e.g.
``teacher.pth``) is what DVC tracks.
"""
from __future__ import annotations

from pathlib import Path

from . import registry
from .convert import build_arch, convert_checkpoint
from .download import download

WEIGHTS_DIR = Path("data/weights")


def is_url(source: str) -> bool:
    return str(source).startswith(("http://", "https://"))


def download_path(entry: registry.WeightEntry, weights_dir: str | Path = WEIGHTS_DIR) -> Path:
    """Where :func:`fetch` puts a registry entry."""
    return Path(weights_dir) / "downloads" / entry.filename


def fetch(entry: registry.WeightEntry, weights_dir: str | Path = WEIGHTS_DIR, **kwargs) -> Path:
    """Download a registry entry (verified when it has a hash) into ``weights_dir/downloads``."""
    return download(entry.url, download_path(entry, weights_dir), entry.sha256, mirrors=entry.mirrors, **kwargs)


def fetch_url(url: str, weights_dir: str | Path = WEIGHTS_DIR, sha256: str | None = None, **kwargs) -> Path:
    """Download ``url``; the hash is ``sha256`` or, failing that, the registry's for that URL."""
    entry = registry.find_url(url)
    if sha256 is None and entry is not None:
        sha256 = entry.sha256
    mirrors = tuple(u for u in entry.urls if u != url) if entry is not None else ()
    dest = Path(weights_dir) / "downloads" / url.rsplit("/", 1)[-1]
    return download(url, dest, sha256, mirrors=mirrors, **kwargs)


def loadable_checkpoint(source: str, arch: str, num_classes: int, weights_dir: str | Path = WEIGHTS_DIR,
                        sha256: str | None = None, **kwargs) -> Path:
    """A plain checkpoint of ``arch`` from ``source``.

    A local path is returned as it is (files trained here are already plain). A
    URL is downloaded, then converted onto ``arch`` (mmrazor prefixes, teacher
    keys, nesting) into ``weights_dir/converted/<arch>/<name>``; the conversion
    fails if any weight of the model is missing.
    """
    if not is_url(source):
        return Path(source)
    raw = fetch_url(source, weights_dir, sha256, **kwargs)
    out = Path(weights_dir) / "converted" / arch / raw.name
    conv = convert_checkpoint(raw, build_arch(arch, num_classes), out)
    print(f"{out}: converted from {source}: {conv.summary()}")
    return out


def teacher_checkpoint(dataset: str, pair: str, out: str | Path, num_classes: int,
                       weights_dir: str | Path = WEIGHTS_DIR, **kwargs) -> Path:
    """The paper's teacher for ``dataset``/``pair``, downloaded, verified and saved
    to ``out`` as a plain checkpoint of the pair's teacher architecture."""
    from ..models.pairs import arch_of

    entry = registry.teacher(dataset, pair)
    raw = fetch(entry, weights_dir, **kwargs)
    conv = convert_checkpoint(raw, build_arch(arch_of(pair, "teacher"), num_classes), out)
    print(f"{out}: teacher from {entry.url}: {conv.summary()}")
    return Path(out)


def backbone_init_cfg(arch: str, weights_dir: str | Path = WEIGHTS_DIR, fetch_now: bool = True, **kwargs) -> dict:
    """Download the ImageNet backbone of ``arch`` and return the mmengine
    ``init_cfg`` that loads it from the local file (set it as the model's
    ``backbone.init_cfg`` and set ``model.pretrained = None``). With
    ``fetch_now=False`` (a dry run) nothing is downloaded: the path is where it will be."""
    entry = registry.backbone(arch)
    path = fetch(entry, weights_dir, **kwargs) if fetch_now else download_path(entry, weights_dir)
    cfg = dict(type="Pretrained", checkpoint=str(path))
    if entry.prefix:
        cfg["prefix"] = entry.prefix
    return cfg
