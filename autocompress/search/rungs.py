"""Successive halving over fine-tuning steps, for several objectives (as syne-tune's MOASHA).

Rungs are fine-tuning budgets from ``min_steps`` up to ``steps``, each ``eta`` times the one
below; the top rung is ``steps`` itself. Every new plan starts on rung 0. A plan on rung r is
promoted to rung r + 1 (its fine-tuning continues from its checkpoint) once it is among the
first 1/eta of rung r's results in non-dominated order on (accuracy at that rung, size,
latency): the rung's Pareto front first, then the front of the rest, each spread along the
front (``pareto.nondominated_order``). A plan over a size or latency limit is never promoted:
more fine-tuning cannot shrink it. Nor is a plan whose accuracy at its rung is more than
``REACH`` times the hypervolume box below the teacher's (10%), while any plan of the rung is
closer: a plan that far down adds nothing to the hypervolume, and more steps rarely bring it
in. In a 90-minute cifar10-resnet20 search (rungs of 333/999/3000 steps, before this rule)
every such plan promoted to 3000 steps stayed out of the box (drops shrank to about 0.7x per
rung), and those promotions took 4135 of the 10,187 trial-seconds. Asynchronous, as ASHA:
promotions are decided whenever a result arrives, from what has arrived, so no worker waits
for a rung to fill.

Example:
    >>> import pandas as pd
    >>> rungs = Rungs.between(50, 400, eta=3)
    >>> rungs.steps, rungs.top
    ((50, 150, 400), 2)
    >>> results = pd.DataFrame({"plan": list("abcdef"), "accuracy": [.9, .8, .7, .6, .95, .5],
    ...                         "size_bytes": [10, 5, 20, 30, 40, 50], "latency_ms": [1.0] * 6})
    >>> rungs.promotions({0: results}, promoted=set())   # 6 results: the first 2 go up
    [('e', 1), ('b', 1)]
    >>> rungs.promotions({0: results}, promoted={("e", 1)})
    [('b', 1)]
    >>> rungs.promotions({0: results}, promoted=set(), min_accuracy=promotion_floor(1.0))  # b is 20% down
    [('e', 1), ('a', 1)]
    >>> rungs.promotions({0: results}, promoted=set(), min_accuracy=promotion_floor(1.2))  # none within reach
    [('e', 1), ('b', 1)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from autocompress.search.pareto import HV_REFERENCE, nondominated_order

DEFAULT_ETA = 3
REACH = 2  # promoted only within this many hypervolume boxes of the teacher's accuracy


def _lost(below: pd.DataFrame | None, rung: int, promoted: set, min_accuracy: float | None) -> int:
    """How many plans of the rung below can never reach ``rung``: not promoted, and out of reach
    (less accurate than ``min_accuracy``) or over a size or latency limit (``feasible`` False)."""
    if below is None:
        return 0
    feasible = below["feasible"].astype(bool) if "feasible" in below else pd.Series(True, index=below.index)
    return sum((accuracy < min_accuracy or not fits) and (plan, rung) not in promoted
               for plan, accuracy, fits in zip(below["plan"], below["accuracy"], feasible))


def promotion_floor(teacher_accuracy: float) -> float:
    """The least accuracy at which a plan is promoted: ``REACH`` hypervolume boxes below the teacher's.

    >>> round(promotion_floor(0.9), 4)
    0.81
    """
    scale = abs(teacher_accuracy) if teacher_accuracy != 0 else 1.0  # as pareto.metric_drop measures a drop
    return teacher_accuracy - REACH * HV_REFERENCE[0] * scale


@dataclass(frozen=True)
class Rungs:
    """Fine-tuning steps per rung (increasing; the last is the search's full fidelity) and the
    reduction factor: 1 in ``eta`` of a rung's results goes up."""

    steps: tuple[int, ...]
    eta: int = DEFAULT_ETA

    @classmethod
    def between(cls, min_steps: int | None, steps: int, *, eta: int = DEFAULT_ETA) -> "Rungs":
        """``min_steps``, ``min_steps * eta``, ... while the top is at least sqrt(eta) times
        further (no rung of 270 steps under one of 300), then ``steps``; one rung (no halving)
        when ``min_steps`` is None.

        >>> Rungs.between(None, 300).steps, Rungs.between(20, 300, eta=2).steps
        ((300,), (20, 40, 80, 160, 300))
        """
        levels, level = [], min_steps
        while level is not None and level * math.sqrt(eta) < steps:
            levels.append(level)
            level *= eta
        return cls(tuple(levels) + (steps,), eta)

    @property
    def top(self) -> int:
        return len(self.steps) - 1

    def promotions(self, results: dict[int, pd.DataFrame], *, promoted: set,
                   min_accuracy: float | None = None) -> list[tuple[object, int]]:
        """(plan, next rung) for every plan due to go up, higher rungs first.

        ``results``: per rung, one row per distinct plan finished there, with ``plan`` and the
        objectives, and ``feasible`` (False: over a size or latency limit) where known.
        ``promoted``: the (plan, rung) pairs already started (never promoted twice).
        ``min_accuracy``: plans less accurate at their rung stay (``promotion_floor``), unless no
        plan of the rung is that accurate. A plan of the rung below that cannot go up (out of that
        reach, or over a size or latency limit) counts on this rung too, as a result ranked below
        the rest: it lost to every plan that went up. (Under cifar10-resnet20's size / 8, the one
        fitted int4 plan within reach sat alone on rung 1 for want of two more results there,
        while ten plans of rung 0 were far below it; later, with the int8 and int4 recipes over
        the limit beside it, it waited for a third recipe's 222 steps and missed the 15 minutes.)

        >>> rungs = Rungs((10, 30, 90), eta=3)
        >>> row = {"size_bytes": 1, "latency_ms": 1.0}
        >>> below = pd.DataFrame([{"plan": p, "accuracy": a, **row} for p, a in [("a", .9), ("b", .5), ("c", .4)]])
        >>> one = pd.DataFrame([{"plan": "a", "accuracy": .9, **row}])
        >>> rungs.promotions({0: below, 1: one}, promoted={("a", 1)}), rungs.promotions({0: below, 1: one},
        ...     promoted={("a", 1)}, min_accuracy=0.8)
        ([], [('a', 2)])
        >>> over = below.assign(accuracy=[.9, .85, .88], feasible=[True, False, False])   # b, c: over a limit
        >>> rungs.promotions({0: over, 1: one}, promoted={("a", 1)}, min_accuracy=0.8)
        [('a', 2)]
        """
        chosen = []
        for rung in range(self.top - 1, -1, -1):
            rows = results.get(rung)
            below = results.get(rung - 1) if min_accuracy is not None and rung else None
            quota = 0 if rows is None else (len(rows) + _lost(below, rung, promoted, min_accuracy)) // self.eta
            if not quota:
                continue
            eligible = rows[rows["feasible"].astype(bool)] if "feasible" in rows else rows
            within = eligible if min_accuracy is None else eligible[eligible["accuracy"] >= min_accuracy]
            eligible = within if len(within) else eligible  # none within reach: the top rung still gets plans
            for index in nondominated_order(eligible)[:quota]:
                plan = eligible.at[index, "plan"]
                if (plan, rung + 1) not in promoted:
                    chosen.append((plan, rung + 1))
        return chosen
