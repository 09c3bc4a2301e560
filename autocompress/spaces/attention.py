"""Where a model's attention heads are: found in the model as it is, whatever library wrote it.

An attention module here is a module with three Linear children for queries, keys and values
(named ``q/k/v``, ``query/key/value``, ``q_proj/k_proj/v_proj`` or ``q_lin/k_lin/v_lin``: the
names of autocompress' SelfAttention, Hugging Face's BERT, ViT and DistilBERT, and most
hand-written ones) of one width, and a head size (an attribute ``head_dim``,
``attention_head_size``, ``head_size`` or ``dim_per_head``; else the width over ``num_heads``,
``num_attention_heads`` or ``n_heads``). Head h owns rows ``h*head_dim:(h+1)*head_dim`` of q, k
and v, and the same input columns of the output projection: the first Linear the forward pass
runs on a tensor computed from the values (found by tracing one forward pass, wherever it lives:
BERT's is a sibling module, ``attention.output.dense``). Whether pruning a head really works in
that model's code (a model that hard-codes its head count in a reshape) is tried on a copy
before the space offers it (``compressors.checks``).

Example:
    >>> import torch
    >>> from autocompress.modules import SelfAttention
    >>> net = torch.nn.Sequential(SelfAttention(dim=8, num_heads=2))
    >>> find_heads(net, torch.randn(1, 3, 8))
    {'0': Heads(module='0', q='0.q', k='0.k', v='0.v', out='0.out', heads=2, head_dim=4)}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autocompress.model_io import Inputs, call
from autocompress.tracing import OpRecorder, computed_from, made_from

PROJECTION_NAMES = (("q", "k", "v"), ("query", "key", "value"), ("q_proj", "k_proj", "v_proj"),
                    ("q_lin", "k_lin", "v_lin"))
HEAD_SIZE_ATTRIBUTES = ("head_dim", "attention_head_size", "head_size", "dim_per_head")
HEAD_COUNT_ATTRIBUTES = ("num_heads", "num_attention_heads", "n_heads", "n_head")


@dataclass(frozen=True)
class Heads:
    """One attention module's heads: the full names of its q, k, v and output layers."""

    module: str
    q: str
    k: str
    v: str
    out: str
    heads: int
    head_dim: int


def _projections(module: nn.Module) -> tuple[str, str, str] | None:
    children = dict(module.named_children())
    for names in PROJECTION_NAMES:
        layers = [children.get(n) for n in names]
        if all(isinstance(layer, nn.Linear) for layer in layers) and len({layer.out_features for layer in layers}) == 1:
            return names
    return None


def _head_dim(module: nn.Module, width: int) -> int | None:
    for attribute in HEAD_SIZE_ATTRIBUTES:
        size = getattr(module, attribute, None)
        if isinstance(size, int) and 0 < size < width and width % size == 0:
            return size
    for attribute in HEAD_COUNT_ATTRIBUTES:
        count = getattr(module, attribute, None)
        if isinstance(count, int) and 1 < count <= width and width % count == 0:
            return width // count
    return None


def _candidates(model: nn.Module) -> dict[str, tuple[tuple[str, str, str], int]]:
    """{module: ((q, k, v) full names, head size)} for modules shaped like attention."""
    found = {}
    for name, module in model.named_modules():
        names = _projections(module)
        if names is None:
            continue
        head_dim = _head_dim(module, getattr(module, names[0]).out_features)
        if head_dim is not None:
            found[name] = (tuple(f"{name}.{n}" if name else n for n in names), head_dim)
    return found


def find_heads(model: nn.Module, example_inputs: Inputs) -> dict[str, Heads]:
    """{attention module name: its Heads} (see the module docstring)."""
    candidates = _candidates(model)
    if not candidates:
        return {}
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    outputs, inputs, order = {}, {}, []

    def record(name: str):
        def hook(module, args, out):
            inputs.setdefault(name, id(args[0]))
            outputs.setdefault(name, id(out))
            order.append(name)
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in linears.items()]
    recorder = OpRecorder()
    try:
        with torch.no_grad(), recorder:
            call(model, example_inputs)
    finally:
        for h in hooks:
            h.remove()
    sources = made_from(recorder.ops)
    found = {}
    for name, ((q, k, v), head_dim) in candidates.items():
        if v not in outputs:
            continue
        after_v = order[order.index(v) + 1:]
        out = next((n for n in after_v if n not in (q, k, v) and linears[n].in_features == linears[v].out_features
                    and computed_from(inputs[n], {outputs[v]}, sources)), None)
        if out is not None:
            found[name] = Heads(name, q, k, v, out, linears[q].out_features // head_dim, head_dim)
    return found


def projection_layers(found: dict[str, Heads]) -> list[str]:
    """The q, k, v layers of the attention modules ``found``: their outputs are heads, never
    pruned channel by channel."""
    return [layer for heads in found.values() for layer in (heads.q, heads.k, heads.v)]
