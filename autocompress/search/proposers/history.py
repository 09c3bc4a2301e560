"""What every proposer sees when asked for a plan: the space, the finished trials by (plan,
rung), the plans running now, the budget and the teacher.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from autocompress.spaces.layers import discover
    >>> space = SearchSpace(discover(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), torch.randn(1, 4)))
    >>> history = History(space=space, seen={}, running=frozenset(), top=0, budget=Budget(), teacher=None)
    >>> history.tried(), history.on_top()
    (set(), [])
"""

from __future__ import annotations

from dataclasses import dataclass

from autocompress.budget import Budget
from autocompress.plan import Plan
from autocompress.search.proposals import FIT_MIN_TRIALS, Predictor
from autocompress.search.trial_record import TrialRecord
from autocompress.spaces.space import SearchSpace


@dataclass(frozen=True)
class History:
    """``seen``: (plan, rung) -> the first finished trial of that plan on that rung (duplicates
    left out); ``running``: the plans running now; ``top``: the top rung (full fidelity)."""

    space: SearchSpace
    seen: dict[tuple[Plan, int], TrialRecord]
    running: frozenset[Plan]
    top: int
    budget: Budget
    teacher: dict | None

    def tried(self) -> set[Plan]:
        """Plans finished on any rung or running now."""
        return tried(self.seen, self.running)

    def on_top(self) -> list[tuple[Plan, TrialRecord]]:
        """The plans finished on the top rung, with their trials."""
        return [(plan, record) for (plan, rung), record in self.seen.items() if rung == self.top]

    def refit(self, predictor: Predictor) -> Predictor:
        """``predictor`` refit on the finished trials of the highest rung with enough of them."""
        by_rung: dict[int, list] = {}
        for (_, rung), record in self.seen.items():
            by_rung.setdefault(rung, []).append((record.params, record.metrics))
        enough = [r for r, rows in by_rung.items() if len(rows) >= FIT_MIN_TRIALS]
        return predictor.refit(by_rung[max(enough)]) if enough else predictor


def tried(seen: dict, running) -> set[Plan]:
    """The plans of ``seen`` ((plan, rung) keys) and ``running`` (plans): every plan tried so far."""
    return {plan for plan, _ in seen} | set(running)
