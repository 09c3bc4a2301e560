"""Student architecture, depth part: keep the first k droppable blocks of each stage.

A dropped residual block becomes a ``DroppedBlock``: it returns its first input unchanged
(shapes match, which ``spaces.layers.block_stages`` checked) and ignores any other argument,
such as the attention mask a transformer layer is given. The width part of the student is a uniform channel
multiplier applied by ``prune.prune_groups``, so the student inherits the teacher's weights.

Example:
    >>> from torch import nn
    >>> from autocompress.plan import Plan
    >>> net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    >>> dropped = drop_blocks(net, Plan(depth={"": 1}), {"": ("0", "1")})
    >>> dropped, type(net[1]).__name__
    (['1'], 'DroppedBlock')
"""

from __future__ import annotations

from torch import nn

from autocompress.plan import Plan


class DroppedBlock(nn.Module):
    """What a dropped block becomes: its first input, unchanged."""

    def forward(self, x, *args, **kwargs):
        return x


def drop_blocks(model: nn.Module, plan: Plan, stages: dict[str, tuple[str, ...]]) -> list[str]:
    """Replace the blocks beyond each stage's planned depth with ``DroppedBlock``, in place."""
    dropped = []
    for stage, blocks in stages.items():
        for block in blocks[plan.blocks_kept(stage, len(blocks)):]:
            model.set_submodule(block, DroppedBlock())
            dropped.append(block)
    return dropped
