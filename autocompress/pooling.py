"""Adaptive average pooling the ONNX exporter refuses, as fixed averaging matrices.

``nn.AdaptiveAvgPool2d((7, 7))`` after a feature map that is not a multiple of 7 on each side
(torchvision's VGG or AlexNet on 32x32 images: a 1x1 map spread to 7x7) cannot be exported
("output size that are not factor of input size"). For a fixed input size the pooling is
linear along each spatial axis: output cell i averages input rows ``floor(i*H/h)`` to
``ceil((i+1)*H/h)``. ``MatrixAvgPool`` computes exactly that with one matrix per axis
(two MatMuls in the exported file), for the input size the example inputs give.

Example:
    >>> import torch
    >>> pool = nn.AdaptiveAvgPool2d((3, 2))
    >>> x = torch.randn(1, 4, 5, 7)
    >>> same = MatrixAvgPool(pool, x.shape[2:])
    >>> bool(torch.allclose(same(x), pool(x), atol=1e-6))
    True
"""

from __future__ import annotations

import math

import torch
from torch import nn

POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)


def averaging_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in): row i averages the inputs adaptive pooling gives output i.

    >>> averaging_matrix(3, 2).tolist()
    [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]
    """
    matrix = torch.zeros(size_out, size_in)
    for i in range(size_out):
        start, end = (i * size_in) // size_out, math.ceil((i + 1) * size_in / size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def output_sizes(pool: nn.Module, sizes_in: tuple[int, ...]) -> tuple[int, ...]:
    wanted = pool.output_size if isinstance(pool.output_size, (tuple, list)) else (pool.output_size,) * len(sizes_in)
    return tuple(size_in if out is None else int(out) for size_in, out in zip(sizes_in, wanted))


def exportable(pool: nn.Module, sizes_in: tuple[int, ...]) -> bool:
    """Whether torch's ONNX exporter takes this pooling at this input size (each output size a
    factor of its input size)."""
    return all(size_in % out == 0 for size_in, out in zip(sizes_in, output_sizes(pool, sizes_in)))


class MatrixAvgPool(nn.Module):
    """``pool`` (AdaptiveAvgPool1d/2d) for inputs of spatial size ``sizes_in``, as matrix products."""

    def __init__(self, pool: nn.Module, sizes_in):
        super().__init__()
        sizes_in = tuple(int(s) for s in sizes_in)
        if not isinstance(pool, POOLS) or len(sizes_in) not in (1, 2):
            raise ValueError(f"MatrixAvgPool takes AdaptiveAvgPool1d/2d and 1 or 2 sizes, got {type(pool).__name__}")
        self.sizes_in = sizes_in
        outs = output_sizes(pool, sizes_in)
        self.register_buffer("last", averaging_matrix(sizes_in[-1], outs[-1]).t().contiguous())
        self.register_buffer("first", averaging_matrix(sizes_in[0], outs[0]) if len(sizes_in) == 2 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.sizes_in:
            raise ValueError(f"this pooling was fixed for inputs of size {self.sizes_in}, got {tuple(x.shape[2:])}")
        x = x @ self.last
        return x if self.first is None else self.first @ x
