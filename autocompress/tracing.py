"""Recording one forward pass: every torch operation it ran, the tensors it read and those it made.

Used to find where a quantized layer's input is produced (``compressors.placement``) and
whether an embedding's ids come from the model's input (``spaces.embeddings``).

Example:
    >>> import torch
    >>> x = torch.ones(2)
    >>> with OpRecorder() as recorder:
    ...     y = torch.relu(x + 1)
    >>> [(op.name, op.inputs[0] is x) for op in recorder.ops]
    [('add', True), ('relu', False)]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves


@dataclass
class Op:
    name: str
    inputs: list
    outputs: list
    bounds: tuple | None = None  # a clamp's (lower, upper), each a number or None; None: not a clamp


def clamp_bounds(name: str, args: tuple, kwargs: dict) -> tuple | None:
    """The (lower, upper) bounds of a clamping operation (``relu6``, ``hardtanh``, ``clamp``,
    ``clip``) with numbers for bounds; None for any other operation.

    >>> clamp_bounds("hardtanh", (None, 0.0, 6.0), {}), clamp_bounds("clamp", (None,), {"min": 0})
    ((0.0, 6.0), (0, None))
    """
    number = lambda v: v if isinstance(v, (int, float)) and not isinstance(v, bool) else None  # noqa: E731
    if name == "relu6":
        return (0.0, 6.0)
    if name in ("hardtanh", "hardtanh_"):
        lower = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
        upper = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
    elif name in ("clamp", "clamp_", "clip", "clip_"):
        lower = kwargs.get("min", args[1] if len(args) > 1 else None)
        upper = kwargs.get("max", args[2] if len(args) > 2 else None)
    else:
        return None
    return number(lower), number(upper)


class OpRecorder(TorchFunctionMode):
    """A ``TorchFunctionMode`` that appends an ``Op`` to ``ops`` for every torch function called
    while it is active (and ``paused`` is 0). Every tensor it saw stays alive, so ids stay unique."""

    def __init__(self):
        super().__init__()
        self.ops: list[Op] = []
        self.paused = 0
        self.keep: list = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.paused:
            inputs = [t for t in tree_leaves((args, kwargs or {})) if isinstance(t, torch.Tensor)]
            outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            self.keep += inputs + outputs
            name = getattr(func, "__name__", str(func)).removeprefix("__").removesuffix("__")
            self.ops.append(Op(name, inputs, outputs, clamp_bounds(name, args, kwargs or {})))
        return out


def made_from(ops: list[Op]) -> dict[int, list[int]]:
    """tensor id -> the ids of the tensors the operation that made it read."""
    sources: dict[int, list[int]] = {}
    for op in ops:
        for out in op.outputs:
            sources.setdefault(id(out), []).extend(id(t) for t in op.inputs)
    return sources


def computed_from(tensor: int, sources: set[int], made: dict[int, list[int]]) -> bool:
    """Whether the tensor with id ``tensor`` was computed (through any operations) from one of the
    tensors with ids ``sources``; ``made``: what ``made_from`` gives."""
    seen, todo = set(), [tensor]
    while todo:
        t = todo.pop()
        if t in sources:
            return True
        if t not in seen:
            seen.add(t)
            todo += made.get(t, [])
    return False
