"""mmengine's DVCLive visualisation backend, made safe inside a DVC pipeline stage.

``mmengine.visualization.DVCLiveVisBackend._init_env`` runs ``dvc init -f --no-scm``
in the current directory when git has no user signature (the usual state of a CI
machine), which would re-initialise this repository's ``.dvc``; and DVCLive's own
defaults (``dvcyaml='dvc.yaml'``, ``save_dvc_exp=True``) would edit the hand-written
``dvc.yaml`` and create experiments. This subclass only changes how ``Live`` is
created; logging itself is mmengine's.
"""
from mmengine.registry import VISBACKENDS
from mmengine.visualization import DVCLiveVisBackend


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
