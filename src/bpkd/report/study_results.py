"""README's results from a committed several-seed study (``python -m bpkd.study render
seeds`` writes its snapshot, :func:`bpkd.study.seeded.snapshot`).

The default ``dvc repro`` trains one seed of each method, so that its cost stays the
demo's; the three-seed run is a study of its own (``studies.seeds``). Its snapshot holds
the evaluations, costs and complexity its tables read, with the params they ran at,
so the ``report`` stage renders README's results block from it on every run, and a
reader never ranks the methods from one seed. A snapshot of another profile than the
current one (the demo's, when the smoke profile runs) is not used.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


class SnapshotError(UserError, ValueError):
    """A study snapshot is unreadable or incomplete (the message names the file)."""


@dataclass(frozen=True)
class StudyResults:
    folder: Path
    info: dict  # study.json

    @property
    def params(self) -> dict:
        return self.info["params"]

    def render_kwargs(self) -> dict:
        """What :func:`bpkd.report.tables.render` needs besides the folder."""
        p = self.params
        return dict(seeds=p["seeds"], released=p.get("released") or [], baseline_seeds=p["baseline_seeds"],
                    same_compute_seeds=p.get("same_compute_seeds") or [])

    def title(self) -> str:
        """The block's heading."""
        return f"The committed `{self.info['study']}` study"

    def source(self) -> str:
        """The block's first sentences: that it shows the committed study, not the reader's
        own run, where that run's tables are, and how to render a study of one's own here."""
        i = self.info
        return (f"This block is the committed `{i['study']}` study, not your run: experiment `{i['experiment']}`, "
                f"based on commit `{i['based_on'][:7]}`, rendered {i['rendered']} from its snapshot "
                f"`{self.folder.as_posix()}/`, every student over several seeds (its full tables: "
                f"`metrics/studies/{i['study']}.md`). Your own `dvc repro` writes its tables to `metrics/tables.md`; "
                f"to show your own study here, run it and render it (`make study NAME={i['study']}`, then "
                f"`python -m bpkd.study render {i['study']}`), which rewrites the snapshot this block is read from.")


REQUIRED = ("study", "point", "experiment", "based_on", "rendered", "params")
REQUIRED_PARAMS = ("profile", "datasets", "pairs", "methods", "seeds", "baseline_seeds")


def load(folder: str | Path | None, profile: str, datasets: list[str]) -> StudyResults | None:
    """The snapshot in ``folder`` if it was made on ``profile`` and covers ``datasets``;
    None if there is none or it is of another profile or datasets."""
    if not folder:
        return None
    folder = Path(folder)
    path = folder / "study.json"
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SnapshotError(f"{path}: not JSON ({e}); expected the study.json of `python -m bpkd.study render`")
    missing = [k for k in REQUIRED if k not in info] + [f"params.{k}" for k in REQUIRED_PARAMS
                                                         if k not in (info.get("params") or {})]
    if missing:
        raise SnapshotError(f"{path}: missing {', '.join(missing)}; render the study again")
    if info["params"]["profile"] != profile or not set(datasets) <= set(info["params"]["datasets"]):
        return None
    return StudyResults(folder, info)
