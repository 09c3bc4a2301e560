"""Structured pruning per dependency group with Torch-Pruning: channels are physically removed.

Each group keeps ``round(channels * width * (1 - prune))`` channels (at least one), ranked by
L1 or L2 magnitude or by first-order Taylor importance (|weight x gradient|, gradients from
one batch of training data). All groups are scored before any is pruned.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> prune_groups(net, torch.randn(1, 4), keep={"0": 0.5}, head="2")
    {'0': (8, 4)}
    >>> net[2].in_features
    4
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from autocompress.spaces.layers import coupled_channels, out_channels


def _importance(kind: str):
    if kind == "taylor":
        return tp.importance.TaylorImportance()
    return tp.importance.MagnitudeImportance(p=1 if kind == "l1" else 2)


def _prune_fn(module: nn.Module):
    return tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels


def prune_groups(model: nn.Module, example_inputs: torch.Tensor, *, keep: dict[str, float], head: str,
                 group_of: dict[str, str] | None = None, importance: str = "l1",
                 batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, tuple[int, int]]:
    """Prune ``model`` in place so each group keeps the fraction ``keep[group]`` of its channels.

    group_of maps a layer name to the group name used in ``keep`` (default: the layer's own
    name). Returns {group: (channels before, channels after)} for the groups that changed.
    """
    group_of = group_of or {}
    graph, groups = coupled_channels(model, example_inputs, head=head)
    scorer = _importance(importance)
    if importance == "taylor":
        if batch is None:
            raise ValueError("taylor importance needs a batch of training data")
        model.zero_grad()
        nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
    decisions = []
    for group, members in groups:
        group_name = next((group_of.get(m, m) for m in members if group_of.get(m, m) in keep), None)
        if group_name is None:
            continue
        root = group[0].dep.target.module
        channels = out_channels(root)
        kept = max(1, round(channels * keep[group_name]))
        if kept >= channels:
            continue
        with torch.no_grad():
            scores = scorer(group)
        if scores is None:  # no gradient reached this group: fall back to magnitude
            scores = _importance("l1")(group)
        drop = torch.argsort(scores)[: channels - kept].tolist()
        decisions.append((root, group_name, channels, kept, sorted(drop)))
    changed = {}
    for root, group_name, channels, kept, drop in decisions:
        graph.get_pruning_group(root, _prune_fn(root), drop).prune()
        changed[group_name] = (channels, kept)
    model.zero_grad(set_to_none=True)
    return changed
