"""The sampler's turn: TPE's start-up plans first (random plans that each apply only some
techniques, the others left at the teacher's: one technique at a time, then random pairs and
more), then nothing, which means the study's sampler decides (Optuna's ``study.ask``).

In the joint space a plan that prunes but keeps every layer in float and at full rank is
otherwise vanishingly rare (1/4 x 1/3 per layer), so TPE would never learn what each technique
does alone. Any other turn that has nothing to propose falls back to this one.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from autocompress.spaces.layers import discover
    >>> space = SearchSpace(discover(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), torch.randn(1, 4)))
    >>> [sorted(techniques_used(plan)) for plan in startup_plans(space, 4, seed=0)][:3]
    [['prune'], ['quant'], ['lowrank']]
"""

from __future__ import annotations

import random
from typing import Any

import optuna

from autocompress.plan import Plan
from autocompress.search.proposers.history import History
from autocompress.spaces.space import TECHNIQUES, SearchSpace, techniques_used  # noqa: F401 (the example)


class StartupPlans:
    name = "startup"

    def __init__(self, plans: list[Plan]):
        self.plans = list(plans)

    def propose(self, history: History) -> Plan | None:
        return self.plans.pop(0) if self.plans else None


def make(options) -> StartupPlans:
    """Always: the sampler's turn (with no start-up plans, the sampler decides each one)."""
    return StartupPlans(options.startup)


def startup_plans(space: SearchSpace, count: int, *, seed: int | None) -> list[Plan]:
    """``count`` random plans of the space, the first ones each of one technique alone."""
    rng = random.Random(seed)
    names = list(space.techniques)
    subsets = [[t] for t in names]
    while len(subsets) < count:
        subsets.append(rng.sample(names, rng.randint(min(2, len(names)), len(names))))
    plans = []
    for subset in subsets[:count]:
        prefixes = tuple(TECHNIQUES[t] for t in subset)
        params = {name: _random_value(dist, rng) for name, dist in space.distributions().items()
                  if name.startswith(prefixes)}
        plans.append(space.plan_from_params(params))
    return plans


def _random_value(dist: optuna.distributions.BaseDistribution, rng: random.Random) -> Any:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return rng.choice(dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return rng.randint(dist.low, dist.high)
    steps = int(round((dist.high - dist.low) / dist.step))
    return dist.low + rng.randint(0, steps) * dist.step
