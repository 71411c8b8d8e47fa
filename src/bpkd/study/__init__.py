"""Studies: named grids over params, run as DVC experiments through its queue and
rendered from DVC's own experiment records (README, "Seeds and studies").

``python -m bpkd.study run NAME`` (``make study NAME=…``), ``render NAME``, ``list``.
"""
