"""Local search around the measured front: new plans one or two knob steps away from a good one.

TPE models each knob on its own (or a joint density over 30 to 65 of them) and rarely lands
next to a plan it already knows is good: on digits the shallow int4 student of the warm start
stayed the smallest candidate within a point of the teacher through a whole search. A
*mutation* takes a plan on the measured Pareto front that adds to its hypervolume (accuracy
within ``HV_REFERENCE`` of the teacher's), the more likely the more it adds alone, moves one or two of its knobs one step
(a group pruned 12.5% more or less, a layer's bit-width one choice up or down, a block more or
fewer, the width a step) and returns the first such plan not tried yet. This is the mutation
of evolutionary searches (APQ, OFA, NSGA-II) without their population: the front is the
population, and the study holds it.

Example:
    >>> import optuna, random
    >>> dists = {"bits/fc": optuna.distributions.CategoricalDistribution((32, 8, 4, 2)),
    ...          "prune/fc": optuna.distributions.FloatDistribution(0.0, 0.75, step=0.125)}
    >>> step_value(dists["bits/fc"], 4, random.Random(0)) in (8, 2)
    True
    >>> step_value(dists["prune/fc"], 0.0, random.Random(0))
    0.125
"""

from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd

from autocompress.plan import Plan
from autocompress.search.pareto import HV_REFERENCE, hypervolume, pareto_mask, teacher_relative
from autocompress.search.proposals import Predictor, most_added
from autocompress.spaces.space import GATE_PREFIX, SearchSpace, applied_params

ATTEMPTS = 50  # neighbours drawn before giving up on finding one not tried (small spaces run out)
MAX_CHANGES = 2  # knobs moved per mutation: 1 or 2
GUIDED_CANDIDATES = 16  # neighbours a guided mutation chooses among


def step_value(dist: optuna.distributions.BaseDistribution, value: Any, rng: random.Random) -> Any:
    """``value`` moved one step up or down ``dist``'s range (choices in their listed order);
    at an end of the range, the one step inward."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        values, index = list(dist.choices), list(dist.choices).index(value)
    else:
        step = dist.step if getattr(dist, "step", None) else 1
        count = int(round((dist.high - dist.low) / step))
        values = [dist.low + i * step for i in range(count + 1)]
        index = min(range(len(values)), key=lambda i: abs(values[i] - value))
    moves = [i for i in (index - 1, index + 1) if 0 <= i < len(values)]
    return values[rng.choice(moves)] if moves else value


def parents(frame: pd.DataFrame, teacher: dict) -> pd.Series:
    """The rows of ``frame`` (measured top-rung results) worth mutating, each with its weight: the
    points of its Pareto front that add hypervolume (accuracy within 5% of the teacher's), weighted
    by the hypervolume only they add, so that the front's knee is mutated most; when none adds
    any, the front's most accurate point.

    >>> frame = pd.DataFrame({"accuracy": [0.99, 0.5, 0.98, 0.97], "size_bytes": [50, 5, 60, 20],
    ...                       "latency_ms": [0.5, 1, 0.5, 0.9]})
    >>> parents(frame, {"accuracy": 1.0, "size_bytes": 100, "latency_ms": 1.0}).round(5).to_dict()
    {0: 0.009, 3: 0.0006}
    """
    if frame.empty:
        return pd.Series(dtype=float)
    front = frame[pareto_mask(frame)]
    points = teacher_relative(front, teacher)
    total = hypervolume(points, HV_REFERENCE)
    alone = [total - hypervolume(np.delete(points, i, axis=0), HV_REFERENCE) for i in range(len(points))]
    weights = pd.Series(alone, index=front.index)
    weights = weights[weights > 0]
    return weights if len(weights) else pd.Series([1.0], index=[front["accuracy"].idxmax()])


def mutation(front: list[tuple[dict, Plan]], *, space: SearchSpace, tried: Callable[[Plan], bool],
             rng: random.Random, weights: list[float] | None = None) -> Plan | None:
    """A plan one or two knob steps from a parent of ``front`` ((search parameters, applied plan)
    of each parent), drawn by ``weights`` (default: alike), that ``tried`` says has not run; None
    when ``ATTEMPTS`` neighbours were all tried (or there is no parent)."""
    found = neighbour(front, space=space, tried=tried, rng=rng, weights=weights)
    return None if found is None else found[1]


def neighbour(front: list[tuple[dict, Plan]], *, space: SearchSpace, tried: Callable[[Plan], bool],
              rng: random.Random, weights: list[float] | None = None) -> tuple[int, Plan] | None:
    """``mutation``'s plan with the index of its parent in ``front``."""
    if not front:
        return None
    dists = space.distributions()
    knobs = [name for name in dists if not name.startswith(GATE_PREFIX)]
    for _ in range(ATTEMPTS):
        index = rng.choices(range(len(front)), weights=weights)[0]
        params, plan = front[index]
        values = {name: value for name, value in applied_params(params, dists, plan).items()
                  if not name.startswith(GATE_PREFIX)}  # no gates: every knob reads as applied
        for name in rng.sample(knobs, min(len(knobs), rng.randint(1, MAX_CHANGES))):
            values[name] = step_value(dists[name], values[name], rng)
        child = space.plan_from_params(values)
        if not tried(child):
            return index, child
    return None


def guided_mutation(front: list[tuple[dict, Plan]], *, measured: list[dict], space: SearchSpace,
                    tried: Callable[[Plan], bool], rng: random.Random, predictor: Predictor,
                    weights: list[float] | None = None, count: int = GUIDED_CANDIDATES) -> Plan | None:
    """Of ``count`` neighbours (``neighbour``), the one predicted to add most hypervolume to the
    measured front (``measured``: each parent's metrics): each predicted as its parent's measured
    point moved by the change the sensitivity scan's predictor expects (``Predictor.from_parent``).
    A single knob step from a measured plan is where an additive model is most nearly right."""
    drawn: dict[Plan, int] = {}
    for _ in range(count):
        found = neighbour(front, space=space, tried=lambda plan: tried(plan) or plan in drawn, rng=rng,
                          weights=weights)
        if found is None:
            break
        drawn[found[1]] = found[0]
    if not drawn:
        return None
    points = [predictor.from_parent(space.params_from_plan(child), parent=front[i][0], measured=measured[i])
              for child, i in drawn.items()]
    return list(drawn)[most_added(points, front=pd.DataFrame(measured), teacher=predictor.teacher)]
