"""bpkd-pipeline: knowledge distillation for semantic segmentation on mmsegmentation,
driven by a DVC pipeline (Liu et al., "BPKD: Boundary Privileged Knowledge
Distillation for Semantic Segmentation", WACV 2024, arXiv:2306.08075)."""

__version__ = "0.1.0"
