"""Knowledge distillation: the distiller model, the region masks and the methods."""
from .distiller import SegDistiller  # noqa: F401  (registers it with mmseg's MODELS)
