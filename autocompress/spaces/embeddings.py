"""Which embedding tables can be stored quantized, and why the others stay float.

An ``nn.Embedding`` gets a bit-width when the exported file will hold exactly one lookup of its
table by ids the model computes from its input (token ids): that lookup is what the exporter
replaces by a lookup of the integer rows (``evaluators.export``). The others stay float, each
with its reason, shown by ``inspect`` under "not compressed":

- ids the model makes itself (positions from ``torch.arange``, a buffer of token types): the
  exporter may fold the lookup into a float constant, leaving no table to quantize; such a
  table reads the same first rows whatever the input, and only those rows are kept in a
  candidate's file (``compressors.tables``);
- a table looked up twice or never in a forward pass (shared, or unused);
- ``max_norm`` (the lookup rewrites the table) or ``sparse`` gradients.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Text(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.tokens, self.positions = nn.Embedding(9, 2), nn.Embedding(3, 2)
    ...         self.unused = nn.Embedding(5, 2)
    ...     def forward(self, ids):
    ...         return self.tokens(ids) + self.positions(torch.arange(3))
    >>> sorted(embeddings_left_float(Text(), torch.tensor([[1, 2, 3]])))
    ['positions', 'unused']
"""

from __future__ import annotations

import torch
from torch import nn

from autocompress.model_io import Inputs, call, tensors
from autocompress.tracing import OpRecorder, computed_from, made_from

CONSTANT_LOOKUP = ("embedding looked up by ids not computed from the input (positions from torch.arange): the "
                   "exporter may fold that lookup into a float constant, so its table is not quantized (rows it "
                   "never reads are left out of a candidate's file)")
NOT_ONCE = "embedding looked up {count} times in a forward pass: only a table looked up once is quantized"
REWRITTEN = "embedding with max_norm or sparse gradients: its table is not quantized"


def lookups(model: nn.Module, example_inputs: Inputs) -> tuple[dict[str, list[torch.Tensor]], OpRecorder]:
    """The ids tensors each embedding of ``model`` was called with, and every operation of that
    forward pass."""
    calls: dict[str, list[torch.Tensor]] = {}

    def record(name: str):
        def hook(module, args, kwargs) -> None:
            ids = args[0] if args else kwargs.get("input")
            calls.setdefault(name, []).append(ids)
        return hook

    hooks = [m.register_forward_pre_hook(record(n), with_kwargs=True) for n, m in model.named_modules()
             if isinstance(m, nn.Embedding)]
    recorder = OpRecorder()
    try:
        with torch.no_grad(), recorder:
            call(model, example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return calls, recorder


def embeddings_left_float(model: nn.Module, example_inputs: Inputs) -> dict[str, str]:
    """{embedding name: why its table is not offered a bit-width} (see the module docstring)."""
    tables = {n: m for n, m in model.named_modules() if isinstance(m, nn.Embedding)}
    if not tables:
        return {}
    calls, recorder = lookups(model, example_inputs)
    sources = made_from(recorder.ops)
    why = {}
    for name, table in tables.items():
        if table.max_norm is not None or table.sparse:
            why[name] = REWRITTEN
        elif len(calls.get(name, [])) != 1:
            why[name] = NOT_ONCE.format(count=len(calls.get(name, [])))
        elif not computed_from(id(calls[name][0]), {id(t) for t in tensors(example_inputs)}, sources):
            why[name] = CONSTANT_LOOKUP
    return why
