"""Evaluation with mmseg's IoUMetric."""
