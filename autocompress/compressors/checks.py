"""Each knob tried on a copy of the model before the search space offers it.

The dependency graph and the layer types say what should work; a user's model can still refuse
it in its own code: a reshape into heads that needs a multiple of the head size, a grouped
convolution whose groups must divide its channels, a layer whose weight the model reads
directly (``self.qkv.weight`` in torchvision's Swin, ``projection.weight.dtype`` in Hugging
Face's ViT) so it cannot be replaced by a quantized or factorized one. Every channel group is
pruned by one channel, every layer factorized and quantized, all at once on a copy; where the
copy fails or its output shape changes, the parts are tried by halves, and those that fail
alone are left out with the model's own error as the reason.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from autocompress.spaces.layers import discover
    >>> class Pairs(nn.Module):   # its first layer's output must split into 2-channel heads
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)
    ...     def forward(self, x):
    ...         return self.b(self.a(x).reshape(1, -1, 2).flatten(1))
    >>> info = checked(Pairs(), torch.randn(1, 4), discover(Pairs(), torch.randn(1, 4)))
    >>> [g.name for g in info.groups], info.not_compressible["a (outputs)"][:45]
    ([], 'not pruned: with a channel fewer the model fa')
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable

import torch
from torch import nn

from autocompress.model_io import Inputs, call, forward
from autocompress.compressors.heads import prune_heads
from autocompress.compressors.lowrank import factorize
from autocompress.compressors.prune import prune_groups
from autocompress.compressors.quantize import prepare_qat
from autocompress.plan import rank_from_knob
from autocompress.spaces.layers import COMPRESSIBLE_TYPES, RECURRENT_TYPES, Discovery, Group, Layer


def _problem(model: nn.Module, example_inputs: Inputs, change: Callable[[nn.Module], None],
             expected: tuple[int, ...]) -> str:
    """"" if ``change`` applied to a copy of ``model`` leaves it running with outputs of the
    same shape, else what went wrong."""
    trial = copy.deepcopy(model).eval()
    try:
        change(trial)
        with torch.no_grad():
            shape = tuple(forward(trial, example_inputs).shape)
    except Exception as exc:  # the model's own code refusing the change
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return "" if shape == expected else f"the output shape changed from {expected} to {shape}"


def _failing(items: list, try_them: Callable[[list], str]) -> dict:
    """{item: problem} for the items that fail alone; all tried at once first, then by halves."""
    failed = {}

    def check(part: list) -> None:
        problem = try_them(part) if part else ""
        if not problem:
            return
        if len(part) == 1:
            failed[part[0]] = problem
            return
        check(part[:len(part) // 2])
        check(part[len(part) // 2:])

    check(items)
    return failed


def _output_shape(model: nn.Module, example_inputs: Inputs) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(forward(model, example_inputs).shape)


def checked_groups(model: nn.Module, example_inputs: Inputs, groups: list[Group], head: str
                   ) -> tuple[list[Group], dict[str, str]]:
    """The channel and head groups that can be pruned, and {group: why not} for the others."""
    expected = _output_shape(model, example_inputs)

    def prune_one_channel(part: list[Group]) -> str:  # one stripe where a grouped convolution needs them
        units = {g.name: g.channels // g.stripes for g in part}
        return _problem(model, example_inputs, lambda trial: prune_groups(
            trial, example_inputs, keep={name: (n - 1) / n for name, n in units.items()}, head=head,
            group_of={m: g.name for g in part for m in g.members}), expected)

    def prune_one_head(part: list[Group]) -> str:
        return _problem(model, example_inputs, lambda trial: prune_heads(
            trial, example_inputs, keep={g.name.rpartition(".")[0]: (g.channels - 1) / g.channels for g in part}),
            expected)

    failed = _failing([g for g in groups if g.unit == "channels" and g.channels // g.stripes > 1], prune_one_channel)
    failed_heads = _failing([g for g in groups if g.unit == "heads" and g.channels > 1], prune_one_head)
    refused = {g.name: f"not pruned: with a channel fewer the model fails ({why})" for g, why in failed.items()}
    refused.update({g.name: f"heads not pruned: with a head fewer the model fails ({why})"
                    for g, why in failed_heads.items()})
    return [g for g in groups if g.name not in refused], refused


def _called_layers(model: nn.Module, example_inputs: Inputs) -> set[str]:
    """The Conv/Linear/Embedding layers the forward pass calls as modules."""
    called: set[str] = set()
    hooks = [m.register_forward_hook(lambda *_, n=n: called.add(n)) for n, m in model.named_modules()
             if isinstance(m, COMPRESSIBLE_TYPES + RECURRENT_TYPES + (nn.Embedding,))]
    try:
        with torch.no_grad():
            call(model, example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return called


def checked_layers(model: nn.Module, example_inputs: Inputs, layers: list[Layer]
                   ) -> tuple[list[Layer], dict[str, str]]:
    """The layers that can be replaced by their quantized form, without the rank knob where the
    factorized form fails (with why), and {layer: why not} for the layers left out."""
    called = _called_layers(model, example_inputs)
    refused = {layer.name: ("not compressed: the model reads its weight directly instead of calling the layer, "
                            "so it cannot be replaced by a quantized or factorized one")
               for layer in layers if layer.name not in called}
    expected = _output_shape(model, example_inputs)
    tried = [layer for layer in layers if layer.name not in refused]

    def quantized(part: list[Layer]) -> str:
        return _problem(model, example_inputs, lambda trial: prepare_qat(trial, {x.name: 8 for x in part}), expected)

    def factorized(part: list[Layer]) -> str:  # by the last (smallest) choice: Tucker-2 where it is offered
        knobs = {x.name: rank_from_knob(x.rank_ratios[-1]) for x in part}
        return _problem(model, example_inputs, lambda trial: factorize(
            trial, {name: knob["rank"] for name, knob in knobs.items()}, svd=False,
            tucker={name for name, knob in knobs.items() if knob["decomposition"] == "tucker2"}), expected)

    for layer, why in _failing(tried, quantized).items():
        refused[layer.name] = f"not compressed: replaced by its quantized form the model fails ({why})"
    no_rank = _failing([layer for layer in tried if layer.rank_ratios and layer.name not in refused], factorized)
    kept = [dataclasses.replace(layer, rank_ratios=(), rank_reason=f"factorized, the model fails ({no_rank[layer]})")
            if layer in no_rank else layer for layer in layers if layer.name not in refused]
    return kept, refused


def checked(model: nn.Module, example_inputs: Inputs, info: Discovery) -> Discovery:
    """``info`` (what ``spaces.layers.discover`` found in ``model``) without the groups and knobs
    the model refuses when tried, each listed in ``not_compressible`` with why."""
    groups, refused_groups = checked_groups(model, example_inputs, list(info.groups), info.head)
    layers, refused_layers = checked_layers(model, example_inputs, list(info.layers))
    member_of = {m: g.name for g in groups for m in g.members}
    layers = [dataclasses.replace(layer, group=member_of.get(layer.name)) for layer in layers]
    skipped = {**info.not_compressible, **{f"{name} (outputs)": why for name, why in refused_groups.items()},
               **refused_layers}
    return dataclasses.replace(info, layers=tuple(layers), groups=tuple(groups), not_compressible=skipped)
