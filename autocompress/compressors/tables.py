"""Embedding rows a candidate's file can never read are left out of it.

A table looked up by ids the model makes itself, not from its input (positions from
``torch.arange`` or from a buffer, token types from a buffer of zeros: Hugging Face BERT keeps a
512-row position table and reads 48 rows for 48-token inputs), reads the same first rows
whatever the input. An exported file fixes every input dimension but the batch, so the rows
past those are dead weight: ``trim_tables`` cuts the table to the rows read, the same for a
batch of one and a batch of two, which changes no output. A table whose weight another module
shares is left whole.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Text(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.tokens, self.positions = nn.Embedding(9, 2), nn.Embedding(512, 2)
    ...     def forward(self, ids):
    ...         return self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
    >>> model, ids = Text(), torch.tensor([[1, 2, 3]])
    >>> before = model(ids)
    >>> trim_tables(model, ids)
    {'positions': (512, 3)}
    >>> torch.equal(model(ids), before)
    True
"""

from __future__ import annotations

import torch
from torch import nn

from autocompress import model_io
from autocompress.spaces.embeddings import CONSTANT_LOOKUP, embeddings_left_float, lookups


def rows_read(model: nn.Module, example_inputs: model_io.Inputs) -> dict[str, int]:
    """{table: rows} for the tables looked up once by ids not made from the input, reading the
    same first ``rows`` rows for a batch of one and a batch of two."""
    constant = [n for n, why in embeddings_left_float(model, example_inputs).items() if why == CONSTANT_LOOKUP]
    if not constant:
        return {}
    one = model_io.rows(example_inputs, slice(0, 1))
    reads = [lookups(model, batch)[0] for batch in (one, model_io.rows(one, torch.tensor([0, 0])))]
    rows = {}
    for name in constant:
        highest = {int(ids.max()) if ids.numel() else -1 for calls in reads for ids in calls.get(name, [])}
        if len(highest) == 1 and min(highest) >= 0:
            rows[name] = min(highest) + 1
    return rows


def _shared_weights(model: nn.Module) -> set[int]:
    seen: dict[int, int] = {}
    for _, parameter in model.named_parameters(remove_duplicate=False):
        seen[id(parameter)] = seen.get(id(parameter), 0) + 1
    return {key for key, count in seen.items() if count > 1}


def trim_tables(model: nn.Module, example_inputs: model_io.Inputs, *,
                rows: dict[str, int] | None = None) -> dict[str, tuple[int, int]]:
    """Cut, in place, every table that reads only its first rows whatever the input to those
    rows (``rows``: what ``rows_read`` found on the same model, to skip tracing it again);
    returns {table: (rows before, rows after)} of those cut."""
    shared = _shared_weights(model)
    changed = {}
    for name, rows in (rows_read(model, example_inputs) if rows is None else rows).items():
        table = model.get_submodule(name)
        if rows >= table.num_embeddings or id(table.weight) in shared:
            continue
        changed[name] = (table.num_embeddings, rows)
        table.weight = nn.Parameter(table.weight.detach()[:rows].clone(), requires_grad=table.weight.requires_grad)
        table.num_embeddings = rows
        if table.padding_idx is not None and table.padding_idx >= rows:
            table.padding_idx = None  # the padding row was never read
    return changed
