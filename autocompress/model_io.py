"""How a task's model is called and how its output is read, in one place.

A model's inputs are one tensor, a tuple of tensors (``model(*inputs)``) or a dict of tensors
(``model(**inputs)``: a Hugging Face model's ``input_ids`` and ``attention_mask``); every
tensor's first dimension is the batch. Its output is a tensor, a tuple or list whose first
element is the tensor, a dict or an object with ``logits`` (a Hugging Face ``ModelOutput``):
``output_tensor`` finds the tensor every measurement and loss is taken on. The exported ONNX
file takes the inputs as named tensors (``input`` for one tensor, ``input_0, input_1 ...`` for a
tuple, the dict's keys for a dict) and returns that one tensor, named ``logits``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Pair(nn.Module):
    ...     def forward(self, a, b):
    ...         return (a + b, "extra")
    >>> forward(Pair(), (torch.ones(1, 2), torch.ones(1, 2)))
    tensor([[2., 2.]])
    >>> input_names({"input_ids": torch.zeros(1, 3), "attention_mask": torch.ones(1, 3)})
    ['input_ids', 'attention_mask']
    >>> rows({"ids": torch.arange(6).reshape(3, 2)}, torch.tensor([2]))
    {'ids': tensor([[4, 5]])}
"""

from __future__ import annotations

from typing import Any, Union

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

Inputs = Union[torch.Tensor, tuple, dict]
SINGLE_INPUT_NAME, OUTPUT_NAME = "input", "logits"


def call(model: nn.Module, inputs: Inputs) -> Any:
    """The model's raw output on ``inputs`` (a tensor, a tuple of them, or a dict of them)."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def output_tensor(output: Any) -> torch.Tensor:
    """The tensor of a model's output: itself, ``.logits``, a dict's ``logits`` (else its first
    value), or the first element of a tuple or list (recursively)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) or hasattr(output, "keys"):
        keys = list(output.keys())
        if not keys:
            raise ValueError("the model returned an empty mapping; return the output tensor")
        return output_tensor(output["logits"] if "logits" in keys else output[keys[0]])
    if hasattr(output, "logits"):
        return output_tensor(output.logits)
    if isinstance(output, (tuple, list)) and output:
        return output_tensor(output[0])
    raise ValueError(f"the model returned {type(output).__name__}; return a tensor, a tuple whose first element "
                     "is one, or an object with .logits")


def forward(model: nn.Module, inputs: Inputs) -> torch.Tensor:
    """``output_tensor(call(model, inputs))``."""
    return output_tensor(call(model, inputs))


def tensors(inputs: Inputs) -> tuple[torch.Tensor, ...]:
    """The input tensors in order (a dict's in its key order)."""
    if isinstance(inputs, dict):
        return tuple(inputs.values())
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs)
    return (inputs,)


def class_axis(outputs_shape: tuple, labels_shape: tuple) -> int:
    """Where the classes are in outputs of ``outputs_shape`` scored against integer labels of
    ``labels_shape``: the last dimension ((N, C); per token (N, T, C) with labels (N, T)), or
    dimension 1 where the labels lack that one (per pixel (N, C, H, W) with labels (N, H, W), as
    PyTorch's cross-entropy takes them).

    >>> class_axis((8, 10), (8,)), class_axis((8, 12, 5), (8, 12)), class_axis((8, 5, 16, 16), (8, 16, 16))
    (-1, -1, 1)
    """
    outputs_shape, labels_shape = tuple(outputs_shape), tuple(labels_shape)
    if len(outputs_shape) > 2 and labels_shape != outputs_shape[:-1] and \
            labels_shape == outputs_shape[:1] + outputs_shape[2:]:
        return 1
    return -1


def arrays(inputs: Inputs) -> dict:
    """Every input tensor as a NumPy array under its ONNX input name (``input_names``)."""
    return {name: tensor.numpy() for name, tensor in zip(input_names(inputs), tensors(inputs))}


def input_names(inputs: Inputs) -> list[str]:
    """The ONNX input names for ``inputs`` (see the module docstring)."""
    if isinstance(inputs, dict):
        return list(inputs)
    if isinstance(inputs, (tuple, list)):
        return [f"input_{i}" for i in range(len(inputs))]
    return [SINGLE_INPUT_NAME]


def like(template: Inputs, values: tuple) -> Inputs:
    """``values`` (tensors in order) in the structure of ``template``."""
    if isinstance(template, dict):
        return dict(zip(template, values))
    if isinstance(template, (tuple, list)):
        return tuple(values)
    return values[0]


def rows(inputs: Inputs, index) -> Inputs:
    """The batch rows ``index`` (a slice or an index tensor) of every input tensor."""
    return like(inputs, tuple(t[index] for t in tensors(inputs)))


def to(inputs: Inputs, device) -> Inputs:
    """Every input tensor moved to ``device`` (None: as it is)."""
    if device is None:
        return inputs
    return like(inputs, tuple(t.to(device) for t in tensors(inputs)))


def batch_size(inputs: Inputs) -> int:
    return int(tensors(inputs)[0].shape[0])


def collate(examples: list) -> Inputs:
    """A batch of dataset inputs (tensors, tuples or dicts of tensors), stacked."""
    return default_collate(examples)


class Examples(Dataset):
    """A split of (inputs, label) examples from batched ``inputs`` (a tensor, a tuple or a dict of
    tensors, batch first, as the model takes them) and ``labels``: what a Hugging Face data
    pipeline gives, for a ``Task``.

    >>> data = Examples({"input_ids": torch.arange(6).reshape(3, 2)}, torch.tensor([0, 1, 0]))
    >>> len(data), data[1]
    (3, ({'input_ids': tensor([2, 3])}, tensor(1)))
    """

    def __init__(self, inputs: Inputs, labels: torch.Tensor):
        if batch_size(inputs) != len(labels):
            raise ValueError(f"{batch_size(inputs)} inputs but {len(labels)} labels; give one label per example")
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return like(self.inputs, tuple(t[i] for t in tensors(self.inputs))), self.labels[i]


def feed(session, inputs: Inputs) -> dict:
    """An ONNX Runtime feed for ``inputs``: the session's inputs by name, in order; an input the
    exporter found unused (and left out of the file) is not fed."""
    wanted = [i.name for i in session.get_inputs()]
    given = dict(zip(input_names(inputs), tensors(inputs)))
    if len(wanted) == 1 and len(given) == 1:
        return {wanted[0]: next(iter(given.values())).numpy()}
    return {name: given[name].numpy() for name in wanted if name in given}


def describe(inputs: Inputs) -> str:
    """Shapes of the inputs, for a message: ``(1, 3, 32, 32)`` or ``input_ids (1, 12), ...``."""
    if isinstance(inputs, torch.Tensor):
        return str(tuple(inputs.shape))
    return ", ".join(f"{name} {tuple(getattr(t, 'shape', ()))}" for name, t in zip(input_names(inputs), tensors(inputs)))


def check_inputs(inputs: Any) -> str:
    """Why ``inputs`` cannot be a task's ``example_inputs``, or "" when it can: a tensor, a
    non-empty tuple or dict of tensors, each with batch size 1."""
    if isinstance(inputs, (tuple, list, dict)):
        if not inputs:
            return "example_inputs is empty"
        bad = [name for name, t in zip(input_names(inputs), tensors(inputs)) if not isinstance(t, torch.Tensor)]
        if bad:
            return f"example_inputs {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not a tensor"
    elif not isinstance(inputs, torch.Tensor):
        return f"example_inputs must be a tensor, a tuple or a dict of tensors, got {type(inputs).__name__}"
    if any(t.dim() == 0 or t.shape[0] != 1 for t in tensors(inputs)):
        return f"example_inputs must have batch size 1 in every tensor, got {describe(inputs)}"
    return ""


class Exportable(nn.Module):
    """A model called with positional tensors and returning its output tensor: what
    ``torch.onnx.export`` traces for a model with a tuple or dict of inputs or a structured
    output. Its parameters are named ``model.<name>``."""

    def __init__(self, model: nn.Module, template: Inputs):
        super().__init__()
        self.model, self.template = model, template

    def forward(self, *values: torch.Tensor) -> torch.Tensor:
        return forward(self.model, like(self.template, values))
