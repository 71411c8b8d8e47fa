"""Where every weight file comes from: ``registry.yaml`` next to this module.

The data lives in a YAML file rather than in code so that a URL or a hash can be
corrected (or a full SHA-256 pinned once a file has been fetched) without touching
any logic, and so that the closing note of issue 4 can list it as it is. This
module only reads it, checks its shape once (an error names the offending key), and
answers four questions: which teacher for a dataset and pair, which ImageNet
backbone an architecture starts from, which released student checkpoint the paper's
tables report, and which architecture that checkpoint is evaluated as.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import CheckpointError

REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
# The paper's datasets: each lists a teacher for every pair (teacher@ downloads it there).
DATASETS = ("cityscapes", "ade20k", "pascal_context59")
# Datasets whose teacher trains here (teacher@synthetic-…): an entry may list released
# students of one's own for some pairs, and no teacher. The shipped file lists none.
TRAINED_TEACHER_DATASETS = ("synthetic", "camvid")
RELEASED_MODELS = ("baseline", "skds", "ifvd", "cirkd", "cwd", "bpkd")
_HEX = re.compile(r"^[0-9a-f]{8,64}$")
_ENTRY_KEYS = {"url", "sha256", "mirrors", "arch", "readme_url", "note", "prefix"}


class RegistryError(CheckpointError):
    """``registry.yaml`` is malformed, or asks for a weight it does not list."""


@dataclass(frozen=True)
class WeightEntry:
    """One downloadable file.

    ``sha256`` is a full hex digest or a prefix of at least 8 digits, or ``None``
    when no hash is published (the download is then reported as unverified).
    ``prefix`` is the key prefix under which a backbone's weights sit in the file.
    """

    key: str  # where it sits in the registry, for messages: "cityscapes.pspnet_r101_r18.teacher"
    url: str
    sha256: str | None
    mirrors: tuple[str, ...] = ()
    arch: str | None = None
    readme_url: str | None = None
    note: str | None = None
    prefix: str | None = None

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _entry(key: str, raw) -> WeightEntry:
    if not isinstance(raw, dict):
        raise RegistryError(f"{REGISTRY_FILE}: {key}: expected a mapping with url and sha256, got {raw!r}")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise RegistryError(f"{REGISTRY_FILE}: {key}: unknown fields {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}")
    for field in ("url", "sha256"):
        if field not in raw:
            raise RegistryError(f"{REGISTRY_FILE}: {key}: missing '{field}' (write `sha256: null` if no hash is known)")
    mirrors = raw.get("mirrors") or []
    for url in [raw["url"], *mirrors]:
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise RegistryError(f"{REGISTRY_FILE}: {key}: not an http(s) URL: {url!r}")
    sha = raw["sha256"]
    if sha is not None and not (isinstance(sha, str) and _HEX.match(sha)):
        raise RegistryError(f"{REGISTRY_FILE}: {key}.sha256: expected 8 to 64 lowercase hex digits or null, got {sha!r}")
    return WeightEntry(key=key, url=raw["url"], sha256=sha, mirrors=tuple(mirrors), arch=raw.get("arch"),
                       readme_url=raw.get("readme_url"), note=raw.get("note"), prefix=raw.get("prefix"))


@dataclass(frozen=True)
class Registry:
    backbones: dict[str, WeightEntry]  # keyed by mmseg's `pretrained` value
    teachers: dict[tuple[str, str], WeightEntry]
    released: dict[tuple[str, str, str], WeightEntry]

    def entries(self) -> list[WeightEntry]:
        return [*self.backbones.values(), *self.teachers.values(), *self.released.values()]


def _check_arch(entry: WeightEntry, archs) -> WeightEntry:
    if entry.arch is not None and entry.arch not in archs:
        raise RegistryError(f"{REGISTRY_FILE}: {entry.key}.arch: unknown architecture {entry.arch!r}; "
                            f"expected one of {sorted(archs)} (bpkd/models/pairs.py)")
    return entry


def parse(data, pairs=None) -> Registry:
    """Validate the loaded YAML ``data``; every problem names its key."""
    from ..models.pairs import ARCHS, PAIRS

    pairs = PAIRS if pairs is None else pairs
    if not isinstance(data, dict) or set(data) != {"backbones", "datasets"}:
        raise RegistryError(f"{REGISTRY_FILE}: expected exactly the top-level keys 'backbones' and 'datasets'")
    backbones = {name: _entry(f"backbones.{name}", raw) for name, raw in (data["backbones"] or {}).items()}
    teachers, released = {}, {}
    datasets = data["datasets"] or {}
    for dataset in DATASETS:
        if dataset not in datasets:
            raise RegistryError(f"{REGISTRY_FILE}: datasets.{dataset}: missing")
    for dataset, by_pair in datasets.items():
        if dataset not in (*DATASETS, *TRAINED_TEACHER_DATASETS):
            raise RegistryError(f"{REGISTRY_FILE}: datasets.{dataset}: unknown dataset; expected one of "
                                f"{(*DATASETS, *TRAINED_TEACHER_DATASETS)}")
        downloaded = dataset in DATASETS
        for pair in pairs if downloaded else ():
            if pair not in (by_pair or {}):
                raise RegistryError(f"{REGISTRY_FILE}: datasets.{dataset}.{pair}: missing")
        for pair, raw in (by_pair or {}).items():
            key = f"datasets.{dataset}.{pair}"
            if pair not in pairs:
                raise RegistryError(f"{REGISTRY_FILE}: {key}: unknown pair; expected one of {sorted(pairs)}")
            if not isinstance(raw, dict) or (downloaded and "teacher" not in raw):
                raise RegistryError(f"{REGISTRY_FILE}: {key}.teacher: missing")
            extra = set(raw) - {"teacher", "released"}
            if extra:
                raise RegistryError(f"{REGISTRY_FILE}: {key}: unknown fields {sorted(extra)}")
            if not downloaded and "teacher" in raw:
                raise RegistryError(f"{REGISTRY_FILE}: {key}.teacher: teacher@{dataset}-{pair} trains its teacher, "
                                    f"it downloads none; list released students only")
            if downloaded:
                teachers[dataset, pair] = _entry(f"{key}.teacher", raw["teacher"])
                if teachers[dataset, pair].arch is not None:  # the teacher stage builds the pair's teacher only
                    raise RegistryError(f"{REGISTRY_FILE}: {key}.teacher.arch: a teacher must be of the pair's "
                                        f"teacher architecture; `arch` is for released students only")
            for model, entry in (raw.get("released") or {}).items():
                if model not in RELEASED_MODELS:
                    raise RegistryError(f"{REGISTRY_FILE}: {key}.released.{model}: unknown model; "
                                        f"expected one of {RELEASED_MODELS}")
                released[dataset, pair, model] = _check_arch(_entry(f"{key}.released.{model}", entry), ARCHS)
    return Registry(backbones, teachers, released)


@functools.lru_cache(maxsize=1)
def load(path: str | Path = REGISTRY_FILE) -> Registry:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise RegistryError(f"{path}: not valid YAML: {e}") from e
    return parse(data)


def teacher(dataset: str, pair: str) -> WeightEntry:
    """The teacher checkpoint of ``pair`` trained on ``dataset``."""
    reg = load()
    if (dataset, pair) not in reg.teachers:
        raise RegistryError(f"no teacher for dataset {dataset!r} and pair {pair!r} in {REGISTRY_FILE}; "
                            f"known: {sorted(reg.teachers)}")
    return reg.teachers[dataset, pair]


def released(dataset: str, pair: str, model: str) -> WeightEntry:
    """The released student ``model`` (baseline or a method) of the paper's tables."""
    reg = load()
    if (dataset, pair, model) not in reg.released:
        have = sorted(m for d, p, m in reg.released if (d, p) == (dataset, pair))
        raise RegistryError(f"the paper's README releases no {model!r} checkpoint for {dataset}/{pair} "
                            f"(released there: {have or 'none'})")
    return reg.released[dataset, pair, model]


def released_arch(dataset: str, pair: str, model: str) -> str:
    """The architecture (a key of ``bpkd.models.pairs.ARCHS``) that the released
    ``model`` of ``dataset``/``pair`` is built and evaluated as: the pair's student,
    unless the file is of another one (its ``arch``, e.g. the Cityscapes PSPNet
    baseline, mmseg's pspnet_r18b)."""
    from ..models.pairs import arch_of

    return released(dataset, pair, model).arch or arch_of(pair, "student")


def pretrained_of(arch: str) -> str | None:
    """The ``pretrained`` value of mmseg's config for ``arch`` (e.g. 'open-mmlab://resnet18_v1c')."""
    from ..models.build import model_config

    return model_config(arch, num_classes=2, crop=(64, 64), pretrained=True).get("pretrained")


def backbone(arch: str) -> WeightEntry:
    """The ImageNet-pretrained backbone that mmseg's config for ``arch`` initialises from.

    Read from the config itself (not repeated in the YAML), so the registry can
    never disagree with the model that is actually built.
    """
    source = pretrained_of(arch)
    reg = load()
    if source not in reg.backbones:
        raise RegistryError(f"{arch}: its mmseg config initialises from {source!r}, which {REGISTRY_FILE} "
                            f"does not list under 'backbones'")
    return reg.backbones[source]


def find_url(url: str) -> WeightEntry | None:
    """The registry entry serving ``url`` (as its URL or a mirror), to learn its hash."""
    for entry in load().entries():
        if url in entry.urls:
            return entry
    return None
