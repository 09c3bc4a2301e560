"""Low-rank factorization: truncated SVD, and Tucker-2 for convolutions.

SVD: Linear(in, out) becomes Linear(in, r, no bias) -> Linear(r, out); Conv kxk (in -> out)
becomes a kxk conv with r outputs -> a 1x1 conv to out (carrying the bias and the original
stride, padding and dilation on the first). With W = U S V^T, the factors are sqrt(S) V^T and
U sqrt(S): the best rank-r approximation (Eckart-Young).

Tucker-2 (a convolution with a kernel larger than 1): Conv kxk (in -> out) becomes a 1x1 conv
(in -> r_in) -> the kxk core (r_in -> r_out, with the original stride, padding and dilation) ->
a 1x1 conv (r_out -> out, with the bias); r_in and r_out are the ratio of in and out. The
factors are the leading singular vectors of the weight unfolded along its input and output
channels (HOSVD), refined by a few alternating passes (HOOI); the core is the weight projected
onto them. At the same ratio it mostly stores fewer weights than the SVD (its core keeps the
kernel, on fewer channels at both ends; not where the input channels outnumber the output
channels x the kernel: ``spaces.layers.tucker_params``).

A layer where the factors would not save parameters is left alone and the reason is returned.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(64, 64))
    >>> factorize(net, {"0": 0.25})
    {}
    >>> [tuple(m.weight.shape) for m in net[0]]
    [(16, 64), (64, 16)]
    >>> convs = nn.Sequential(nn.Conv2d(32, 64, 3))
    >>> factorize(convs, {"0": 0.5}, tucker={"0"})
    {}
    >>> [tuple(m.weight.shape) for m in convs[0]]
    [(16, 32, 1, 1), (32, 16, 3, 3), (64, 32, 1, 1)]
"""

from __future__ import annotations

from typing import Collection

import torch
from torch import nn

from autocompress.spaces.layers import (COMPRESSIBLE_TYPES, CONV_TYPES, factorized_params, rank_for, tucker_params,
                                        tucker_ranks)

HOOI_PASSES = 2  # alternating refinements of the Tucker-2 factors after the HOSVD (each: two SVDs)


def _factors(weight: torch.Tensor, rank: int, *, svd: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    matrix = weight.reshape(weight.shape[0], -1)
    if not svd:  # the shapes alone: a check that the model runs factorized needs no values
        return matrix.new_zeros(matrix.shape[0], rank), matrix.new_zeros(rank, matrix.shape[1])
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]


def factorize_layer(layer: nn.Module, rank: int, *, svd: bool = True) -> nn.Sequential:
    """The two-layer replacement of a Conv1d, Conv2d or Linear at ``rank`` (``svd=False``: its
    structure only, with zero weights)."""
    with torch.no_grad():
        left, right = _factors(layer.weight, rank, svd=svd)
        bias = layer.bias is not None
        if isinstance(layer, nn.Linear):
            first, second = nn.Linear(layer.in_features, rank, bias=False), nn.Linear(rank, layer.out_features, bias)
            first.weight.copy_(right)
            second.weight.copy_(left)
        else:
            conv = type(layer)
            first = conv(layer.in_channels, rank, layer.kernel_size, layer.stride, layer.padding,
                         layer.dilation, bias=False, padding_mode=layer.padding_mode)
            second = conv(rank, layer.out_channels, 1, bias=bias)
            first.weight.copy_(right.reshape(rank, *layer.weight.shape[1:]))
            second.weight.copy_(left.reshape(*left.shape, *[1] * (layer.weight.dim() - 2)))
        if bias:
            second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


def _leading(matrix: torch.Tensor, count: int) -> torch.Tensor:
    return torch.linalg.svd(matrix, full_matrices=False)[0][:, :count]


def tucker_factors(weight: torch.Tensor, inner: int, outer: int, *, values: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input factor (in, inner), core (outer, inner, *kernel), output factor (out, outer)) with
    weight[o, i] ~= sum over r, s of output[o, r] core[r, s] input[i, s] (``values=False``: zeros
    of those shapes)."""
    out_channels, in_channels, kernel = weight.shape[0], weight.shape[1], weight.shape[2:]
    inner, outer = min(inner, in_channels), min(outer, out_channels)
    if not values:
        return (weight.new_zeros(in_channels, inner), weight.new_zeros(outer, inner, *kernel),
                weight.new_zeros(out_channels, outer))
    by_input = lambda w: w.transpose(0, 1).reshape(w.shape[1], -1)  # noqa: E731
    u_in = _leading(by_input(weight), inner)
    u_out = _leading(weight.reshape(out_channels, -1), outer)
    for _ in range(HOOI_PASSES):
        u_out = _leading(torch.einsum("oi...,is->os...", weight, u_in).reshape(out_channels, -1), outer)
        u_in = _leading(by_input(torch.einsum("oi...,or->ri...", weight, u_out)), inner)
    return u_in, torch.einsum("oi...,or,is->rs...", weight, u_out, u_in), u_out


def tucker_layer(conv: nn.Module, ratio: float, *, values: bool = True) -> nn.Sequential:
    """The three-convolution replacement of a Conv1d or Conv2d at ``ratio`` (see the module docstring)."""
    with torch.no_grad():
        first, core, last = tucker_factors(conv.weight, *tucker_ranks(tuple(conv.weight.shape), ratio), values=values)
        make, ones = type(conv), [1] * (conv.weight.dim() - 2)
        layers = nn.Sequential(
            make(conv.in_channels, first.shape[1], 1, bias=False),
            make(first.shape[1], core.shape[0], conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                 bias=False, padding_mode=conv.padding_mode),
            make(core.shape[0], conv.out_channels, 1, bias=conv.bias is not None))
        layers[0].weight.copy_(first.T.reshape(*first.T.shape, *ones))
        layers[1].weight.copy_(core)
        layers[2].weight.copy_(last.reshape(*last.shape, *ones))
        if conv.bias is not None:
            layers[2].bias.copy_(conv.bias)
    return layers


def factorize(model: nn.Module, ratios: dict[str, float], *, tucker: Collection[str] = (),
              svd: bool = True) -> dict[str, str]:
    """Factorize the named layers in place at the given rank ratios, those in ``tucker`` by
    Tucker-2, the others by SVD; returns {layer: why skipped}. ``svd=False`` builds the
    factorized structure with zero weights (no decomposition: a check that the model runs that
    way, in a fraction of the time)."""
    skipped = {}
    modules = dict(model.named_modules())
    for name, ratio in ratios.items():
        layer = modules.get(name)
        if not isinstance(layer, COMPRESSIBLE_TYPES):
            continue  # dropped with its block
        shape = tuple(layer.weight.shape)
        by_tucker = name in tucker
        kept = tucker_params(shape, ratio) if by_tucker else factorized_params(shape, rank_for(shape, ratio))
        if isinstance(layer, CONV_TYPES) and layer.groups != 1:
            skipped[name] = "grouped convolution"
        elif by_tucker and (not isinstance(layer, CONV_TYPES) or len(shape) < 3):
            skipped[name] = "Tucker-2 decomposes convolutions only"
        elif kept >= layer.weight.numel():
            how = f"Tucker-2 at {ratio:g}" if by_tucker else f"rank {rank_for(shape, ratio)}"
            skipped[name] = f"{how} would not save parameters at shape {shape}"
        elif by_tucker:
            model.set_submodule(name, tucker_layer(layer, ratio, values=svd))
        else:
            model.set_submodule(name, factorize_layer(layer, rank_for(shape, ratio), svd=svd))
    return skipped
