"""Quantization-aware fine-tuning: weights symmetric per-channel at 2/4/8 bits, activations uint8.

A quantized layer is wrapped in ``FakeQuantLayer``: its input and output are fake-quantized to
uint8 with ranges observed during calibration and fine-tuning (running min/max), its weight is
fake-quantized per output channel (scale = max|w| / (2^(b-1) - 1)) and its bias to int32 at
scale input_scale x weight_scale, exactly as the exported ONNX graph will compute it. Gradients
pass straight through the rounding. ``freeze`` turns the wrappers back into plain layers whose
float weights are the dequantized integers, and returns the integers for the exporter.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> prepare_qat(net, {"0": 4})
    ['0']
    >>> calibrate(net, [torch.randn(16, 4)])
    >>> plain, specs = freeze(net)
    >>> specs["0.weight"].bits, int(specs["0.weight"].weight.abs().max()) <= 7
    (4, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn

ACT_QMIN, ACT_QMAX = 0, 255  # activations: asymmetric uint8


def weight_qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """uint8 scale and zero point covering [lo, hi] (which always includes 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / (ACT_QMAX - ACT_QMIN), 1e-8)
    zero_point = int(np.clip(round(-lo / scale), ACT_QMIN, ACT_QMAX))
    return float(np.float32(scale)), zero_point


@dataclass(frozen=True)
class QuantSpec:
    """What the exporter needs for one quantized layer (keyed by its weight's name)."""

    bits: int
    weight: torch.Tensor  # integer values, same shape as the float weight
    weight_scale: torch.Tensor  # per output channel
    input_qparams: tuple[float, int]
    output_qparams: tuple[float, int]


class FakeQuantLayer(nn.Module):
    """A Conv2d or Linear whose weight, bias, input and output are fake-quantized."""

    def __init__(self, layer: nn.Module, bits: int, momentum: float = 0.05):
        super().__init__()
        self.layer, self.bits, self.momentum = layer, bits, momentum
        self.register_buffer("input_range", torch.zeros(2))
        self.register_buffer("output_range", torch.zeros(2))
        self.register_buffer("observed", torch.zeros((), dtype=torch.bool))
        self.observing = False  # calibration: widen the ranges, do not quantize

    def weight_scale(self) -> torch.Tensor:
        w = self.layer.weight.detach()
        amax = w.abs().reshape(w.shape[0], -1).amax(dim=1)
        return (amax / weight_qmax(self.bits)).clamp_min(1e-8).float()

    def quantized_weight(self) -> torch.Tensor:
        return torch.round(self.layer.weight.detach() / self._per_channel(self.weight_scale()))

    def _per_channel(self, scale: torch.Tensor) -> torch.Tensor:
        return scale.reshape(-1, *([1] * (self.layer.weight.dim() - 1)))

    def _observe(self, buffer: torch.Tensor, x: torch.Tensor) -> None:
        lo, hi = x.detach().min().clamp_max(0), x.detach().max().clamp_min(0)
        if self.observing or not bool(self.observed):
            buffer[0] = torch.minimum(buffer[0], lo) if bool(self.observed) else lo
            buffer[1] = torch.maximum(buffer[1], hi) if bool(self.observed) else hi
        else:
            buffer.mul_(1 - self.momentum).add_(torch.stack([lo, hi]) * self.momentum)

    def _fake_quant_activation(self, x: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
        scale, zero_point = activation_qparams(float(buffer[0]), float(buffer[1]))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, ACT_QMIN, ACT_QMAX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self._observe(self.input_range, x)
            y = self.layer(x)
            self._observe(self.output_range, y)
            return y
        if self.training:
            self._observe(self.input_range, x)
        x = self._fake_quant_activation(x, self.input_range)
        scale = self.weight_scale()
        qmax = weight_qmax(self.bits)
        weight = torch.fake_quantize_per_channel_affine(
            self.layer.weight, scale, torch.zeros_like(scale, dtype=torch.int32), 0, -qmax - 1, qmax)
        bias = self.layer.bias
        if bias is not None:  # int32 at input_scale * weight_scale, as ONNX Runtime computes it
            bias_scale = scale * activation_qparams(float(self.input_range[0]), float(self.input_range[1]))[0]
            bias = bias + (torch.round(bias.detach() / bias_scale) * bias_scale - bias.detach())
        if isinstance(self.layer, nn.Conv2d):
            y = self.layer._conv_forward(x, weight, bias)
        else:
            y = nn.functional.linear(x, weight, bias)
        if self.training:
            self._observe(self.output_range, y)
        return self._fake_quant_activation(y, self.output_range)


def prepare_qat(model: nn.Module, bits: dict[str, int]) -> list[str]:
    """Wrap the named layers (or both factors of a factorized layer) in place."""
    modules = dict(model.named_modules())
    wrapped = []
    for name, b in bits.items():
        module = modules.get(name)
        targets = [name] if isinstance(module, (nn.Conv2d, nn.Linear)) else (
            [f"{name}.{i}" for i in range(len(module))] if isinstance(module, nn.Sequential) else [])
        for target in targets:
            model.set_submodule(target, FakeQuantLayer(modules[target], b))
            wrapped.append(target)
    return wrapped


def fake_quant_layers(model: nn.Module) -> list[FakeQuantLayer]:
    return [m for m in model.modules() if isinstance(m, FakeQuantLayer)]


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Observe activation ranges on a few batches (min/max), before fine-tuning."""
    layers = fake_quant_layers(model)
    if not layers:
        return
    model.eval()
    for layer in layers:
        layer.observing = True
    for x in batches:
        model(x)
    for layer in layers:
        layer.observing = False
        layer.observed.fill_(True)


@torch.no_grad()
def freeze(model: nn.Module) -> tuple[nn.Module, dict[str, QuantSpec]]:
    """Replace every FakeQuantLayer by its plain layer holding the dequantized weights."""
    specs = {}
    for name, module in list(model.named_modules()):
        if not isinstance(module, FakeQuantLayer):
            continue
        layer, scale = module.layer, module.weight_scale()
        integers = module.quantized_weight()
        input_qparams = activation_qparams(float(module.input_range[0]), float(module.input_range[1]))
        layer.weight.copy_(integers * module._per_channel(scale))
        if layer.bias is not None:
            bias_scale = scale * input_qparams[0]
            layer.bias.copy_(torch.round(layer.bias / bias_scale) * bias_scale)
        output_qparams = activation_qparams(float(module.output_range[0]), float(module.output_range[1]))
        specs[f"{name}.weight"] = QuantSpec(module.bits, integers.to(torch.int8), scale, input_qparams, output_qparams)
        model.set_submodule(name, layer)
    return model.eval(), specs
