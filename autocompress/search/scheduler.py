"""Successive halving as a scheduler of its own: which finished plans go up a rung, and what a
trial on a rung is given (its fine-tuning steps, the trial one rung below it continues).

The proposers (``search/proposers``) decide which new plans to try; the scheduler decides how
long each runs. Every new plan starts on rung 0; a promotion is its own trial, continuing the
fine-tuning of the plan's trial one rung below from its checkpoint (``Rungs`` holds the steps
and the rule, ``rungs.promotions``).

Example:
    >>> from autocompress.plan import LayerPlan, Plan
    >>> scheduler = HalvingScheduler(Rungs((10, 30), eta=2), trials=[])
    >>> config = scheduler.config(number=5, plan=Plan(layers={"fc": LayerPlan(bits=8)}), rung=1, seen={})
    >>> config["number"], config["distill"]   # rung 1: 30 steps (no trial below it to continue here)
    (5, {'steps': 30})
"""

from __future__ import annotations

import pandas as pd

from autocompress.budget import Budget
from autocompress.plan import Plan
from autocompress.search.rungs import Rungs, promotion_floor
from autocompress.search.trial_record import TrialRecord


class HalvingScheduler:
    """The rungs of one search, and the (plan, rung) pairs already promoted (from the stored
    ``trials``: a resumed search never promotes a plan twice)."""

    def __init__(self, rungs: Rungs, *, trials: list):
        self.rungs = rungs
        records = [TrialRecord.of(t) for t in trials]
        self.promoted: set[tuple[Plan, int]] = {(r.plan, r.rung_on(rungs.top)) for r in records
                                                if r.plan is not None and r.rung_on(rungs.top) > 0}

    def config(self, *, number: int, plan: Plan, rung: int, seen: dict) -> dict:
        """What the worker needs: the plan, and with rungs its steps and the trial it continues."""
        config = {"number": number, "plan": plan.to_dict()}
        if self.rungs.top:
            config["distill"] = {"steps": self.rungs.steps[rung]}
            below = seen.get((plan, rung - 1)) if rung else None
            if below is not None:  # a promotion continues the fine-tuning of the rung below
                config["continue_from"] = below.number
        return config

    def promotions(self, seen: dict[tuple[Plan, int], TrialRecord], *, budget: Budget,
                   teacher: dict | None) -> list[tuple[Plan, int, bool]]:
        """The plans due to go up a rung now (``Rungs.promotions``), higher rungs first, each with
        whether it is within reach of the teacher (``promotion_floor``; False: promoted only because
        no plan of its rung is); they count as promoted from here on."""
        results: dict[int, list[dict]] = {}
        for (plan, rung), saved in seen.items():
            if rung < self.rungs.top:
                metrics = saved.metrics
                results.setdefault(rung, []).append(
                    {"plan": plan, **metrics, "feasible": budget.structural().feasible(metrics)})
        frames = {rung: pd.DataFrame(rows) for rung, rows in results.items()}
        floor = None if teacher is None else promotion_floor(teacher["accuracy"])
        chosen = self.rungs.promotions(frames, promoted=self.promoted, min_accuracy=floor)
        self.promoted.update(chosen)
        return [(plan, rung, floor is None or seen[(plan, rung - 1)].metrics["accuracy"] >= floor)
                for plan, rung in chosen]
