"""Reading and validating ``params.yaml``.

Every stage calls :func:`load` first, so a misspelt name or an impossible value
fails in seconds, before any model is built, with a message naming the key, the
value and what is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .cli import CPU_CAPABILITIES
from .errors import UserError

PARAMS_FILE = "params.yaml"
ROLES = ("teacher", "student")
# The baseline student trained for as many iterations as a distillation's compute buys
# (`profiles.<profile>.same_compute.iters`, over `same_compute_seeds`): a row of its own.
SAME_COMPUTE = "baseline_same_compute"
# Training precision (bpkd.training.amp): fp32, or mixed with fp16 / bf16 autocast.
# Not "off": YAML 1.1 (PyYAML, which reads params.yaml) reads an unquoted off as false,
# and `dvc exp run -S ...amp=off` writes it unquoted.
AMP_MODES = ("fp32", "fp16", "bf16")
# Tensor layout of a training run's model (bpkd.training.memory_format).
MEMORY_FORMATS = ("contiguous", "channels_last")


class ParamsError(UserError, ValueError):
    """A value in params.yaml is missing or not allowed."""


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ParamsError(f"params.yaml: {key} = {value!r} is invalid; expected {allowed}")


def _get(tree: dict, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"params.yaml: missing key {dotted!r}")
        node = node[part]
    return node


def _int(tree: dict, key: str, minimum: int = 1) -> int:
    v = _get(tree, key)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        _fail(key, v, f"an integer >= {minimum}")
    return v


def _num(tree: dict, key: str, positive: bool = False) -> float:
    v = _get(tree, key)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or (positive and v == 0):
        _fail(key, v, "a number > 0" if positive else "a number >= 0")
    return float(v)


def _names(tree: dict, key: str, allowed: list[str], may_be_empty: bool = False) -> list[str]:
    v = _get(tree, key)
    if not isinstance(v, list) or not (v or may_be_empty):
        _fail(key, v, f"a {'' if may_be_empty else 'non-empty '}list of names from {allowed}")
    for name in v:
        if name not in allowed:
            _fail(key, name, f"one of {allowed}")
    if len(set(v)) != len(v):
        _fail(key, v, "a list without repeated names")
    return v


def _bool(tree: dict, key: str) -> bool:
    v = _get(tree, key)
    if not isinstance(v, bool):
        _fail(key, v, "true or false")
    return v


def _choice(tree: dict, key: str, allowed: list[str]) -> str:
    v = _get(tree, key)
    if v not in allowed:
        _fail(key, v, f"one of {allowed}")
    return v


def _seeds(tree: dict, key: str = "seeds", may_be_empty: bool = False) -> list[int]:
    """Each student trains once per seed (a DVC matrix axis; README, "Seeds and studies")."""
    v = _get(tree, key)
    if (not isinstance(v, list) or not (v or may_be_empty) or len(set(v)) != len(v)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)):
        _fail(key, v, f"a {'' if may_be_empty else 'non-empty '}list of distinct integers >= 0, e.g. [0] or [0, 1, 2]")
    return v


@dataclass(frozen=True)
class BoundarySettings:
    max_distance: int  # px at the paper's resolution; bins up to it, then the interior
    panel_images: list  # validation indices of the uncertainty panels
    cam_image: int  # validation index of the CAM figure
    cam_class: str  # class name whose CAM is drawn
    kl_scale: float  # nats at the top of the KL colour scale (larger values saturate)


@dataclass(frozen=True)
class TrainSettings:
    """Schedule and data settings of one training run (teacher or student)."""

    iters: int
    val_interval: int
    batch_size: int
    crop: tuple[int, int] | None
    lr: float
    momentum: float
    weight_decay: float
    poly_power: float
    min_lr: float
    log_interval: int
    checkpoint_interval: int
    num_workers: int
    seed: int
    deterministic: bool
    diff_rank_seed: bool
    cpu_capability: str | None
    nproc: int
    pretrained_backbone: bool
    amp: str
    memory_format: str = "contiguous"
    compile: bool = False

    @property
    def batch_per_process(self) -> int:
        return self.batch_size // self.nproc


@dataclass(frozen=True)
class SyntheticSettings:
    num_train: int
    num_val: int
    height: int
    width: int
    seed: int


class Params:
    """Validated view of params.yaml for the active profile."""

    def __init__(self, tree: dict, source: str = PARAMS_FILE) -> None:
        # Late imports keep `--help` of every stage instant.
        from .datasets.specs import DATASETS
        from .distill.losses import METHODS
        from .models.pairs import PAIRS

        self.tree = tree
        self.source = source
        self.profile = _choice(tree, "profile", sorted(_get(tree, "profiles")))
        self.datasets = _names(tree, "datasets", sorted(DATASETS))
        self.pairs = _names(tree, "pairs", sorted(PAIRS))
        # The distillation methods trained here ([]: none, e.g. when every student is released).
        self.methods = _names(tree, "methods", list(METHODS), may_be_empty=True)
        for key in ("models", "released"):
            if isinstance(tree.get(key), list) and "teacher" in tree[key]:
                _fail(key, tree[key], "students only: the teacher is trained or downloaded by teacher@… and "
                                      "always evaluated by evaluate_teacher@…; remove 'teacher'")
        if isinstance(tree.get("models"), list) and "baseline" in tree["models"]:
            _fail("models", tree["models"], "distilled students only: the baseline student trains and is "
                                            "evaluated once per seed of `baseline_seeds`; remove 'baseline'")
        # The distilled students trained and evaluated here, once per seed of `seeds`.
        self.models = _names(tree, "models", self.methods, may_be_empty=True)
        # Models evaluated from the paper's released checkpoints instead of trained ones: the
        # baseline or any method, whether `methods` trains it or not (`methods: []` with
        # every model released trains no student); registry.yaml must list one of them for
        # each dataset and pair (_check_released_in_registry).
        self.released = _names(tree, "released", ["baseline", *METHODS], may_be_empty=True)
        self.seeds = _seeds(tree)
        # The baseline student's seeds ([] only when it is released instead of trained).
        self.baseline_seeds = _seeds(tree, "baseline_seeds", may_be_empty="baseline" in self.released)
        both = sorted(set(self.models) & set(self.released))
        if both:
            _fail("released", tree["released"], f"names not also in `models` (both would write "
                                                f"metrics/eval/…/<model>.json): remove {both} from one of them")
        if "baseline" in self.released and self.baseline_seeds:
            _fail("released", tree["released"], f"'baseline' only with baseline_seeds = [] (the baseline is "
                                                f"also trained here over baseline_seeds = {self.baseline_seeds}): "
                                                "set baseline_seeds: [] or remove 'baseline' from released")
        self._check_released_in_registry()
        missing = [s for s in self.seeds if s not in self.baseline_seeds]
        if self.baseline_seeds and missing:
            raise ParamsError(f"params.yaml: seeds = {self.seeds} has seeds missing from baseline_seeds = "
                              f"{self.baseline_seeds}: add {', '.join(map(str, missing))} to baseline_seeds "
                              "(each method is compared with the baseline trained on the same seed)")
        # The baseline given a distillation's compute (`same_compute_seeds`, [] by default:
        # the three-seed study turns it on); paired with the baseline of the same seed.
        self.same_compute_seeds = (_seeds(tree, "same_compute_seeds", may_be_empty=True)
                                   if "same_compute_seeds" in tree else [])
        missing = [s for s in self.same_compute_seeds if s not in self.baseline_seeds]
        if missing:
            raise ParamsError(f"params.yaml: same_compute_seeds = {self.same_compute_seeds} has seeds missing from "
                              f"baseline_seeds = {self.baseline_seeds}: add {', '.join(map(str, missing))} to "
                              "baseline_seeds (the same-compute baseline is compared with the baseline of its seed)")
        # The students trained and evaluated here (the teacher, an input, is always evaluated).
        self.students = ((["baseline"] if self.baseline_seeds else []) + self.models
                         + ([SAME_COMPUTE] if self.same_compute_seeds else []))
        self.train = {role: self._train(role) for role in ROLES}

    def _check_released_in_registry(self) -> None:
        """bpkd/weights/registry.yaml must list a checkpoint of ``released`` for each dataset
        and pair of the run: failing here, at any stage's start, beats a table of `—` after
        the teacher has trained. A model with no file for one pair (Cityscapes' HRNet CIRKD,
        Pascal Context's HRNet baseline: the paper's README links none) is allowed:
        released@ records that, and its row shows `—` as in the paper's README."""
        if not self.released:
            return
        from .weights import registry

        listed = registry.load().released
        bare = [f"{d}/{p}" for d in self.datasets for p in self.pairs
                if not any((d, p, m) in listed for m in self.released)]
        if bare:
            _fail("released", self.tree["released"],
                  f"models with a released checkpoint for each dataset and pair of the run; "
                  f"{registry.REGISTRY_FILE} lists none of them for {', '.join(bare)}: remove that dataset or pair "
                  "from `datasets`/`pairs`, or list checkpoints of your own there (docs/weights.md)")

    def same_compute(self) -> TrainSettings:
        """The student's settings with ``profiles.<profile>.same_compute.iters`` iterations
        (validated only by the stage that trains it: a profile may leave it out)."""
        import dataclasses

        iters = _int(self.tree, f"profiles.{self.profile}.same_compute.iters")
        return dataclasses.replace(self.train["student"], iters=iters, val_interval=iters)

    def _train(self, role: str) -> TrainSettings:
        base = f"profiles.{self.profile}"
        t, r = f"{base}.train", f"{base}.{role}"
        crop = _get(self.tree, f"{t}.crop")
        if crop is not None and not (
            isinstance(crop, list) and len(crop) == 2 and all(isinstance(c, int) and c >= 8 for c in crop)
        ):
            _fail(f"{t}.crop", crop, "null (the dataset's default) or [height, width], integers >= 8")
        nproc = _int(self.tree, f"{t}.nproc")
        batch = _int(self.tree, f"{t}.batch_size")
        if batch % nproc:
            _fail(f"{t}.batch_size", batch, f"a multiple of {t}.nproc = {nproc} (the batch is split over processes)")
        iters = _int(self.tree, f"{r}.iters")
        return TrainSettings(
            iters=iters,
            val_interval=_int(self.tree, f"{r}.val_interval"),
            batch_size=batch,
            crop=tuple(crop) if crop else None,
            lr=_num(self.tree, f"{t}.lr", positive=True),
            momentum=_num(self.tree, f"{t}.momentum"),
            weight_decay=_num(self.tree, f"{t}.weight_decay"),
            poly_power=_num(self.tree, f"{t}.poly_power", positive=True),
            min_lr=_num(self.tree, f"{t}.min_lr"),
            log_interval=_int(self.tree, f"{t}.log_interval"),
            checkpoint_interval=_int(self.tree, f"{t}.checkpoint_interval"),
            num_workers=_int(self.tree, f"{t}.num_workers", minimum=0),
            seed=_int(self.tree, f"{t}.randomness.seed", minimum=0),
            deterministic=_bool(self.tree, f"{t}.randomness.deterministic"),
            diff_rank_seed=_bool(self.tree, f"{t}.randomness.diff_rank_seed"),
            cpu_capability=_choice(self.tree, f"{t}.cpu_capability", [None, *CPU_CAPABILITIES]),
            nproc=nproc,
            pretrained_backbone=_bool(self.tree, f"{t}.pretrained_backbone"),
            amp=self._amp(f"{t}.amp"),
            memory_format=_choice(self.tree, f"{t}.memory_format", list(MEMORY_FORMATS)),
            compile=_bool(self.tree, f"{t}.compile"),
        )

    def _amp(self, key: str) -> str:
        value = _get(self.tree, key)
        if isinstance(value, bool):  # an unquoted off/no/false/on/yes/true in YAML
            _fail(key, value, f"one of {list(AMP_MODES)} (YAML reads an unquoted off or on as a boolean; "
                              "fp32 is full precision)")
        return _choice(self.tree, key, list(AMP_MODES))

    def synthetic(self) -> SyntheticSettings:
        key = f"profiles.{self.profile}.synthetic"
        return SyntheticSettings(
            num_train=_int(self.tree, f"{key}.num_train"),
            num_val=_int(self.tree, f"{key}.num_val"),
            height=_int(self.tree, f"{key}.height", minimum=16),
            width=_int(self.tree, f"{key}.width", minimum=16),
            seed=_int(self.tree, "data.synthetic.seed", minimum=0),
        )

    def boundary(self) -> BoundarySettings:
        """The ``boundary@`` stage's knobs (distance profile, uncertainty panels, CAM)."""
        panels = _get(self.tree, "boundary.panel_images")
        if (not isinstance(panels, list) or not panels
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in panels)):
            _fail("boundary.panel_images", panels, "a non-empty list of validation indices >= 0, e.g. [0, 1]")
        cam_class = _get(self.tree, "boundary.cam_class")
        if not isinstance(cam_class, str) or not cam_class:
            _fail("boundary.cam_class", cam_class, "a class name of the dataset, e.g. car")
        return BoundarySettings(max_distance=_int(self.tree, "boundary.max_distance"), panel_images=panels,
                                cam_image=_int(self.tree, "boundary.cam_image", minimum=0), cam_class=cam_class,
                                kl_scale=_num(self.tree, "boundary.kl_scale", positive=True))

    def group(self, name: str) -> dict:
        """A params group that must be a mapping (e.g. a method's knobs)."""
        value = _get(self.tree, name)
        if not isinstance(value, dict):
            _fail(name, value, "a mapping of knobs")
        return dict(value)

    def term_balance_interval(self) -> int:
        """``profiles.<profile>.term_balance.interval``: steps between two measurements of a
        distillation's loss-term balance (bpkd.distill.term_balance); 0: never."""
        return _int(self.tree, f"profiles.{self.profile}.term_balance.interval", minimum=0)

    def seeds_of(self, model: str) -> list[int]:
        """The seeds a trained student runs over: ``baseline_seeds`` for the baseline,
        ``same_compute_seeds`` for the same-compute baseline, else ``seeds``."""
        return {"baseline": self.baseline_seeds, SAME_COMPUTE: self.same_compute_seeds}.get(model, self.seeds)

    def check(self, key: str, value):
        """Check a name given on a stage's command line against its params list."""
        allowed = {"dataset": self.datasets, "pair": self.pairs, "method": self.methods, "model": self.students,
                   "released": self.released, "seed": self.seeds, "baseline_seed": self.baseline_seeds,
                   "same_compute_seed": self.same_compute_seeds}[key]
        if value not in allowed:
            flag = {"released": "model", "baseline_seed": "seed", "same_compute_seed": "seed"}.get(key, key)
            lists = {"dataset": "`datasets`", "pair": "`pairs`", "method": "`methods`",
                     "model": "`models` (plus 'baseline' while `baseline_seeds` is not [])",
                     "released": "`released`", "seed": "`seeds`", "baseline_seed": "`baseline_seeds`",
                     "same_compute_seed": "`same_compute_seeds`"}
            raise ParamsError(f"--{flag} {value!r} is not in params.yaml's list {lists[key]} {allowed}")
        return value


def load(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found (run the stage from the repository root)")
    with open(path) as f:
        tree = yaml.safe_load(f)
    if not isinstance(tree, dict):
        raise ParamsError(f"{path}: expected a YAML mapping at the top level")
    return Params(tree, str(path))
