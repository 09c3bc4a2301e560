"""What a search tries before its proposers decide: interrupted trials run again, then the
warm-start recipes (a few well-known plans, moved to the kernels the sensitivity scan found
faster), and a recipe over the size or latency budget again, pruned further (``fitted_to_budget``:
the groups the scan predicts lose least for what they save first), until it fits."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import optuna

from autocompress.budget import Budget
from autocompress.plan import LayerPlan, Plan
from autocompress.search.proposals import Predictor
from autocompress.search.proposers.startup import startup_plans as random_startup_plans
from autocompress.search.samplers import startup_trials
from autocompress.search.sensitivity import SAMPLES
from autocompress.search.settings import SearchSettings
from autocompress.search.trial_record import TrialRecord, requeue_interrupted
from autocompress.spaces.layers import Group
from autocompress.spaces.space import FLOAT_BITS, PRUNE_MAX, PRUNE_STEP, SearchSpace, techniques_used

WARM_START = "warm start"  # the source of the known recipes tried first
FITTED = "warm start, fitted to the budget"  # a recipe over the size or latency budget, pruned further
LOSS_FLOOR = 1 / SAMPLES  # a fitting step predicted to lose less counts as losing this: one of the scan's examples
MAX_FIT_STEPS = 64  # pruning steps in one fitted try at most


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
                     predictor: Predictor | None = None, steps: int = 1) -> tuple[Plan, float] | None:
    """A warm-start recipe over the size or latency budget, pruned further, and the accuracy its
    try is predicted to lose more than the try before: by the steps the scan's ``predictor``
    says lose least accuracy for what they save (``cheapest_fit``), else (no scan, or no step it
    measured) every pruning group ``steps`` steps further (``pruned_further``; nothing predicted:
    0). None for any other trial or one within the budget. Under a tight budget every recipe
    would otherwise be wasted; a try still over the budget is measured, never fine-tuned."""
    over = budget.structural().violations(record.metrics)
    if record.source not in (WARM_START, FITTED) or not over:
        return None
    fitted = cheapest_fit(record.plan, over=over, space=space, predictor=predictor) if predictor else None
    if fitted is not None:
        return fitted
    plan = record.plan
    for _ in range(steps):
        smaller = pruned_further(space, plan)
        if smaller is None:  # no group can go further
            break
        plan = smaller
    return None if plan == record.plan else (plan, 0.0)


def cheapest_fit(plan: Plan, *, over: dict[str, float], space: SearchSpace,
                 predictor: Predictor) -> tuple[Plan, float] | None:
    """``plan`` with its pruning groups taken a step (``PRUNE_STEP``) further at a time, the step
    the scan predicts loses least accuracy per byte it saves first (per millisecond when only
    the latency is ``over`` the budget), until the predicted savings cover by how much it is
    over, and the accuracy those steps are predicted to lose; None when the scan measured no
    step that saves anything. A step's scanned bytes (the cell was measured on the float
    teacher) are scaled to the bits the plan stores its group's layers at; a predicted loss
    below ``LOSS_FLOOR`` counts as that (among steps that lose nothing, the one that saves most
    goes first). Only pruning: lower bit-widths do not add up. On sst2-minilm fifteen layers at
    2 bits, each 0-1.6 points alone in the scan, lost 36 points together (50%, chance).

    >>> import pandas as pd, torch
    >>> from torch import nn
    >>> from autocompress.spaces.layers import discover
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> space = SearchSpace(discover(net, torch.randn(1, 4)))
    >>> table = pd.DataFrame({"knob": ["prune/0", "prune/0", "prune/2", "prune/2", "prune/2", "bits/2"],
    ...     "value": [0.125, 0.25, 0.125, 0.25, 0.375, 2], "accuracy_delta": [-0.02, -0.04, -0.001, -0.002, -0.2, 0],
    ...     "size_delta_bytes": [-16, -32, -40, -80, -120, -150], "latency_delta_ms": [0, 0, 0, 0, 0, 0]})
    >>> predictor = Predictor.from_scan(table, {"accuracy": 0.9, "size_bytes": 500, "latency_ms": 1.0})
    >>> int4 = Plan(layers={name: LayerPlan(bits=4) for name in ("0", "2", "4")})
    >>> fitted, loss = cheapest_fit(int4, over={"size_bytes": 8}, space=space, predictor=predictor)
    >>> fitted.layer("0").prune, fitted.layer("2").prune, fitted.layer("2").bits, loss   # 2 loses least a byte
    (0.0, 0.25, 4, 0.002)
    >>> fitted, loss = cheapest_fit(int4, over={"size_bytes": 14}, space=space, predictor=predictor)
    >>> fitted.layer("0").prune, fitted.layer("2").prune, loss   # 2's third step would lose 20 points: 0's instead
    (0.25, 0.25, 0.042)
    """
    axis = 1 if "size_bytes" in over else 2  # the predictor's (loss, size, latency) deltas
    left, start, lost = over["size_bytes"] if axis == 1 else next(iter(over.values())), plan, 0.0
    for _ in range(MAX_FIT_STEPS):
        scored = []
        for group, old, new, moved in pruning_steps(space, plan):
            change = predictor.change(f"prune/{group.name}", old, new)
            saving = -change[axis] * (_stored_share(plan, group.members) if axis == 1 else 1.0) if change else 0.0
            if saving > 0:
                scored.append(((max(change[0], 0.0) + LOSS_FLOOR) / saving, -saving, len(scored), moved, change[0]))
        if not scored:
            break
        _, negative_saving, _, plan, loss = min(scored)
        left, lost = left + negative_saving, lost + max(loss, 0.0)
        if left <= 0:
            break
    return None if plan == start else (plan, round(lost, 6))


def pruning_steps(space: SearchSpace, plan: Plan) -> list[tuple[Group, float, float, Plan]]:
    """Each group of ``plan`` that can be pruned a step further (up to ``PRUNE_MAX``) and
    changes the model by it: (group, its ratio, the ratio after, the plan after)."""
    if "prune" not in space.techniques:
        return []
    now, steps = space.applied(plan), []
    for group in space.discovery.groups:
        moved = _a_step_further(space, plan, [group.name])
        if moved is not None and moved != now:
            steps.append((group, plan.layer(group.name).prune, moved.layer(group.name).prune, moved))
    return steps


def _a_step_further(space: SearchSpace, plan: Plan, groups: list[str]) -> Plan | None:
    """``plan`` (applied) with ``groups`` pruned one step further, up to ``PRUNE_MAX``; None when
    none of them can go further."""
    layers = dict(plan.layers)
    for name in groups:
        if plan.layer(name).prune < PRUNE_MAX:
            layers[name] = replace(plan.layer(name), prune=min(PRUNE_MAX, plan.layer(name).prune + PRUNE_STEP))
    return None if layers == dict(plan.layers) else space.applied(replace(plan, layers=layers))


def _stored_share(plan: Plan, members: tuple[str, ...]) -> float:
    """The share of a float layer's bytes that ``plan`` stores its group ``members`` in, on average."""
    return sum((plan.layer(m).bits or FLOAT_BITS) / FLOAT_BITS for m in members) / len(members)


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


def pruned_further(space: SearchSpace, plan: Plan) -> Plan | None:
    """``plan`` with every pruning group one step (``PRUNE_STEP``) further, up to ``PRUNE_MAX``;
    None when no group can go further (or pruning is not searched).

    >>> import torch
    >>> from torch import nn
    >>> from autocompress.spaces.layers import discover
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> space = SearchSpace(discover(net, torch.randn(1, 4)))
    >>> int4 = Plan(layers={"0": LayerPlan(bits=4), "2": LayerPlan(bits=4)})
    >>> smaller = pruned_further(space, int4)
    >>> smaller.layer("0").prune, smaller.layer("2").prune, smaller.layer("2").bits
    (0.125, 0.125, 4)
    >>> pruned_further(space, Plan(layers={"0": LayerPlan(prune=PRUNE_MAX), "2": LayerPlan(prune=PRUNE_MAX)})) is None
    True
    """
    if "prune" not in space.techniques:
        return None
    smaller = _a_step_further(space, plan, [g.name for g in space.discovery.groups])
    return None if smaller is None or smaller == space.applied(plan) else smaller
