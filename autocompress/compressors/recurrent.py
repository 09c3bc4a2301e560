"""Recurrent layers (nn.LSTM, nn.GRU, nn.RNN) quantized by their weights.

A recurrent layer's input-to-hidden and hidden-to-hidden weights (``weight_ih_l*``,
``weight_hh_l*``; both directions) are fake-quantized per row, symmetric at 8/4/2 bits, while
it fine-tunes (``FakeQuantRecurrent``: gradients pass straight through the rounding); its biases
and activations stay float. Frozen, the weights hold the dequantized integers, and the exporter
stores them as integers with a per-row DequantizeLinear in front of the ONNX LSTM/GRU/RNN node
(``evaluators.recurrent_export``): the file holds 1/4 (int8) to 1/16 (int2) of the float bytes
and ONNX Runtime dequantizes them once per run, a small cost beside the recurrence.

Example:
    >>> import torch
    >>> from torch import nn

from autocompress.spaces.layers import RECURRENT_TYPES

__all__ = ["RECURRENT_TYPES", "FakeQuantRecurrent", "freeze_recurrent", "row_quantized", "weight_names"]
    >>> lstm = nn.LSTM(4, 6, batch_first=True)
    >>> wrapped = FakeQuantRecurrent(lstm, 4)
    >>> out, _ = wrapped(torch.randn(2, 3, 4))
    >>> out.shape, sorted(freeze_recurrent(wrapped))
    (torch.Size([2, 3, 6]), ['weight_hh_l0', 'weight_ih_l0'])
    >>> rows = lstm.weight_ih_l0 / (lstm.weight_ih_l0.abs().amax(1, keepdim=True) / 7)
    >>> bool(torch.allclose(rows, rows.round(), atol=1e-4))   # every row on its 4-bit grid
    True
"""

from __future__ import annotations

import torch
from torch import nn

from autocompress.spaces.layers import RECURRENT_TYPES

__all__ = ["RECURRENT_TYPES", "FakeQuantRecurrent", "freeze_recurrent", "row_quantized", "weight_names"]



def row_quantized(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(integers, per-row scale) of a 2-D weight, symmetric at ``bits``."""
    qmax = 2 ** (bits - 1) - 1
    scale = (weight.detach().abs().amax(dim=1, keepdim=True) / qmax).clamp_min(1e-8)
    return torch.clamp(torch.round(weight.detach() / scale), -qmax - 1, qmax), scale


def weight_names(rnn: nn.RNNBase) -> list[str]:
    return [name for name in rnn._flat_weights_names if name.startswith("weight_")]


class FakeQuantRecurrent(nn.Module):
    """An nn.LSTM/GRU/RNN whose weights are fake-quantized per row while it runs (see the
    module docstring); called like the layer it wraps, returning what it returns."""

    def __init__(self, layer: nn.RNNBase, bits: int):
        super().__init__()
        self.layer, self.bits, self.frozen = layer, bits, False
        self.enabled = True  # False: float fine-tuning (``quantize.set_fake_quant``)

    def _fake_quantized(self, weight: torch.Tensor) -> torch.Tensor:
        integers, scale = row_quantized(weight, self.bits)
        return weight + (integers * scale - weight).detach()

    def forward(self, *args, **kwargs):
        if self.frozen or not self.enabled:
            return self.layer(*args, **kwargs)
        saved = list(self.layer._flat_weights)
        names = self.layer._flat_weights_names
        self.layer._flat_weights = [self._fake_quantized(w) if name.startswith("weight_") else w
                                    for name, w in zip(names, saved)]
        try:
            return self.layer(*args, **kwargs)
        finally:
            self.layer._flat_weights = saved


@torch.no_grad()
def freeze_recurrent(module: FakeQuantRecurrent) -> dict[str, int]:
    """Put the dequantized integers into the wrapped layer's weights, in place; returns
    {weight name: bits} of the weights quantized."""
    for name in weight_names(module.layer):
        weight = getattr(module.layer, name)
        integers, scale = row_quantized(weight, module.bits)
        weight.copy_(integers * scale)
    module.frozen = True
    return {name: module.bits for name in weight_names(module.layer)}
