"""Proposals that use what is known: plans predicted to extend the front, from the sensitivity scan.

The predictor is additive, as HAWQ and ModelOpt's AutoQuantize are: a plan's accuracy, size
and latency are the teacher's plus the deltas its knobs showed when each was applied alone
(``sensitivity.csv``). The accuracy a knob costs alone, after calibration only, overstates what
fine-tuning leaves of it for some techniques (pruning) and not others (int8), so the accuracy
loss of each technique is scaled by a factor refit on the finished trials (non-negative least
squares of their measured loss on their predicted per-technique losses).

Per budget, the plan with the smallest predicted loss under a size or latency budget is a
multiple-choice knapsack over the knobs. Its Lagrangian relaxation needs no solver: for a price
``lam`` on cost, each knob on its own takes the value minimizing ``loss + lam * cost``; sweeping
``lam`` walks the predicted front's convex hull from the teacher to the smallest plan
(``sweep``), where cost is the size, the latency, or half of each, relative to the teacher's.
Of those not tried yet, the one proposed is the one predicted to add most hypervolume to the
front measured so far (``choose``).

Example:
    >>> table = pd.DataFrame({"knob": ["bits/a", "bits/a", "bits/b", "bits/b"], "value": [8, 2, 8, 2],
    ...     "accuracy_delta": [0.0, -0.3, -0.01, -0.02], "size_delta_bytes": [-30, -45, -30, -45],
    ...     "latency_delta_ms": [-0.1, -0.1, -0.1, -0.1]})
    >>> teacher = {"accuracy": 0.9, "size_bytes": 100, "latency_ms": 1.0}
    >>> predictor = Predictor.from_scan(table, teacher)
    >>> predictor.predict({"bits/a": 8, "bits/b": 2})
    {'accuracy': 0.88, 'size_bytes': 25.0, 'latency_ms': 0.8}
    >>> predictor.sweep(count=4)   # the middle of the hull first; a takes 2 bits last (it loses 30 points)
    [{'bits/a': 8, 'bits/b': 2}, {'bits/a': 8, 'bits/b': 8}, {'bits/a': 8}, {'bits/a': 2, 'bits/b': 2}]
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from autocompress.plan import Plan
from autocompress.search.pareto import normalized_hypervolume
from autocompress.search.sensitivity import WHOLE_MODEL
from autocompress.search.sensitivity_table import float_kernels_pay
from autocompress.spaces.space import GATE_PREFIX, KERNELS_KNOB, TECHNIQUES, SearchSpace, teacher_value

OBJECTIVE_COLUMNS = {"accuracy": "accuracy_delta", "size_bytes": "size_delta_bytes", "latency_ms": "latency_delta_ms"}
COST_MIXES = (1.0, 0.0, 0.5)  # the weight of size against latency in a sweep's cost
PRICES = np.geomspace(1e-3, 1e2, 60)  # lam: accuracy points per unit of relative cost
FIT_MIN_TRIALS = 4  # finished trials before the per-technique factors are refit


def technique_of(knob: str) -> str:
    """The technique a search parameter belongs to.

    >>> technique_of("prune/layer1.0.conv1"), technique_of("arch/width")
    ('prune', 'student')
    """
    return next(t for t, prefix in TECHNIQUES.items() if knob.startswith(prefix))


@dataclass(frozen=True)
class Predictor:
    """Per knob and value, the deltas the scan measured; per technique, the factor on accuracy loss."""

    options: dict[str, dict]  # knob -> {value: (accuracy_delta, size_delta, latency_delta)}
    teacher: dict
    factors: dict[str, float] = field(default_factory=dict)
    kernels: str = "int8"  # what its plans' quantized layers run on (``Plan.kernels``)

    @classmethod
    def from_scan(cls, table: pd.DataFrame, teacher: dict) -> "Predictor":
        """From ``sensitivity.csv``'s rows (the teacher's row, the whole-model int8 rows, which are
        no one knob, and failed cells are left out). Where those rows show int8 weights on float
        kernels faster than on int8 kernels beyond their noise (``float_kernels_pay``), its plans run
        on float kernels (``kernels``), and a bit-width costs no latency (the scan measured each on
        int8 kernels; its accuracy loss, activations quantized too, is then an upper bound)."""
        knobs = table["knob"].astype(str)
        rows = table[knobs.str.contains("/") & ~knobs.isin((*WHOLE_MODEL, KERNELS_KNOB))].dropna(
            subset=list(OBJECTIVE_COLUMNS.values()))
        kernels = "float" if float_kernels_pay(table) else "int8"
        options: dict[str, dict] = {}
        for row in rows.itertuples(index=False):
            deltas = tuple(float(getattr(row, c)) for c in OBJECTIVE_COLUMNS.values())
            if kernels == "float" and technique_of(row.knob) == "quant":
                deltas = (deltas[0], deltas[1], 0.0)
            options.setdefault(row.knob, {})[_number(row.value)] = deltas
        return cls(options=options, teacher=dict(teacher), kernels=kernels)

    def change(self, knob: str, old, new) -> tuple[float, float, float] | None:
        """The predicted (accuracy loss, size delta, latency delta) of moving ``knob`` from ``old``
        to ``new``: the difference of the two values' cells (the teacher's value is no change);
        None when the scan has no cell for either.

        >>> table = pd.DataFrame({"knob": ["bits/a", "bits/a"], "value": [8, 4], "accuracy_delta": [0.0, -0.02],
        ...     "size_delta_bytes": [-30, -45], "latency_delta_ms": [-0.1, -0.1]})
        >>> predictor = Predictor.from_scan(table, {"accuracy": 0.9, "size_bytes": 100, "latency_ms": 1.0})
        >>> predictor.change("bits/a", 8, 4), predictor.change("bits/a", 32, 8), predictor.change("bits/a", 4, 2)
        ((0.02, -15.0, 0.0), (0.0, -30.0, -0.1), None)
        """
        ends, teacher = [], teacher_value(knob)
        for value in (old, new):
            if teacher is not None and _number(value) == _number(teacher):
                ends.append((0.0, 0.0, 0.0))
            elif _number(value) in self.options.get(knob, {}):
                deltas = self.options[knob][_number(value)]
                ends.append((self._loss(knob, deltas), deltas[1], deltas[2]))
            else:
                return None
        return tuple(round(b - a, 9) + 0.0 for a, b in zip(*ends))

    def _loss(self, knob: str, deltas: tuple) -> float:
        return -deltas[0] * self.factors.get(technique_of(knob), 1.0)

    def _gated(self, params: dict) -> dict:
        off = {t for t in TECHNIQUES if int(params.get(GATE_PREFIX + t, 1)) == 0}
        return {k: v for k, v in params.items() if k in self.options and technique_of(k) not in off}

    def losses(self, params: dict) -> dict[str, float]:
        """The predicted accuracy loss per technique, unscaled (what ``refit`` fits factors on)."""
        out = dict.fromkeys(TECHNIQUES, 0.0)
        for knob, value in self._gated(params).items():
            deltas = self.options[knob].get(_number(value))
            if deltas is not None:
                out[technique_of(knob)] += -deltas[0]
        return out

    def predict(self, params: dict) -> dict[str, float]:
        """Predicted accuracy, size and latency of the plan these search parameters describe."""
        totals = np.zeros(3)
        for knob, value in self._gated(params).items():
            deltas = self.options[knob].get(_number(value))
            if deltas is not None:
                totals += (-self._loss(knob, deltas), deltas[1], deltas[2])
        return {"accuracy": round(float(self.teacher["accuracy"] + totals[0]), 6),
                "size_bytes": round(float(self.teacher["size_bytes"] + totals[1]), 3),
                "latency_ms": round(float(self.teacher["latency_ms"] + totals[2]), 6)}

    def refit(self, finished: list[tuple[dict, dict]]) -> "Predictor":
        """Per-technique factors from finished trials ((params, metrics) pairs): measured loss =
        sum of factor x predicted loss per technique, least squares, factors >= 0. Fewer than
        FIT_MIN_TRIALS trials: unchanged."""
        if len(finished) < FIT_MIN_TRIALS:
            return self
        names = list(TECHNIQUES)
        design = np.array([[self.losses(params)[t] for t in names] for params, _ in finished])
        target = np.array([self.teacher["accuracy"] - metrics["accuracy"] for _, metrics in finished])
        used = design.any(axis=0)
        if not used.any():
            return self
        solution, _ = nnls(design[:, used], np.clip(target, 0.0, None))
        factors = dict(zip([n for n, u in zip(names, used) if u], solution.round(6).tolist()))
        return dataclasses.replace(self, factors=factors)

    def _cost(self, deltas: tuple, mix: float) -> float:
        return mix * deltas[1] / self.teacher["size_bytes"] + (1 - mix) * deltas[2] / self.teacher["latency_ms"]

    def _choice(self, price: float, mix: float) -> dict:
        params = {}
        for knob, values in self.options.items():
            best = min(values.items(), key=lambda kv: self._loss(knob, kv[1]) + price * self._cost(kv[1], mix))
            if self._loss(knob, best[1]) + price * self._cost(best[1], mix) < 0:  # better than the teacher's value
                params[knob] = best[0]
        return params

    def choose(self, candidates: list[dict], *, front: pd.DataFrame) -> int | None:
        """The index of the candidate (search parameters) whose predicted point adds most
        hypervolume to ``front`` (measured results: accuracy, size_bytes, latency_ms), in the
        teacher-relative objectives the benchmarks score; ties (say, none adds any) go to the
        most accurate prediction. None when there is no candidate.

        >>> table = pd.DataFrame({"knob": ["bits/a", "bits/a"], "value": [8, 2], "accuracy_delta": [0.0, -0.3],
        ...     "size_delta_bytes": [-30, -45], "latency_delta_ms": [-0.1, -0.1]})
        >>> predictor = Predictor.from_scan(table, {"accuracy": 0.9, "size_bytes": 100, "latency_ms": 1.0})
        >>> predictor.choose([{"bits/a": 2}, {"bits/a": 8}], front=pd.DataFrame())  # 2 bits: 30 points lost
        1
        """
        return most_added([self.predict(params) for params in candidates], front=front, teacher=self.teacher)

    def from_parent(self, child: dict, *, parent: dict, measured: dict) -> dict[str, float]:
        """A neighbour's predicted point: its parent's measured one moved by the change the
        predictor expects between the two (search parameters ``child`` and ``parent``). Near a
        measured plan only the change is predicted, not the whole plan.

        >>> table = pd.DataFrame({"knob": ["bits/a", "bits/a"], "value": [8, 4], "accuracy_delta": [0.0, -0.02],
        ...     "size_delta_bytes": [-30, -45], "latency_delta_ms": [-0.1, -0.1]})
        >>> predictor = Predictor.from_scan(table, {"accuracy": 0.9, "size_bytes": 100, "latency_ms": 1.0})
        >>> predictor.from_parent({"bits/a": 4}, parent={"bits/a": 8},
        ...                       measured={"accuracy": 0.85, "size_bytes": 70, "latency_ms": 0.95})
        {'accuracy': 0.83, 'size_bytes': 55.0, 'latency_ms': 0.95}
        """
        now, before = self.predict(child), self.predict(parent)
        return {key: round(float(measured[key]) + now[key] - before[key], 6) for key in OBJECTIVE_COLUMNS}

    def sweep(self, *, count: int) -> list[dict]:
        """Up to ``count`` distinct parameter sets along the predicted front's hull, spread over
        the price range and the cost mixes (size, latency, both), the teacher itself left out
        (each with ``bits/*kernels`` where it quantizes on float kernels)."""
        per_mix = [[p for p in dict.fromkeys(_frozen(self._choice(price, mix)) for price in PRICES) if p]
                   for mix in COST_MIXES]
        chosen: list = []
        for depth in range(max(map(len, per_mix), default=0)):
            for plans in per_mix:
                spread = _spread_order(len(plans))
                if depth < len(plans) and plans[spread[depth]] not in chosen:
                    chosen.append(plans[spread[depth]])
        quant = TECHNIQUES["quant"]
        return [{**dict(p), KERNELS_KNOB: "float"} if self.kernels == "float" and any(k.startswith(quant) for k, _ in p)
                else dict(p) for p in chosen[:count]]


def propose(predictor: Predictor, *, space, tried: set, front: pd.DataFrame, count: int) -> Plan | None:
    """The plan a search proposes next: of the plans along ``predictor``'s front (``sweep``, up
    to ``count``) that are not in ``tried``, the one predicted to add most hypervolume to
    ``front`` (measured results); search parameters that make the same plan count once, as the
    first that makes it. None when every one was tried.

    >>> import torch
    >>> from torch import nn
    >>> from autocompress.spaces.layers import discover
    >>> space = SearchSpace(discover(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), torch.randn(1, 4)))
    >>> table = pd.DataFrame({"knob": ["bits/0", "bits/0"], "value": [8, 2], "accuracy_delta": [0.0, -0.3],
    ...     "size_delta_bytes": [-30, -45], "latency_delta_ms": [-0.1, -0.1]})
    >>> predictor = Predictor.from_scan(table, {"accuracy": 0.9, "size_bytes": 100, "latency_ms": 1.0})
    >>> propose(predictor, space=space, tried=set(), front=pd.DataFrame(), count=10).layer("0").bits
    8
    """
    candidates: dict = {}
    for params in predictor.sweep(count=count):
        plan = space.plan_from_params({k: v for k, v in params.items() if k in space.distributions()})
        if plan not in tried:
            candidates.setdefault(plan, params)
    chosen = predictor.choose(list(candidates.values()), front=front)
    return None if chosen is None else list(candidates)[chosen]


def most_added(points: list[dict], *, front: pd.DataFrame, teacher: dict) -> int | None:
    """The index of the point (accuracy, size_bytes, latency_ms) that adds most hypervolume to
    ``front``, in teacher-relative objectives; ties (say, none adds any) go to the most accurate.
    None when there is no point.

    >>> front = pd.DataFrame({"accuracy": [0.9], "size_bytes": [50], "latency_ms": [0.5]})
    >>> most_added([{"accuracy": 0.9, "size_bytes": 60, "latency_ms": 0.5},
    ...             {"accuracy": 0.9, "size_bytes": 40, "latency_ms": 0.5}], front=front,
    ...            teacher={"accuracy": 0.9, "size_bytes": 100, "latency_ms": 1.0})
    1
    """
    if not points:
        return None
    front = front[list(OBJECTIVE_COLUMNS)] if len(front) else front
    base = normalized_hypervolume(front, teacher) if len(front) else 0.0
    scores = [(_hypervolume_with(front, point, teacher) - base, point["accuracy"]) for point in points]
    return max(range(len(points)), key=lambda i: scores[i])


def _hypervolume_with(front: pd.DataFrame, point: dict, teacher: dict) -> float:
    with_point = pd.concat([front, pd.DataFrame([point])], ignore_index=True) if len(front) else pd.DataFrame([point])
    return normalized_hypervolume(with_point, teacher)


def _spread_order(n: int) -> list[int]:
    """Indices of ``n`` items ordered so that any prefix spreads over the range: middle, ends, ...

    >>> _spread_order(5)
    [2, 0, 3, 1, 4]
    """
    order, queue = [], [(0, n - 1)]
    while queue:
        lo, hi = queue.pop(0)
        if lo > hi:
            continue
        mid = (lo + hi + 1) // 2 if not order else (lo + hi) // 2
        order.append(mid)
        queue += [(lo, mid - 1), (mid + 1, hi)]
    return order


def _frozen(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def _number(value):
    """A scan value as the search space spells it (8, 0.5); strings from a CSV are parsed."""
    if isinstance(value, str):
        value = float(value)
    value = float(value)
    return int(value) if math.isfinite(value) and value.is_integer() else value
