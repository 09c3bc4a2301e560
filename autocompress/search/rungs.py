"""Successive halving over fine-tuning steps, for several objectives (as syne-tune's MOASHA).

Rungs are fine-tuning budgets from ``min_steps`` up to ``steps``, each ``eta`` times the one
below; the top rung is ``steps`` itself. Every new plan starts on rung 0. A plan on rung r is
promoted to rung r + 1 (its fine-tuning continues from its checkpoint) once it is among the
first 1/eta of rung r's results in non-dominated order on (accuracy at that rung, size,
latency): the rung's Pareto front first, then the front of the rest, each spread along the
front (``pareto.nondominated_order``). A plan over a size or latency limit is never promoted:
more fine-tuning cannot shrink it. Asynchronous, as ASHA: promotions are decided whenever a
result arrives, from what has arrived, so no worker waits for a rung to fill.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from autocompress.search.pareto import nondominated_order

DEFAULT_ETA = 3


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

    def promotions(self, results: dict[int, pd.DataFrame], *, promoted: set) -> list[tuple[object, int]]:
        """(plan, next rung) for every plan due to go up, higher rungs first.

        ``results``: per rung, one row per distinct plan finished there, with ``plan`` and the
        objectives, and ``feasible`` (False: over a size or latency limit) where known.
        ``promoted``: the (plan, rung) pairs already started (never promoted twice).
        """
        chosen = []
        for rung in range(self.top - 1, -1, -1):
            rows = results.get(rung)
            quota = 0 if rows is None else len(rows) // self.eta
            if not quota:
                continue
            eligible = rows[rows["feasible"].astype(bool)] if "feasible" in rows else rows
            for index in nondominated_order(eligible)[:quota]:
                plan = eligible.at[index, "plan"]
                if (plan, rung + 1) not in promoted:
                    chosen.append((plan, rung + 1))
        return chosen
