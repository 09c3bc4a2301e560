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
            self.ops.append(Op(name, inputs, outputs))
        return out
