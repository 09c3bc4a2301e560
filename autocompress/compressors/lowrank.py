"""Low-rank factorization by truncated SVD.

Linear(in, out) becomes Linear(in, r, no bias) -> Linear(r, out); Conv kxk (in -> out) becomes
a kxk conv with r outputs -> a 1x1 conv to out (carrying the bias and the original stride,
padding and dilation on the first). With W = U S V^T, the factors are sqrt(S) V^T and U sqrt(S):
the best rank-r approximation (Eckart-Young). A layer where rank r would not save parameters
is left alone and the reason is returned.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(64, 64))
    >>> factorize(net, {"0": 0.25})
    {}
    >>> [tuple(m.weight.shape) for m in net[0]]
    [(16, 64), (64, 16)]
"""

from __future__ import annotations

import torch
from torch import nn

from autocompress.spaces.layers import COMPRESSIBLE_TYPES, CONV_TYPES, factorized_params, rank_for


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


def factorize(model: nn.Module, ratios: dict[str, float], *, svd: bool = True) -> dict[str, str]:
    """Factorize the named layers in place at the given rank ratios; returns {layer: why skipped}.
    ``svd=False`` builds the factorized structure with zero weights (no SVD: a check that the
    model runs that way, in a fraction of the time)."""
    skipped = {}
    modules = dict(model.named_modules())
    for name, ratio in ratios.items():
        layer = modules.get(name)
        if not isinstance(layer, COMPRESSIBLE_TYPES):
            continue  # dropped with its block
        shape = tuple(layer.weight.shape)
        rank = rank_for(shape, ratio)
        if isinstance(layer, CONV_TYPES) and layer.groups != 1:
            skipped[name] = "grouped convolution"
        elif factorized_params(shape, rank) >= layer.weight.numel():
            skipped[name] = f"rank {rank} would not save parameters at shape {shape}"
        else:
            model.set_submodule(name, factorize_layer(layer, rank, svd=svd))
    return skipped
