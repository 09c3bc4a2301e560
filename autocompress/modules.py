"""Building blocks for users' own models; this module imports only torch.

``SelfAttention`` is multi-head self-attention written with four plain Linear layers (q, k, v,
out), so every technique sees ordinary Linear layers (bit-widths, low-rank) while the heads
stay visible: head h owns rows ``h*head_dim:(h+1)*head_dim`` of q, k and v and the same columns
of out. Build a transformer with it and autocompress prunes its heads whole
(``autocompress.compressors.heads``), never channel by channel.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(SelfAttention(dim=8, num_heads=2))
    >>> net(torch.randn(1, 3, 8)).shape, projection_names(net)
    (torch.Size([1, 3, 8]), ['0.q', '0.k', '0.v'])
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention over (batch, tokens, dim) with explicit q, k, v, out Linears."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}; choose a divisor")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``bias`` (broadcast to batch, heads, tokens, tokens) is added to the attention scores,
        e.g. a large negative number for padding keys."""
        batch, tokens, _ = x.shape
        split = lambda t: t.reshape(batch, tokens, -1, self.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        weights = torch.softmax(scores if bias is None else scores + bias, dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(batch, tokens, -1))


def attention_modules(model: nn.Module) -> dict[str, SelfAttention]:
    """The SelfAttention modules of ``model`` by name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SelfAttention)}


def projection_names(model: nn.Module) -> list[str]:
    """Names of the q, k, v layers: their outputs are heads, never pruned channel by channel."""
    return [f"{name}.{p}" if name else p for name in attention_modules(model) for p in ("q", "k", "v")]
