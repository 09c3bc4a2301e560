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
    >>> net(torch.randn(1, 3, 8)).shape
    torch.Size([1, 3, 8])
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def attention_fast_path_off():
    """Within this block nn.MultiheadAttention (and nn.TransformerEncoderLayer) run their plain
    Python path: their eval-mode fast path (``aten::_native_multi_head_attention``) cannot be
    exported to ONNX, and the plain path is what the exported file computes."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


class MultiheadAttention(SelfAttention):
    """``nn.MultiheadAttention`` with its fused input projection split into q, k, v Linear layers
    (and out): the same outputs, called the same way, so each technique sees plain Linear layers
    and its heads can be pruned whole. ``canonical.explicit_layers`` puts one in place of each
    nn.MultiheadAttention of a teacher. ``in_proj_weight`` is None: modules that look at it
    (nn.TransformerEncoderLayer) take their plain path, the one that calls this module.

    >>> torch.manual_seed(0) and None
    >>> fused = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    >>> x = torch.randn(1, 3, 8)
    >>> with attention_fast_path_off():
    ...     expected = fused(x, x, x)[0]
    >>> bool(torch.allclose(MultiheadAttention(fused)(x, x, x)[0], expected, atol=1e-6))
    True
    """

    def __init__(self, fused: nn.MultiheadAttention):
        nn.Module.__init__(self)
        dim, heads = fused.embed_dim, fused.num_heads
        self.num_heads, self.head_dim, self.batch_first = heads, dim // heads, fused.batch_first
        self.dropout = fused.dropout
        self.in_proj_weight = self.in_proj_bias = None
        self._qkv_same_embed_dim = False
        bias = fused.in_proj_bias is not None
        self.q, self.k, self.v = (nn.Linear(d, dim, bias=bias) for d in (dim, fused.kdim, fused.vdim))
        self.out = nn.Linear(dim, dim, bias=fused.out_proj.bias is not None)
        with torch.no_grad():
            weights = fused.in_proj_weight.chunk(3) if fused._qkv_same_embed_dim else (
                fused.q_proj_weight, fused.k_proj_weight, fused.v_proj_weight)
            for layer, weight, part in zip((self.q, self.k, self.v), weights, range(3)):
                layer.weight.copy_(weight)
                if bias:
                    layer.bias.copy_(fused.in_proj_bias.chunk(3)[part])
            self.out.weight.copy_(fused.out_proj.weight)
            if fused.out_proj.bias is not None:
                self.out.bias.copy_(fused.out_proj.bias)

    @staticmethod
    def converts(module: nn.Module) -> bool:
        """Whether ``module`` is an nn.MultiheadAttention this class reproduces (not one with
        bias_k/bias_v or add_zero_attn)."""
        return (isinstance(module, nn.MultiheadAttention) and module.bias_k is None and module.bias_v is None
                and not module.add_zero_attn)

    def _mask(self, mask: torch.Tensor | None, scores: torch.Tensor) -> torch.Tensor:
        if mask is None:
            return scores
        if mask.dtype == torch.bool:
            return scores.masked_fill(mask, float("-inf"))
        return scores + mask

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        batch, length, sources = query.shape[0], query.shape[1], key.shape[1]
        split = lambda t, n: t.reshape(batch, n, -1, self.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(query), length), split(self.k(key), sources), split(self.v(value), sources)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(length, sources, dtype=torch.bool, device=scores.device).triu(1)
        if attn_mask is not None and attn_mask.dim() == 3:  # (batch x heads, L, S)
            attn_mask = attn_mask.reshape(batch, -1, length, sources)
        scores = self._mask(attn_mask, scores)
        if key_padding_mask is not None:
            scores = self._mask(key_padding_mask[:, None, None, :], scores)
        weights = torch.softmax(scores, dim=-1)
        weights = nn.functional.dropout(weights, self.dropout, self.training)
        out = self.out((weights @ v).transpose(1, 2).reshape(batch, length, -1))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, weights.mean(1) if average_attn_weights else weights
