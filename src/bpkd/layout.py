"""Where each model's files live.

The teacher is an input of a dataset/pair (trained once, or downloaded) and so is a
released checkpoint: their files sit directly under ``<dataset>/<pair>/``. Every
student trained here runs once per seed of ``params.yaml`` (each method per seed of
``seeds``, the baseline per seed of ``baseline_seeds``) and lives under
``<dataset>/<pair>/seed<N>/``, so runs of different seeds never share a file and
DVC's matrix gives each its own stage.
"""
from __future__ import annotations


def seed_dir(seed: int | None) -> str:
    """``seed<N>/`` for a student run, nothing for the teacher or a released checkpoint."""
    return "" if seed is None else f"seed{seed}/"


def checkpoint(dataset: str, pair: str, model: str, seed: int | None = None) -> str:
    return f"data/models/{dataset}/{pair}/{seed_dir(seed)}{model}.pth"


def train_log(dataset: str, pair: str, model: str, seed: int | None = None) -> str:
    return f"metrics/{dataset}/{pair}/train/{seed_dir(seed)}{model}"


def work_dir(dataset: str, pair: str, model: str, seed: int | None = None) -> str:
    return f"data/work/{dataset}/{pair}/{seed_dir(seed)}{model}"


def eval_json(dataset: str, pair: str, model: str, seed: int | None = None, metrics: str = "metrics") -> str:
    return f"{metrics}/eval/{dataset}/{pair}/{seed_dir(seed)}{model}.json"


def per_class_json(dataset: str, pair: str, model: str, seed: int | None = None, metrics: str = "metrics") -> str:
    return f"{metrics}/per_class/{dataset}/{pair}/{seed_dir(seed)}{model}.json"


def cost_json(dataset: str, pair: str, model: str, seed: int | None = None, metrics: str = "metrics") -> str:
    """What a training run cost (``bpkd.training.cost``): wall time, step time, steps, host."""
    return f"{metrics}/cost/{dataset}/{pair}/{seed_dir(seed)}{model}.json"
