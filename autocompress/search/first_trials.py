"""What a search tries before its proposers decide: interrupted trials run again, then the
warm-start recipes (a few well-known plans, moved to the kernels the sensitivity scan found
faster), and a recipe over the size or latency budget again, pruned further
(``fitted_to_budget``: as many steps as the last try's bytes per step say), until it fits."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import optuna

from autocompress.budget import Budget
from autocompress.plan import LayerPlan, Plan
from autocompress.search.proposers.startup import startup_plans as random_startup_plans
from autocompress.search.samplers import startup_trials
from autocompress.search.settings import SearchSettings
from autocompress.search.trial_record import TrialRecord, requeue_interrupted
from autocompress.spaces.space import PRUNE_MAX, PRUNE_STEP, SearchSpace, techniques_used

WARM_START = "warm start"  # the source of the known recipes tried first
FITTED = "warm start, fitted to the budget"  # a recipe over the size or latency budget, pruned further


def first_trials(*, study: optuna.Study, space: SearchSpace, settings: SearchSettings, trials: int,
                 progress: Callable[[str], None]) -> list[tuple[Plan, int, str]]:
    """Interrupted trials to run again, then (a new study) the warm-start recipes, a quarter of
    ``trials`` at most: (plan, rung, source)."""
    rerun = [(plan, rung, "re-run") for plan, rung in requeue_interrupted(study, settings.rungs().top)]
    if rerun:
        progress(f"resuming: {len(rerun)} interrupted trial(s) will run again")
    first = []
    if not study.trials and settings.warm_start:
        first += [(plan, 0, WARM_START) for plan in warm_start_plans(space)[: max(0, trials // 4)]]
    return rerun + first


def startup_plans(*, study: optuna.Study, space: SearchSpace, settings: SearchSettings, trials: int,
                  warm_starts: int) -> list[Plan]:
    """TPE's one-technique-at-a-time start (a new study only): the start-up trials the warm-start
    recipes do not already fill (TPE counts every finished trial toward its start-up), and at
    least each technique alone once."""
    if study.trials or settings.sampler != "tpe":
        return []
    count = max(len(settings.techniques), startup_trials(trials) - warm_starts)
    return random_startup_plans(space, count, seed=settings.seed)


def warm_start_plans(space: SearchSpace) -> list[Plan]:
    """A few well-known recipes tried first, so that short searches start from good points:
    uniform int8; 50% structured pruning + int8; a shallow half-width int4 student; int4 with
    the first and last layers int8 (the usual low-bit recipe: those two are the most sensitive,
    and hold few weights; an embedding table is not a first layer: it holds the most). Only the
    recipes of the techniques searched."""
    discovery, importance = space.discovery, space.importance
    every = [layer.name for layer in discovery.layers]
    groups = [g.name for g in discovery.groups]
    int8 = {n: LayerPlan(bits=8) for n in every}
    pruned = {n: LayerPlan(bits=8, prune=0.5 if n in groups else 0.0) for n in every}
    shallow = {n: LayerPlan(bits=8 if n == discovery.head else 4) for n in every}
    first = next((layer.name for layer in discovery.layers if layer.kind != "embedding"), None)
    int4 = {n: LayerPlan(bits=8 if n in (first, discovery.head) else 4) for n in every}
    plans = [
        Plan(layers=int8, importance=importance),
        Plan(layers=pruned, importance=importance),
        Plan(layers=shallow, depth={s: 1 for s in discovery.stages}, width=0.5, importance=importance),
        Plan(layers=int4, importance=importance),
    ]
    return [plan for plan in plans if techniques_used(plan) <= set(space.techniques)]


def warm_starts_on(searcher, kernels: str) -> None:
    """The warm-start recipes still queued, on the kernels the scan found faster (``Plan.kernels``:
    where int8 kernels do not pay, their quantized weights run on float kernels)."""
    for i, (plan, rung) in enumerate(searcher.queue):
        moved = replace(plan, kernels=kernels)
        if searcher.sources.get((plan, rung)) == WARM_START and moved != plan:
            searcher.queue[i] = (moved, rung)
            searcher.sources[(moved, rung)] = searcher.sources.pop((plan, rung))


def fitted_to_budget(record: TrialRecord, *, space: SearchSpace, budget: Budget,
                     weights: dict[str, float] | None, steps: int = 1) -> Plan | None:
    """A warm-start recipe over the size or latency budget, pruned ``steps`` steps further
    (``pruned_further``: with the scan's ``weights``, its widest groups first); None for any other
    trial or one within the budget. Under a tight budget every recipe would otherwise be wasted; a
    try still over the budget is measured, never fine-tuned (seconds)."""
    if record.source not in (WARM_START, FITTED) or budget.structural().feasible(record.metrics):
        return None
    plan = record.plan
    for _ in range(steps):
        smaller = pruned_further(space, plan, weights=weights)
        if smaller is None:  # no group can go further
            break
        plan = smaller
    return None if plan == record.plan else plan


def fitting_steps(size_bytes: float, budget: Budget, bytes_per_step: float | None) -> int:
    """How many pruning steps the next try of a recipe over the size budget takes: as many as the
    last try's bytes per step say it still needs (later steps remove no more than earlier ones,
    the widest groups going first, so this does not overshoot by much), else one. A recipe 16
    steps over the limit (cifar10-resnet20's int8 under teacher/8) took 16 tries of ~7 s each.

    >>> fitting_steps(281_635, Budget(max_size_bytes=135_000), 9_288)
    16
    >>> fitting_steps(281_635, Budget(max_size_bytes=135_000), None), fitting_steps(100, Budget(), 10)
    (1, 1)
    """
    if not budget.max_size_bytes or not bytes_per_step or bytes_per_step <= 0:
        return 1
    return max(1, math.ceil((size_bytes - budget.max_size_bytes) / bytes_per_step))


def pruned_further(space: SearchSpace, plan: Plan, *, weights: dict[str, float] | None = None) -> Plan | None:
    """``plan`` pruned one step (``PRUNE_STEP``) further, up to ``PRUNE_MAX``: the group that
    holds the most of what pruning can remove (``weights``: group -> bytes, from the scan) once
    pruned so far, the first in model order on a tie; without ``weights``, every group. None
    when no group can go further (or pruning is not searched): a recipe shrinks a step at a
    time, the widest groups first, so it ends just under the budget.

    >>> import torch
    >>> from torch import nn
    >>> from autocompress.spaces.layers import discover
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> space = SearchSpace(discover(net, torch.randn(1, 4)))
    >>> int4 = Plan(layers={"0": LayerPlan(bits=4), "2": LayerPlan(bits=4)})
    >>> pruned_further(space, int4).layer("0")
    LayerPlan(prune=0.125, bits=4, rank=None, decomposition='svd')
    >>> wide = pruned_further(space, int4, weights={"0": 100.0, "2": 400.0})   # "2" holds more: it goes first
    >>> wide.layer("0").prune, wide.layer("2").prune
    (0.0, 0.125)
    >>> pruned_further(space, Plan(layers={"0": LayerPlan(prune=PRUNE_MAX), "2": LayerPlan(prune=PRUNE_MAX)})) is None
    True
    """
    if "prune" not in space.techniques:
        return None
    open_groups = [g.name for g in space.discovery.groups if plan.layer(g.name).prune < PRUNE_MAX]
    if weights and open_groups:
        open_groups = [max(open_groups, key=lambda g: weights.get(g, 0.0) * (1 - plan.layer(g).prune))]
    layers = dict(plan.layers)
    for name in open_groups:
        layers[name] = replace(plan.layer(name), prune=min(PRUNE_MAX, plan.layer(name).prune + PRUNE_STEP))
    smaller = space.applied(replace(plan, layers=layers))
    return None if smaller == space.applied(plan) else smaller
