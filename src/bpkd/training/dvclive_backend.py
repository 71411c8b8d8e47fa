"""mmengine's DVCLive visualisation backend, made safe inside a DVC pipeline stage.

``mmengine.visualization.DVCLiveVisBackend._init_env`` runs ``dvc init -f --no-scm``
in the current directory when git has no user signature (the usual state of a CI
machine), which would re-initialise this repository's ``.dvc``; and DVCLive's own
defaults (``dvcyaml='dvc.yaml'``, ``save_dvc_exp=True``) would edit the hand-written
``dvc.yaml`` and create experiments. This subclass only changes how ``Live`` is
created, and makes the step log a function of the training alone, since it is a DVC
output whose md5 must not change when the same stage runs again (or resumes): it
leaves mmengine's wall-clock timers (``time``, ``data_time``) out (they stay in
mmengine's text log in the work dir), logs the config as an uninterrupted run has it
(without the resume switches a resumed run sets), and rewrites DVCLive's summary
``metrics.json`` from the step log when the run ends (``bpkd.training.resume.summary_of``).
"""
import json
from pathlib import Path

from mmengine.registry import VISBACKENDS
from mmengine.visualization import DVCLiveVisBackend

WALL_CLOCK = frozenset({"time", "data_time"})


@VISBACKENDS.register_module()
class PipelineDVCLiveVisBackend(DVCLiveVisBackend):
    """DVCLive backend that writes step logs to ``save_dir`` and nothing else:
    no ``dvc.yaml`` edits, no experiment refs, no artifacts, no ``dvc init``."""

    def __init__(self, save_dir: str, init_kwargs: dict | None = None) -> None:
        super().__init__(save_dir, artifact_suffix=(), init_kwargs=init_kwargs)

    def _init_env(self) -> None:
        from dvclive import Live

        kwargs = dict(dir=self._save_dir, dvcyaml=None, save_dvc_exp=False, report=None,
                      cache_images=False, monitor_system=False)
        kwargs.update(self._init_kwargs or {})
        self._dvclive = Live(**kwargs)

    def add_config(self, config, **kwargs) -> None:
        from mmengine.config import Config

        plain = config.to_dict()
        plain["resume"] = False
        for backend in plain.get("visualizer", {}).get("vis_backends", []):
            (backend.get("init_kwargs") or {}).pop("resume", None)
            if backend.get("init_kwargs") == {}:
                del backend["init_kwargs"]
        super().add_config(Config(plain), **kwargs)

    def add_scalar(self, name: str, value, step: int = 0, **kwargs) -> None:
        if name not in WALL_CLOCK:
            super().add_scalar(name, value, step, **kwargs)

    def close(self) -> None:
        super().close()
        if hasattr(self, "_dvclive"):  # as mmengine's close(): only a backend that logged
            from .resume import summary_of

            path = Path(self._save_dir) / "metrics.json"
            path.write_text(json.dumps(summary_of(self._save_dir), indent=4) + "\n")
