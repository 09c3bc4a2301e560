"""Shifted-window attention (Swin) with its projections called as Linear layers.

torchvision's ``ShiftedWindowAttention`` (and ``ShiftedWindowAttentionV2``) hand their fused
``qkv`` and ``proj`` weights to a function that multiplies by them directly, so a quantized or
factorized layer put in their place is never called. ``WindowAttention`` computes the same thing
(pad to whole windows, roll by the shift, attend within each window with the relative position
bias and, when shifted, a mask between regions that were not neighbours, roll back, crop) with
q, k, v and proj as Linear modules called on the tokens: every technique reaches them, and the
heads are visible (``spaces.attention``) and pruned whole, their position bias with them
(``keep_heads``). ``canonical.explicit_layers`` puts one in place of
each such module, checked to give the same outputs. The original module stays inside it, without
its projections, for its relative position bias (and V2's logit scale).

Example:
    >>> import torch
    >>> from torchvision.models.swin_transformer import ShiftedWindowAttention   # doctest: +SKIP
    >>> original = ShiftedWindowAttention(8, [4, 4], [2, 2], num_heads=2).eval()  # doctest: +SKIP
    >>> x = torch.randn(1, 6, 6, 8)                                                  # doctest: +SKIP
    >>> expected = original(x)                                                       # doctest: +SKIP
    >>> bool(torch.allclose(WindowAttention(original)(x), expected, atol=1e-5))      # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

MASKED = -100.0  # added to the scores between tokens of regions that were not neighbours before the roll


def is_window_attention(module: nn.Module) -> bool:
    """torchvision's shifted-window attention (V1 or V2), by its class name and parts."""
    return (type(module).__name__ in ("ShiftedWindowAttention", "ShiftedWindowAttentionV2")
            and isinstance(getattr(module, "qkv", None), nn.Linear) and isinstance(getattr(module, "proj", None), nn.Linear)
            and callable(getattr(module, "get_relative_position_bias", None)))


def _split(qkv: nn.Linear, part: int, *, bias: bool) -> nn.Linear:
    dim = qkv.out_features // 3
    layer = nn.Linear(qkv.in_features, dim, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(qkv.weight[part * dim:(part + 1) * dim])
        if bias:
            layer.bias.copy_(qkv.bias[part * dim:(part + 1) * dim])
    return layer


def _region_ids(height: int, width: int, window: list[int], shift: list[int]) -> torch.Tensor:
    """Which of the 3 x 3 regions (by the last window and the shift) each position is in."""
    ids = torch.zeros(height, width)
    bands = [(slice(0, -w), slice(-w, -s), slice(-s, None)) for w, s in zip(window, shift)]
    for i, rows in enumerate(bands[0]):
        for j, columns in enumerate(bands[1]):
            ids[rows, columns] = 3 * i + j
    return ids


class WindowAttention(nn.Module):
    """See the module docstring; takes (batch, height, width, channels) and returns the same."""

    def __init__(self, original: nn.Module):
        super().__init__()
        original = copy.deepcopy(original)  # the one given stays whole (a rewrite may be undone)
        cosine = getattr(original, "logit_scale", None) is not None
        has_bias = original.qkv.bias is not None
        self.q, self.v = _split(original.qkv, 0, bias=has_bias), _split(original.qkv, 2, bias=has_bias)
        self.k = _split(original.qkv, 1, bias=has_bias and not cosine)  # V2 never adds k's bias
        self.proj = original.proj
        self.num_heads, self.head_dim = original.num_heads, original.qkv.out_features // 3 // original.num_heads
        self.window_size, self.shift_size = list(original.window_size), list(original.shift_size)
        self.attention_dropout, self.dropout, self.cosine = original.attention_dropout, original.dropout, cosine
        del original.qkv, original.proj
        self.position = original  # its relative position bias (and V2's logit scale): no projections left

    @torch.no_grad()
    def keep_heads(self, kept: list[int]) -> None:
        """The per-head parts of the position bias follow the heads kept (``compressors.heads``
        slices q, k, v and proj): V1's bias table columns, V2's position MLP outputs and logit scales."""
        index, position = torch.tensor(kept), self.position
        position.num_heads = len(kept)
        table = getattr(position, "relative_position_bias_table", None)
        if isinstance(table, nn.Parameter):
            position.relative_position_bias_table = nn.Parameter(table.index_select(1, index).clone())
        mlp = getattr(position, "cpb_mlp", None)
        if isinstance(mlp, nn.Sequential) and isinstance(mlp[-1], nn.Linear):
            last = mlp[-1]
            mlp[-1] = nn.Linear(last.in_features, len(kept), bias=last.bias is not None)
            mlp[-1].weight.copy_(last.weight.index_select(0, index))
            if last.bias is not None:
                mlp[-1].bias.copy_(last.bias.index_select(0, index))
        if isinstance(getattr(position, "logit_scale", None), nn.Parameter):
            position.logit_scale = nn.Parameter(position.logit_scale.index_select(0, index).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        (wh, ww), ((pad_h, pad_w)) = self.window_size, ((-height) % self.window_size[0], (-width) % self.window_size[1])
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        full_h, full_w = height + pad_h, width + pad_w
        shift = [s if w < n else 0 for s, w, n in zip(self.shift_size, self.window_size, (full_h, full_w))]
        if any(shift):
            x = torch.roll(x, (-shift[0], -shift[1]), (1, 2))
        windows = x.view(batch, full_h // wh, wh, full_w // ww, ww, channels).permute(0, 1, 3, 2, 4, 5)
        out = self._attend(windows.reshape(-1, wh * ww, channels), shift, full_h, full_w)
        out = out.view(batch, full_h // wh, full_w // ww, wh, ww, -1).permute(0, 1, 3, 2, 4, 5)
        out = out.reshape(batch, full_h, full_w, -1)
        if any(shift):
            out = torch.roll(out, (shift[0], shift[1]), (1, 2))
        return out[:, :height, :width].contiguous()

    def _attend(self, tokens: torch.Tensor, shift: list[int], full_h: int, full_w: int) -> torch.Tensor:
        count, length, _ = tokens.shape
        split = lambda t: t.reshape(count, length, -1, self.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(tokens)), split(self.k(tokens)), split(self.v(tokens))
        if self.cosine:
            scale = torch.clamp(self.position.logit_scale, max=math.log(100.0)).exp()
            scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * scale
        else:
            scores = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)
        scores = scores + self.position.get_relative_position_bias()
        if any(shift):
            scores = scores + self._mask(shift, full_h, full_w, tokens).view(-1, 1, length, length).repeat(
                count // ((full_h // self.window_size[0]) * (full_w // self.window_size[1])), 1, 1, 1)
        weights = F.dropout(torch.softmax(scores, dim=-1), p=self.attention_dropout, training=self.training)
        out = self.proj((weights @ v).transpose(1, 2).reshape(count, length, -1))
        return F.dropout(out, p=self.dropout, training=self.training)

    def _mask(self, shift: list[int], full_h: int, full_w: int, like: torch.Tensor) -> torch.Tensor:
        (wh, ww) = self.window_size
        ids = _region_ids(full_h, full_w, self.window_size, shift).to(like)
        ids = ids.view(full_h // wh, wh, full_w // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
        return (ids[:, None, :] != ids[:, :, None]).to(like) * MASKED
