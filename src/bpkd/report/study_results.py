"""README's results from the committed several-seed studies (``python -m bpkd.study render
<study>`` writes each one's snapshot, :func:`bpkd.study.seeded.snapshot`; the block:
:mod:`bpkd.report.summary`).

The default ``dvc repro`` trains one seed of each method, so that its cost stays the
demo's; the three-seed run is a study of its own (``studies.seeds``). Its snapshot holds
the evaluations, costs and complexity its tables read, with the params they ran at,
so the ``report`` stage renders README's results block from it on every run, and a
reader never ranks the methods from one seed. The block shows the run's own study only
when its snapshot was made on the run's profile (the demo's: not when the smoke profile
runs), and then the other committed studies beside it (CamVid's, on its own profile).
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


REQUIRED = ("study", "point", "experiment", "based_on", "rendered", "params")
REQUIRED_PARAMS = ("profile", "datasets", "pairs", "methods", "seeds", "baseline_seeds")


def load(folder: str | Path | None, profile: str | None = None,
         datasets: list[str] | None = None) -> StudyResults | None:
    """The snapshot in ``folder`` if it was made on ``profile`` and covers ``datasets``
    (either None: any); None if there is none or it is of another profile or datasets."""
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
    if ((profile is not None and info["params"]["profile"] != profile)
            or (datasets is not None and not set(datasets) <= set(info["params"]["datasets"]))):
        return None
    return StudyResults(folder, info)
