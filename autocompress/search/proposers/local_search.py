"""Local search (``--local-search``, on by default): a plan one or two knob steps from a plan on
the top rung's measured front (of the plans within the budget, when any is), not tried yet
(``mutations``). With the scan's predictor as guide, of several such neighbours the one it
expects to add most hypervolume."""

from __future__ import annotations

import random

import pandas as pd

from autocompress.plan import Plan
from autocompress.search.mutations import guided_mutation, mutation, parents
from autocompress.search.proposals import Predictor
from autocompress.search.proposers.history import History


class LocalSearch:
    name = "mutation"

    def __init__(self, rng: random.Random, *, guide: Predictor | None = None):
        self.rng, self.guide = rng, guide

    def propose(self, history: History) -> Plan | None:
        top = history.on_top()
        feasible = [(plan, record) for plan, record in top if history.budget.feasible(record.metrics)]
        top = feasible or top  # under a budget: neighbours of the plans within it
        if not top or history.teacher is None:
            return None
        frame = pd.DataFrame([record.metrics for _, record in top])
        weights = parents(frame, history.teacher)
        chosen = [(top[i][1].params, top[i][0]) for i in weights.index]
        tried = history.tried().__contains__
        if self.guide is None:
            return mutation(chosen, space=history.space, tried=tried, rng=self.rng, weights=weights.tolist())
        self.guide = history.refit(self.guide)
        return guided_mutation(chosen, measured=[frame.loc[i].to_dict() for i in weights.index], space=history.space,
                               tried=tried, rng=self.rng, predictor=self.guide, weights=weights.tolist())


def make(options) -> LocalSearch | None:
    """With ``--local-search``; guided by the scan with ``--guide`` (the default) when it ran."""
    settings = options.settings
    if not settings.local_search:
        return None
    return LocalSearch(random.Random(settings.seed), guide=options.scan if settings.guide else None)
