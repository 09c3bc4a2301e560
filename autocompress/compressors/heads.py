"""Attention-head pruning: whole heads are removed from a ``SelfAttention`` module.

``SelfAttention`` (in ``autocompress.modules``, where users import it from) is four plain
Linear layers q, k, v, out; head h owns rows ``h*head_dim:(h+1)*head_dim`` of q, k and v and
the same columns of out. Channel-wise pruning (Torch-Pruning) must never touch q/k/v outputs,
because a channel removed from one head but not its partners breaks the head's shape; it
prunes whole heads here instead, ranked by the L1 (or L2) norm of each head's weights.

Example:
    >>> import torch
    >>> from torch import nn
    >>> attn = SelfAttention(dim=8, num_heads=4)
    >>> net = nn.Sequential(attn)
    >>> prune_heads(net, keep={"0": 0.5})
    {'0': (4, 2)}
    >>> attn.num_heads, attn.q.out_features, attn.out.in_features, net(torch.randn(1, 3, 8)).shape
    (2, 4, 4, torch.Size([1, 3, 8]))
"""

from __future__ import annotations

import torch
from torch import nn

from autocompress.modules import SelfAttention, attention_modules

__all__ = ["SelfAttention", "head_scores", "keep_heads", "prune_heads"]


def head_scores(attn: SelfAttention, *, p: int = 1) -> torch.Tensor:
    """One importance per head: the Lp norm of its rows of q, k, v and its columns of out."""
    rows = lambda w: w.detach().reshape(attn.num_heads, attn.head_dim, -1)  # noqa: E731
    parts = [rows(layer.weight).abs().pow(p).flatten(1).sum(1) for layer in (attn.q, attn.k, attn.v)]
    out = attn.out.weight.detach().reshape(attn.out.out_features, attn.num_heads, attn.head_dim)
    parts.append(out.abs().pow(p).transpose(0, 1).flatten(1).sum(1))
    return torch.stack(parts).sum(0)


def _sliced(layer: nn.Linear, index: torch.Tensor, *, dim: int) -> nn.Linear:
    weight = layer.weight.detach().index_select(dim, index)
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=layer.bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if layer.bias is not None:
            new.bias.copy_(layer.bias.detach() if dim == 1 else layer.bias.detach()[index])
    return new


@torch.no_grad()
def keep_heads(attn: SelfAttention, heads: list[int]) -> None:
    """Keep only ``heads`` (indices) of ``attn``, in place."""
    index = torch.cat([torch.arange(h * attn.head_dim, (h + 1) * attn.head_dim) for h in sorted(heads)])
    attn.q, attn.k, attn.v = (_sliced(layer, index, dim=0) for layer in (attn.q, attn.k, attn.v))
    attn.out = _sliced(attn.out, index, dim=1)
    attn.num_heads = len(heads)


def prune_heads(model: nn.Module, *, keep: dict[str, float], importance: str = "l1") -> dict[str, tuple[int, int]]:
    """Keep ``round(heads * keep[name])`` heads (at least one) of each named SelfAttention, the
    most important by weight norm ("l2" uses the L2 norm; "l1" and "taylor" the L1 norm).
    Names that are not SelfAttention modules of the model (say, of a dropped block) are skipped.
    Returns {name: (heads before, heads after)} for the modules that changed."""
    modules = attention_modules(model)
    changed = {}
    for name, fraction in keep.items():
        if name not in modules:
            continue
        attn = modules[name]
        before = attn.num_heads
        kept = max(1, round(before * fraction))
        if kept >= before:
            continue
        scores = head_scores(attn, p=2 if importance == "l2" else 1)
        keep_heads(attn, torch.argsort(scores, descending=True)[:kept].tolist())
        changed[name] = (before, kept)
    return changed
