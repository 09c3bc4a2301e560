"""The manual recipe: what a user writes by hand with Torch-Pruning, as product plans.

Torch-Pruning's global magnitude pruning (``MetaPruner(..., global_pruning=True)`` with its
default ``MagnitudeImportance``: group L2 norm, averaged over the group's layers, divided by the
group's mean) ranks every prunable channel of the model in ONE list and removes the lowest
``amount`` of them, so some groups lose many channels and others few. Here that choice is made
on the teacher over the product's own dependency groups (``coupled_channels``) and written as a
``Plan``: each group's prune ratio is the share of its channels that fell below the global
threshold, every layer int8, importance ``l2`` (the product then removes, within each group,
the same lowest-L2 channels that the global ranking named). The plan is evaluated by the
product's own path (``autocompress.evaluate``), fine-tuned like a search's trial.

Attention heads are not channels: a user's global channel pruning leaves them alone (they would
list q/k/v in ``ignored_layers``), and so does this recipe.

    >>> from autocompress import load_task                                   # doctest: +SKIP
    >>> plans = manual_plans(load_task("digits"))                            # doctest: +SKIP
    >>> sorted(plans)                                                        # doctest: +SKIP
    ['global30', 'global50', 'global70']
"""

from __future__ import annotations

import copy

import torch

AMOUNTS = (0.3, 0.5, 0.7)  # fractions of all prunable channels removed, as a user would try them


def global_drops(scores: list[torch.Tensor], amount: float) -> list[int]:
    """Channels each group loses when the lowest ``amount`` of all channels (scores of every
    group in one ranking) are removed: ``int(total * (1 - amount))`` are kept, as Torch-Pruning
    counts, and every group keeps at least one channel (its next-lowest goes instead).

    >>> global_drops([torch.tensor([1.0, 5.0, 6.0, 7.0]), torch.tensor([0.5, 0.6])], 0.5)
    [2, 1]
    >>> global_drops([torch.tensor([1.0, 2.0]), torch.tensor([0.1, 0.2])], 0.5)
    [1, 1]
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    flat = torch.cat(scores)
    owner = torch.cat([torch.full((len(s),), i) for i, s in enumerate(scores)]).tolist()
    to_drop = len(flat) - int(len(flat) * (1 - amount))
    left, drops = [len(s) for s in scores], [0] * len(scores)
    for idx in torch.argsort(flat, stable=True).tolist():
        if to_drop == 0:
            break
        if left[owner[idx]] > 1:
            left[owner[idx]] -= 1
            drops[owner[idx]] += 1
            to_drop -= 1
    return drops


def global_prune_ratios(task, amount: float) -> dict[str, float]:
    """Per channel group of ``task``'s teacher (named as in the product's plans): the fraction of
    its channels Torch-Pruning's global magnitude ranking removes at ``amount``."""
    import torch_pruning as tp

    from autocompress.compressors.pipeline import task_context
    from autocompress.spaces.layers import coupled_channels, out_channels

    info = task_context(task).discovery
    channel_groups = {g.name for g in info.groups if g.unit == "channels"}  # named after their first layer
    model = copy.deepcopy(task.teacher).eval()
    _, found, _ = coupled_channels(model, task.example_inputs, head=info.head)
    scorer = tp.importance.MagnitudeImportance()  # Torch-Pruning's defaults: p=2, mean reduction, mean normalizer
    groups, scores = [], []
    with torch.no_grad():
        for group, members in found:  # members: its layers (a width group's tables are not among them)
            if members[0] not in channel_groups:
                raise ValueError(f"Torch-Pruning group {members[0]} is not a channel group of the product's space")
            groups.append((members[0], out_channels(group[0].dep.target.module)))
            scores.append(scorer(group).float())
    drops = global_drops(scores, amount)
    return {name: drop / channels for (name, channels), drop in zip(groups, drops) if drop}


def manual_plan(task, amount: float):
    """Global magnitude pruning at ``amount`` + every layer int8, as one ``Plan``."""
    from autocompress.compressors.pipeline import task_context
    from autocompress.plan import LayerPlan, Plan

    ratios = global_prune_ratios(task, amount)
    layers = {layer.name: LayerPlan(bits=8, prune=ratios.get(layer.name, 0.0))
              for layer in task_context(task).discovery.layers}
    return Plan(layers=layers, importance="l2")


def manual_plans(task, amounts=AMOUNTS) -> dict:
    """``{"global30": plan, "global50": ..., "global70": ...}``."""
    return {f"global{round(100 * a)}": manual_plan(task, a) for a in amounts}
