"""A study's declaration: ``params.yaml``'s ``studies.<name>``.

No stage reads ``studies``, so editing it reruns nothing. Each study names the
model whose row it reports and its points, either as a grid (every combination of
the listed values) or as labelled points::

    studies:
      edge_weight:
        model: bpkd
        grid:
          loss.edge_weight: [0.0, 5.0, 50.0, 500.0]
      loss_terms:
        model: bpkd
        points:
          edge_only: {loss.body_weight: 0.0}

A point's overrides are passed to ``dvc exp run -S key=value``; every key must
already exist in ``params.yaml`` (``-S`` would otherwise add a new, unread key).
An optional ``set`` mapping is applied to every point, lists included: the seeds a
study runs, and what it trains besides (``set: {seeds: [0, 1, 2], models: [bpkd]}``).
An optional ``targets`` list names the stages each experiment reproduces (``dvc exp
run <targets>``, their upstream stages included) instead of the whole DAG, as
templates over ``{dataset}``, ``{pair}`` and ``{seed}`` expanded with each point's own
``datasets``, ``pairs`` and ``seeds``: a study whose table reads only evaluations and
step logs stops there (``evaluate@{dataset}-{pair}-bpkd-{seed}``), without the
charts, views and report of every point.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from ..errors import UserError
from ..params import ParamsError, _get

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class StudyError(UserError, RuntimeError):
    """A study could not run or render (the message says which experiment or command)."""


@dataclass(frozen=True)
class Point:
    label: str
    overrides: dict  # {"loss.edge_weight": 5.0}
    targets: tuple = ()  # the stages `dvc exp run` reproduces (none: the whole DAG)

    def experiment(self, study: str) -> str:
        """The DVC experiment's name (a git ref: no spaces, no '=')."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{study}-{self.label}").strip("-")


@dataclass(frozen=True)
class Study:
    name: str
    model: str
    knobs: list[str]  # the swept keys, in the table's column order
    points: list[Point]
    common: dict = None  # ``set``: overrides of every point (not columns of the table)


def _value_label(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def _targets(tree: dict, overrides: dict, templates: list[str], key: str) -> tuple[str, ...]:
    """The stage names of ``templates`` for a point: each over its datasets, pairs and seeds."""
    def value(name):
        return overrides[name] if name in overrides else tree.get(name) or []

    names = []
    for template in templates:
        try:
            names += [template.format(dataset=d, pair=p, seed=s)
                      for d in value("datasets") for p in value("pairs") for s in value("seeds")]
        except (KeyError, IndexError, ValueError) as e:
            raise ParamsError(f"params.yaml: {key}: {template!r} is not a stage name template with "
                              f"{{dataset}}, {{pair}}, {{seed}} ({e})") from None
    return tuple(dict.fromkeys(names))


def load(tree: dict, name: str) -> Study:
    """The study ``name`` of a params tree, validated; errors name the key."""
    studies = tree.get("studies")
    if not isinstance(studies, dict) or not studies:
        raise ParamsError("params.yaml: no `studies` mapping (README, \"Seeds and studies\")")
    if name not in studies:
        raise ParamsError(f"params.yaml: studies.{name} does not exist; declared: {sorted(studies)}")
    key = f"studies.{name}"
    if not NAME.match(name):
        raise ParamsError(f"params.yaml: {key}: a study's name is letters, digits, '_', '.' or '-'")
    spec = studies[name]
    if (not isinstance(spec, dict) or set(spec) - {"model", "grid", "points", "set", "targets"}
            or ("grid" in spec) == ("points" in spec)):
        raise ParamsError(f"params.yaml: {key} = {spec!r} is invalid; expected `model`, exactly one of "
                          "`grid` ({param: [values]}) or `points` ({label: {param: value}}), and optionally "
                          "`set` ({param: value} for every point) and `targets` ([stage name template])")
    templates = spec.get("targets") or []
    if not isinstance(templates, list) or not all(isinstance(t, str) and t for t in templates):
        raise ParamsError(f"params.yaml: {key}.targets = {templates!r} is invalid; expected a list of stage "
                          "names, with {dataset}, {pair} and {seed} where they vary")
    common = spec.get("set") or {}
    if not isinstance(common, dict):
        raise ParamsError(f"params.yaml: {key}.set = {common!r} is invalid; expected {{param: value}}")
    for knob in common:
        try:
            _get(tree, knob)
        except ParamsError:
            raise ParamsError(f"params.yaml: {key}.set sets {knob!r}, which params.yaml does not have") from None
    # "all": every student's tables, as the report renders them (a study of seeds).
    models = ["all", "baseline", *tree.get("methods", [])]
    if spec.get("model") not in models:
        raise ParamsError(f"params.yaml: {key}.model = {spec.get('model')!r} is invalid; expected one of {models}")
    if "grid" in spec:
        grid = spec["grid"]
        if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
            raise ParamsError(f"params.yaml: {key}.grid = {grid!r} is invalid; expected {{param: [values]}}")
        knobs = list(grid)
        points = [Point("_".join(f"{_value_label(v)}" for v in combo) if len(knobs) == 1
                        else "_".join(f"{k.split('.')[-1]}={_value_label(v)}" for k, v in zip(knobs, combo)),
                        dict(zip(knobs, combo)))
                  for combo in itertools.product(*grid.values())]
    else:
        pts = spec["points"]
        if not isinstance(pts, dict) or not pts or not all(isinstance(v, dict) for v in pts.values()):
            raise ParamsError(f"params.yaml: {key}.points = {pts!r} is invalid; expected {{label: {{param: value}}}}")
        knobs = list(dict.fromkeys(k for v in pts.values() for k in v))
        points = [Point(str(label), dict(overrides)) for label, overrides in pts.items()]
    points = [Point(pt.label, merged, _targets(tree, merged, templates, f"{key}.targets"))
              for pt in points for merged in [{**common, **pt.overrides}]]
    for knob in knobs:
        try:
            current = _get(tree, knob)
        except ParamsError:
            raise ParamsError(f"params.yaml: {key} sweeps {knob!r}, which params.yaml does not have") from None
        if isinstance(current, (dict, list)):
            raise ParamsError(f"params.yaml: {key} sweeps {knob!r}, a mapping or list; sweep its leaves")
    names = [p.experiment(name) for p in points]
    if len(set(names)) != len(names):
        raise ParamsError(f"params.yaml: {key}: two points give the same experiment name ({names})")
    return Study(name, spec["model"], knobs, points, dict(common))
