"""What a plan really does to each layer: the fraction of its output channels kept, its
bit-width, its rank, and whether the student drops the block it sits in.

Pruning ratios belong to dependency groups, and the student's width multiplies every group:
``compress`` keeps ``max(1, round(channels * width * (1 - prune)))`` of a group's channels (or
attention heads), and every member of the group loses the same channels. So a layer whose
plan entry says nothing can still be pruned, through the group another layer names. Layers in
no group (the output layer, layers coupled in ways that cannot be pruned) keep all channels.

Plain data, for the report and for ``autocompress best``.

Example (the tiny residual CNN: ``stem`` and ``block.0`` are added, so they form one group):
    >>> from autocompress.plan import LayerPlan, Plan
    >>> plan = Plan(layers={"stem": LayerPlan(prune=0.5), "fc": LayerPlan(bits=8)}, width=0.75)
    >>> rows = layer_plan(plan, layers=["stem", "block.0", "fc"], stages={"": ["block"]},
    ...                   groups={"stem": ["stem", "block.0"]}, channels={"stem": 8})
    >>> [(r.name, r.group, r.kept, r.channels, r.bits, r.dropped) for r in rows]
    [('stem', 'stem', 0.375, (8, 3), None, False), ('block.0', 'stem', 0.375, (8, 3), None, False), ('fc', None, 1.0, None, 8, False)]
    >>> [r.dropped for r in layer_plan(Plan(depth={"": 0}), layers=["stem", "block.0"], stages={"": ["block"]})]
    [False, True]
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

from autocompress.plan import Plan

_PRUNED = re.compile(r"\bpruned (heads of )?(\S+) (\d+)->(\d+)")


@dataclass(frozen=True)
class LayerEffect:
    """One layer under a plan.

    kept: fraction of the layer's output channels kept (1.0 = all).
    channels: (teacher's channels, channels kept) when the group's channel count is known.
    group: the pruning group the layer's output channels belong to (None = not prunable).
    bits: weight bit-width, None = float32. rank: fraction of the rank kept, None = full.
    dropped: the student drops the block the layer sits in.
    decomposition: how the layer is factorized where ``rank`` is set ("svd" or "tucker2").
    """

    name: str
    group: str | None
    kept: float
    channels: tuple[int, int] | None
    bits: int | None
    rank: float | None
    dropped: bool
    decomposition: str = "svd"

    def to_dict(self) -> dict:
        return asdict(self)


def kept_channels(channels: int, keep: float) -> int:
    """Channels a group of ``channels`` keeps at fraction ``keep``, rounded as the pruning
    compressors round (at least one; none removed when rounding keeps them all).

    >>> kept_channels(8, 0.375), kept_channels(8, 0.95), kept_channels(8, 0.01)
    (3, 8, 1)
    """
    return min(channels, max(1, round(channels * keep)))


def layer_plan(plan: Plan, *, layers: Sequence[str], stages: Mapping[str, Sequence[str]] | None = None,
               groups: Mapping[str, Sequence[str]] | None = None,
               channels: Mapping[str, int] | None = None) -> list[LayerEffect]:
    """The effect of ``plan`` on each of ``layers`` (in that order).

    stages: stage -> its droppable blocks (run.json's model.stages); groups: group name -> member
    layers (model.groups); channels: group name -> its number of output channels (or heads) in
    the teacher, to round as the compressor does (without it, the fraction is not rounded).
    Without ``groups`` (runs made before run.json recorded them), a layer the plan prunes is
    taken as a group of its own.
    """
    if groups is None:
        groups = {name: [name] for name in layers if plan.layer(name).prune}
    group_of = {member: name for name, members in groups.items() for member in members}
    dropped_blocks = [block for stage, blocks in (stages or {}).items()
                      for block in list(blocks)[plan.blocks_kept(stage, len(blocks)):]]
    rows = []
    for name in layers:
        group = group_of.get(name)
        keep = plan.width * (1 - plan.layer(group).prune) if group is not None else 1.0
        count = (channels or {}).get(group) if group is not None else None
        if count:
            after = kept_channels(int(count), keep) if keep < 1 else int(count)
            kept, pair = after / int(count), (int(count), after)
        else:
            kept, pair = min(keep, 1.0), None
        own = plan.layer(name)
        rows.append(LayerEffect(name=name, group=group, kept=kept, channels=pair, bits=own.bits, rank=own.rank,
                                dropped=any(name == b or name.startswith(b + ".") for b in dropped_blocks),
                                decomposition=own.decomposition))
    return rows


def channels_from_notes(notes: Iterable[str], groups: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each group's channel count in the teacher, read from trial notes such as
    ``pruned stem 8->3`` or ``pruned heads of enc.0.attn 4->2`` (what the compressor did).

    >>> channels_from_notes(["pruned stem 8->3; dropped blocks block", None, "pruned heads of a 4->2"],
    ...                     {"stem": ["stem", "block.0"], "a.q": ["a.q", "a.k", "a.v"]})
    {'stem': 8, 'a.q': 4}
    """
    found = {}
    for text in notes:
        if not isinstance(text, str):
            continue
        for heads, name, before, _ in _PRUNED.findall(text):
            group = f"{name}.q" if heads else name
            if group in groups:
                found.setdefault(group, int(before))
    return found


__all__ = ["LayerEffect", "channels_from_notes", "kept_channels", "layer_plan"]
