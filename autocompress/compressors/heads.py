"""Attention-head pruning: whole heads are removed from an attention module.

The heads are where ``spaces.attention.find_heads`` finds them: in autocompress' SelfAttention,
in nn.MultiheadAttention (made explicit by ``canonical``), in Hugging Face's BERT, ViT and
DistilBERT attention, in a hand-written one. Head h owns rows ``h*head_dim:(h+1)*head_dim`` of
q, k and v and the same input columns of the output projection. Channel-wise pruning
(Torch-Pruning) never touches q/k/v outputs, because a channel removed from one head but not its
partners breaks the head's shape; whole heads are pruned here instead, ranked by the L1 (or L2)
norm of each head's weights. The module's head-count attribute (``num_heads``,
``num_attention_heads`` ...) and ``all_head_size`` follow, and a module with a ``keep_heads(kept)``
method of its own (``window_attention.WindowAttention``: a position bias per head) is told which.

Example:
    >>> import torch
    >>> from torch import nn
    >>> attn = SelfAttention(dim=8, num_heads=4)
    >>> net = nn.Sequential(attn)
    >>> prune_heads(net, torch.randn(1, 3, 8), keep={"0": 0.5})
    {'0': (4, 2)}
    >>> attn.num_heads, attn.q.out_features, attn.out.in_features, net(torch.randn(1, 3, 8)).shape
    (2, 4, 4, torch.Size([1, 3, 8]))
"""

from __future__ import annotations

import torch
from torch import nn

from autocompress.model_io import Inputs
from autocompress.modules import SelfAttention
from autocompress.spaces.attention import HEAD_COUNT_ATTRIBUTES, Heads, find_heads

__all__ = ["SelfAttention", "head_scores", "keep_heads", "prune_heads"]


def head_scores(model: nn.Module, heads: Heads, *, p: int = 1) -> torch.Tensor:
    """One importance per head: the Lp norm of its rows of q, k, v and its columns of out."""
    layer = model.get_submodule
    count = layer(heads.q).out_features // heads.head_dim
    rows = lambda w: w.detach().reshape(count, heads.head_dim, -1)  # noqa: E731
    parts = [rows(layer(name).weight).abs().pow(p).flatten(1).sum(1) for name in (heads.q, heads.k, heads.v)]
    out = layer(heads.out).weight.detach()
    parts.append(out.reshape(out.shape[0], count, heads.head_dim).abs().pow(p).transpose(0, 1).flatten(1).sum(1))
    return torch.stack(parts).sum(0)


def _sliced(layer: nn.Linear, index: torch.Tensor, *, dim: int) -> nn.Linear:
    weight = layer.weight.detach().index_select(dim, index)
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=layer.bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if layer.bias is not None:
            new.bias.copy_(layer.bias.detach() if dim == 1 else layer.bias.detach()[index])
    return new.train(layer.training)


@torch.no_grad()
def keep_heads(model: nn.Module, heads: Heads, kept: list[int]) -> None:
    """Keep only the heads ``kept`` (indices) of the attention ``heads`` describes, in place."""
    index = torch.cat([torch.arange(h * heads.head_dim, (h + 1) * heads.head_dim) for h in sorted(kept)])
    for name in (heads.q, heads.k, heads.v):
        model.set_submodule(name, _sliced(model.get_submodule(name), index, dim=0))
    model.set_submodule(heads.out, _sliced(model.get_submodule(heads.out), index, dim=1))
    module = model.get_submodule(heads.module)
    for attribute in HEAD_COUNT_ATTRIBUTES:
        if isinstance(getattr(module, attribute, None), int):
            setattr(module, attribute, len(kept))
    if isinstance(getattr(module, "all_head_size", None), int):
        module.all_head_size = len(kept) * heads.head_dim
    if callable(getattr(module, "keep_heads", None)):  # per-head parts of its own (Swin's position bias)
        module.keep_heads(sorted(kept))


def prune_heads(model: nn.Module, example_inputs: Inputs, *, keep: dict[str, float], importance: str = "l1"
                ) -> dict[str, tuple[int, int]]:
    """Keep ``round(heads * keep[name])`` heads (at least one) of each named attention module, the
    most important by weight norm ("l2" uses the L2 norm; "l1" and "taylor" the L1 norm).
    Names that are not attention modules of the model (say, of a dropped block) are skipped.
    Returns {name: (heads before, heads after)} for the modules that changed."""
    found = find_heads(model, example_inputs) if keep else {}
    changed = {}
    for name, fraction in keep.items():
        if name not in found:
            continue
        before = found[name].heads
        kept = max(1, round(before * fraction))
        if kept >= before:
            continue
        scores = head_scores(model, found[name], p=2 if importance == "l2" else 1)
        keep_heads(model, found[name], torch.argsort(scores, descending=True)[:kept].tolist())
        changed[name] = (before, kept)
    return changed
