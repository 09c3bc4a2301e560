"""Structured pruning per dependency group with Torch-Pruning: channels are physically removed.

Each group keeps ``round(channels * width * (1 - prune))`` channels (at least one; where a grouped
convolution splits them into chunks, that many per chunk, the same positions in each), ranked by
L1 or L2 magnitude or by first-order Taylor importance (|weight x gradient|, gradients from
one batch of training data). All groups are scored before any is pruned. Channels coupled
through a concatenation are removed by index: the branch that produced a channel loses it, and
the layers consuming the concatenation lose that input at its offset; each branch keeps at
least one channel.

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

from autocompress.compressors.distill import hard_label_loss
from autocompress.model_io import forward
from autocompress.spaces.layers import PRUNED_TYPES, channel_stripes, coupled_channels, out_channels


def _importance(kind: str):
    if kind == "taylor":
        return tp.importance.TaylorImportance()
    return tp.importance.MagnitudeImportance(p=1 if kind == "l1" else 2)


def _drops(scores: torch.Tensor, group: tp.Group, graph: tp.DependencyGraph, count: int, stripes: int = 1
           ) -> list[int]:
    """The ``count`` lowest-scored stripes of root channels of ``group`` (a stripe: the same
    position in each of ``stripes`` equal chunks, scored by their sum; one channel when 1),
    skipping any whose removal would leave one of its layers with no channel: a branch
    concatenated into a wider tensor owns only its slice of the root's channels, and keeps at
    least one of them."""
    owners = [set(item.root_idxs) for item in group if isinstance(item.dep.target.module, PRUNED_TYPES)
              and graph.is_out_channel_pruning_fn(item.dep.handler)]
    left = [len(owned) for owned in owners]
    chunk = len(scores) // stripes
    drop = []
    for position in torch.argsort(scores.reshape(stripes, chunk).sum(0)).tolist():
        if len(drop) == count * stripes:
            break
        stripe = [position + k * chunk for k in range(stripes)]
        mine = [i for i, owned in enumerate(owners) for idx in stripe if idx in owned]
        if all(left[i] > mine.count(i) for i in set(mine)):
            drop += stripe
            for i in mine:
                left[i] -= 1
    return sorted(drop)


def prune_groups(model: nn.Module, example_inputs: torch.Tensor, *, keep: dict[str, float], head: str,
                 group_of: dict[str, str] | None = None, importance: str = "l1",
                 batch: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, tuple[int, int]]:
    """Prune ``model`` in place so each group keeps the fraction ``keep[group]`` of its channels.

    group_of maps a layer name to the group name used in ``keep`` (default: the layer's own
    name). Returns {group: (channels before, channels after)} for the groups that changed.
    """
    group_of = group_of or {}
    only = {m for m, g in group_of.items() if g in keep} | set(keep)
    graph, groups, _ = coupled_channels(model, example_inputs, head=head, only=only)
    if graph is None:
        return {}
    scorer = _importance(importance)
    if importance == "taylor":
        if batch is None:
            raise ValueError("taylor importance needs a batch of training data")
        model.zero_grad()
        hard_label_loss(forward(model, batch[0]), batch[1]).backward()
    decisions = []
    for group, members in groups:
        group_name = next((group_of.get(m, m) for m in members if group_of.get(m, m) in keep), None)
        if group_name is None:
            continue
        channels = out_channels(group[0].dep.target.module)
        stripes = channel_stripes(graph, group, channels)
        units = channels // stripes
        kept = max(1, round(units * keep[group_name]))
        if kept >= units:
            continue
        with torch.no_grad():
            scores = scorer(group)
        if scores is None:  # no gradient reached this group: fall back to magnitude
            scores = _importance("l1")(group)
        drop = _drops(scores, group, graph, units - kept, stripes)
        if drop:
            decisions.append((group, group_name, channels, drop))
    changed = {}
    for group, group_name, channels, drop in decisions:  # each walk again: earlier prunings moved offsets
        graph.get_pruning_group(group[0].dep.target.module, group[0].dep.handler, drop).prune()
        changed[group_name] = (channels, channels - len(drop))
    model.zero_grad(set_to_none=True)
    return changed
