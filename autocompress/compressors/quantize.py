"""Quantization-aware fine-tuning: weights symmetric per-channel at 2/4/8 bits, activations uint8
(an 8-bit weight on int8 kernels keeps 7 bits of range: ``INT8_KERNEL_QMAX``).

An embedding table is quantized by weight alone, per row (``FakeQuantEmbedding``): a row is
one token's vector, its scale is max|row| / (2^(b-1) - 1), and the rows looked up are
dequantized after the lookup (what the exporter writes: a Gather of the integers and of the
scales, then a Mul), so a lookup reads a few rows of integers, never the whole float table.

A quantized layer is wrapped in ``FakeQuantLayer``: its weight is fake-quantized per output
channel (scale = max|w| / (2^(b-1) - 1), at most 63 on int8 kernels), its bias to int32 at
input_scale x weight_scale, and the tensors around it to uint8 (``ActivationQuant``, ranges
observed by min/max in calibration and a running average in fine-tuning). Gradients pass straight
through the rounding.

One tensor, one set of qparams, quantized once where it is produced: ``calibrate`` first
traces one batch and places each quantized layer's input quantizer as far up as the values
stay on the uint8 grid -- through ReLU (the quantizer then has zero point 0, so the ReLU
is a no-op ONNX Runtime drops), max-pooling and reshapes -- onto the output of the quantized
layer or module that produced it. Every consumer then sees the same quantized tensor: in
``conv1 -> relu -> conv2`` the Q/DQ after the ReLU is conv1's output and conv2's input, so
ONNX Runtime runs QLinearConv -> QLinearConv; a residual block's output is quantized once
and feeds the next block's conv and its shortcut, so the Add runs as QLinearAdd. A Conv2d
whose output is quantized by nobody downstream gets its own output quantizer (QLinearConv
needs one). The exporter traces this very model, so the ONNX graph computes what it computes.

``freeze`` puts the dequantized integers into the float weights (the quantizers stay, to be
exported as QuantizeLinear/DequantizeLinear) and returns the integers for the exporter.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> prepare_qat(net, {"0": 4, "2": 8})
    ['0', '2']
    >>> calibrate(net, [torch.randn(16, 4)])
    >>> net[2].input_quant is net[0].output_quant   # the ReLU's output is quantized once, by layer 0
    True
    >>> frozen, specs = freeze(net)
    >>> specs["0.layer.weight"].bits, int(specs["0.layer.weight"].weight.abs().max()) <= 7
    (4, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn

from autocompress.compressors.placement import Placement, trace_dataflow
from autocompress.compressors.recurrent import RECURRENT_TYPES, FakeQuantRecurrent, freeze_recurrent, row_quantized
from autocompress.model_io import call
from autocompress.pause import pause_point

ACT_QMIN, ACT_QMAX = 0, 255  # activations: asymmetric uint8
# An 8-bit weight on ONNX Runtime's int8 kernels keeps 7 bits of range (ONNX Runtime's "reduce_range"):
# x86 CPUs with AVX2 but no VNNI add pairs of uint8 x int8 products in int16, which saturates for
# 2 x 255 x 127 but not 2 x 255 x 63 (an AVX2 EPYC: int8 digits logits 2.64 off, 0.02 unfused).
INT8_KERNEL_QMAX = 63


def weight_qmax(bits: int, *, int8_kernels: bool = False) -> int:
    """The largest integer a ``bits``-bit symmetric weight takes; on int8 kernels at most
    ``INT8_KERNEL_QMAX``.

    >>> weight_qmax(8), weight_qmax(8, int8_kernels=True), weight_qmax(4, int8_kernels=True)
    (127, 63, 7)
    """
    qmax = 2 ** (bits - 1) - 1
    return min(qmax, INT8_KERNEL_QMAX) if int8_kernels else qmax


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """uint8 scale and zero point covering [lo, hi] (which always includes 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / (ACT_QMAX - ACT_QMIN), 1e-8)
    zero_point = int(np.clip(round(-lo / scale), ACT_QMIN, ACT_QMAX))
    return float(np.float32(scale)), zero_point


@dataclass(frozen=True)
class QuantSpec:
    """What the exporter needs for one quantized layer (keyed by its weight's parameter name)."""

    bits: int
    weight: torch.Tensor  # integer values, same shape as the float weight
    weight_scale: torch.Tensor  # per output channel (an embedding: per row)
    input_qparams: tuple[float, int] | None  # None: weights alone (an embedding; a layer on float kernels)
    output_qparams: tuple[float, int] | None  # None: the layer's output stays float
    recurrent: bool = False  # a recurrent layer's weight: quantized alone, per row (``recurrent``)


class ActivationQuant(nn.Module):
    """uint8 fake quantization of one tensor. ``nonnegative``: the range starts at 0 (the tensor
    is quantized before a ReLU, which the zero point 0 makes a no-op). ``upper``: the range ends
    there at most (the tensor is quantized before a ReLU6, which the range then makes a no-op)."""

    def __init__(self, *, nonnegative: bool = False, upper: float | None = None, momentum: float = 0.05):
        super().__init__()
        self.nonnegative, self.upper, self.momentum = nonnegative, upper, momentum
        self.register_buffer("range", torch.zeros(2))
        self.register_buffer("observed", torch.zeros((), dtype=torch.bool))
        self.observing = False  # calibration: widen the range, do not quantize
        self.enabled = True  # False: float fine-tuning (``set_fake_quant``): neither observe nor quantize

    def qparams(self) -> tuple[float, int]:
        hi = float(self.range[1]) if self.upper is None else min(float(self.range[1]), self.upper)
        return activation_qparams(0.0 if self.nonnegative else float(self.range[0]), hi)

    def _observe(self, x: torch.Tensor) -> None:
        lo, hi = x.detach().min().clamp_max(0), x.detach().max().clamp_min(0)
        if self.observing or not bool(self.observed):  # widen (from [0, 0]: lo <= 0 <= hi)
            self.range[0] = torch.minimum(self.range[0], lo)
            self.range[1] = torch.maximum(self.range[1], hi)
            if not self.observing:
                self.observed.fill_(True)
        else:
            self.range.mul_(1 - self.momentum).add_(torch.stack([lo, hi]) * self.momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.observing or self.training:
            self._observe(x)
        if self.observing:
            return x
        scale, zero_point = self.qparams()
        if x.dtype != torch.float32:  # a bf16 activation under autocast (--amp) is quantized in fp32
            x = x.float()
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, ACT_QMIN, ACT_QMAX)


class OutputHook:
    """A forward hook quantizing a module's output (a block's output, a LayerNorm's ...)."""

    def __init__(self, quant: ActivationQuant):
        self.quant = quant

    def __call__(self, module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        return self.quant(output)


class FakeQuantLayer(nn.Module):
    """A Conv1d, Conv2d or Linear whose weight and bias are fake-quantized, and its input (unless it
    arrives quantized from upstream: ``quantize_input`` False) and output (if ``output_quant``).
    ``weights_only``: the weight alone (float kernels: the input, output and bias stay float)."""

    def __init__(self, layer: nn.Module, bits: int, *, weights_only: bool = False):
        super().__init__()
        self.layer, self.bits, self.weights_only = layer, bits, weights_only
        self.input_quant = None if weights_only else ActivationQuant()
        self.quantize_input = not weights_only
        self.output_quant: ActivationQuant | None = None
        self.observing = False  # calibration: float weights
        self.enabled = True  # False: float fine-tuning (``set_fake_quant``)
        self.frozen = False  # after ``freeze``: the weights already are the dequantized integers

    @property
    def weight(self) -> torch.Tensor:
        """The wrapped layer's weight, for model code that reads it (say, for its dtype)."""
        return self.layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.layer.bias

    @property
    def qmax(self) -> int:
        """The weight's largest integer: 7 bits of range for an 8-bit weight on int8 kernels."""
        return weight_qmax(self.bits, int8_kernels=not self.weights_only)

    def weight_scale(self) -> torch.Tensor:
        w = self.layer.weight.detach()
        amax = w.abs().reshape(w.shape[0], -1).amax(dim=1)
        return (amax / self.qmax).clamp_min(1e-8).float()

    def quantized_weight(self) -> torch.Tensor:
        return torch.round(self.layer.weight.detach() / self._per_channel(self.weight_scale()))

    def _per_channel(self, scale: torch.Tensor) -> torch.Tensor:
        return scale.reshape(-1, *([1] * (self.layer.weight.dim() - 1)))

    def _quantized_forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, qmax = self.weight_scale(), self.qmax
        weight = torch.fake_quantize_per_channel_affine(
            self.layer.weight, scale, torch.zeros_like(scale, dtype=torch.int32), 0, -qmax - 1, qmax)
        bias = self.layer.bias
        if bias is not None and not self.weights_only:  # int32 at input_scale * weight_scale, as ONNX Runtime computes it
            bias_scale = scale * self.input_quant.qparams()[0]
            bias = bias + (torch.round(bias.detach() / bias_scale) * bias_scale - bias.detach())
        if isinstance(self.layer, (nn.Conv1d, nn.Conv2d)):
            return self.layer._conv_forward(x, weight, bias)
        return nn.functional.linear(x, weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quantize_input:
            x = self.input_quant(x)
        y = self.layer(x) if self.observing or self.frozen or not self.enabled else self._quantized_forward(x)
        return y if self.output_quant is None else self.output_quant(y)


class FakeQuantEmbedding(nn.Module):
    """An nn.Embedding whose table is fake-quantized per row (symmetric, ``bits``); the rows
    looked up are exact multiples of their row's scale. Its input is token ids: nothing else
    is quantized.

    >>> table = FakeQuantEmbedding(nn.Embedding(10, 4), 4)
    >>> rows = table(torch.tensor([[1, 2]]))
    >>> scale = table.weight_scale()[[1, 2]]
    >>> bool(torch.allclose(rows / scale[..., None], torch.round(rows / scale[..., None]), atol=1e-4))
    True
    """

    def __init__(self, layer: nn.Embedding, bits: int):
        super().__init__()
        self.layer, self.bits = layer, bits
        self.frozen = False
        self.enabled = True  # False: float fine-tuning (``set_fake_quant``)

    def _row_scale(self, rows: torch.Tensor) -> torch.Tensor:
        """The scale of each row of ``rows`` (last dimension kept, size 1)."""
        return (rows.detach().abs().amax(dim=-1, keepdim=True) / weight_qmax(self.bits)).clamp_min(1e-8).float()

    def weight_scale(self) -> torch.Tensor:
        return self._row_scale(self.layer.weight)[:, 0]

    def quantized_weight(self) -> torch.Tensor:
        return torch.round(self.layer.weight.detach() / self._row_scale(self.layer.weight))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.layer(ids)
        if self.frozen or not self.enabled:
            return rows
        # a row's scale depends on that row alone: quantize the rows looked up, not the whole table
        # (the same values and the same straight-through gradients)
        scale = self._row_scale(rows)
        return rows + (torch.round(rows / scale) * scale - rows).detach()


def _wrapper(module: nn.Module | None) -> type | None:
    """The fake-quant module that wraps ``module``, None if it is not quantizable."""
    if isinstance(module, nn.Embedding):
        return FakeQuantEmbedding
    if isinstance(module, RECURRENT_TYPES):
        return FakeQuantRecurrent
    return FakeQuantLayer if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)) else None


def prepare_qat(model: nn.Module, bits: dict[str, int], *, kernels: str = "int8") -> list[str]:
    """Wrap the named layers (or both factors of a factorized layer) in place; ``kernels``
    "float": conv and linear layers quantize their weights alone (``Plan.kernels``).

    >>> prepare_qat(nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)), {"0": 8, "1": 4})
    ['0', '1']
    """
    modules = dict(model.named_modules())
    wrapped = []
    for name, b in bits.items():
        module = modules.get(name)
        targets = [name] if _wrapper(module) else (
            [f"{name}.{i}" for i in range(len(module))] if isinstance(module, nn.Sequential) else [])
        for target in targets:
            wrapper = _wrapper(modules[target])
            options = {"weights_only": kernels == "float"} if wrapper is FakeQuantLayer else {}
            model.set_submodule(target, wrapper(modules[target], b, **options))
            wrapped.append(target)
    return wrapped


def fake_quant_layers(model: nn.Module) -> list[FakeQuantLayer]:
    return [m for m in model.modules() if isinstance(m, FakeQuantLayer)]


def activation_quants(model: nn.Module) -> list[ActivationQuant]:
    return [m for m in model.modules() if isinstance(m, ActivationQuant)]


def place_quantizers(model: nn.Module, example: torch.Tensor) -> None:
    """Share and move the layers' activation quantizers so each tensor is quantized once, where
    it is produced (see the module docstring). Called by ``calibrate`` on its first batch.
    Layers that quantize their weights alone have none."""
    layers = [layer for layer in fake_quant_layers(model) if not layer.weights_only]
    if not layers:
        return
    for layer in layers:
        layer.observing = True
    placements: list[Placement] = trace_dataflow(model, example, layers)
    for layer in layers:
        layer.observing = False
    shared: dict[int, ActivationQuant] = {}
    for p in placements:
        placed = p.key in shared
        quant = shared.setdefault(p.key, ActivationQuant(nonnegative=p.nonnegative, upper=p.upper))
        p.consumer.input_quant = quant
        p.consumer.quantize_input = p.requantize or not (p.producer_layer or p.producer_module or p.producer_node)
        if placed:
            continue
        if p.producer_layer is not None:
            p.producer_layer.output_quant = quant
        elif p.producer_module is not None:
            p.producer_module.register_forward_hook(OutputHook(quant))
        elif p.producer_node is not None:
            _insert_after(model, p.producer_node, quant)
    for layer in layers:  # QLinearConv needs its output quantized
        if layer.output_quant is None and isinstance(layer.layer, (nn.Conv1d, nn.Conv2d)):
            layer.output_quant = ActivationQuant()


def _insert_after(model: torch.fx.GraphModule, node: torch.fx.Node, quant: ActivationQuant) -> None:
    """Quantize the output of an fx node (a residual Add, a ReLU) for all its users."""
    name = f"activation_quant_{sum(isinstance(m, ActivationQuant) for m in model.children())}"
    model.add_submodule(name, quant)
    with model.graph.inserting_after(node):
        new = model.graph.call_module(name, (node,))
    node.replace_all_uses_with(new, delete_user_cb=lambda user: user is not new)
    model.recompile()


def set_fake_quant(model: nn.Module, enabled: bool) -> bool:
    """Switch every fake quantizer of ``model`` on or off (off: the layers run their float weights
    and nothing observes ranges: float fine-tuning, twice as fast a step as quantization-aware);
    returns whether the model has any. Switched back on, the ranges are stale: ``calibrate`` with
    ``fresh=True``.

    >>> net = nn.Sequential(nn.Linear(4, 4))
    >>> prepare_qat(net, {"0": 4}); calibrate(net, [torch.randn(8, 4)])
    ['0']
    >>> x = torch.randn(2, 4)
    >>> set_fake_quant(net, False), bool(torch.equal(net(x), net[0].layer(x)))
    (True, True)
    """
    quantizers = [m for m in model.modules() if isinstance(m, (FakeQuantLayer, ActivationQuant, FakeQuantEmbedding,
                                                                 FakeQuantRecurrent))]
    for module in quantizers:
        module.enabled = enabled
    return bool(quantizers)


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor], *, fresh: bool = False) -> None:
    """Place the activation quantizers (first calibration only), then observe their ranges (min/max) on a
    few batches, before fine-tuning. ``fresh``: forget the ranges seen so far (float fine-tuning moved the weights)."""
    batches = list(batches)
    layers = fake_quant_layers(model)
    if not layers or not batches:
        return
    model.eval()
    if not any(getattr(layer, "placed", False) for layer in layers):
        place_quantizers(model, batches[0])
        for layer in layers:
            layer.placed = True
        model.eval()  # the new quantizers too
    quants = activation_quants(model)
    for quant in quants if fresh else ():
        quant.range.zero_()
    for module in layers + quants:
        module.observing = True
    for x in batches:
        pause_point()
        call(model, x)
    for module in layers + quants:
        module.observing = False
    for quant in quants:
        quant.observed.fill_(True)


@torch.no_grad()
def freeze(model: nn.Module) -> tuple[nn.Module, dict[str, QuantSpec]]:
    """Put the dequantized integers into every FakeQuantLayer's and FakeQuantEmbedding's weights
    (a layer's quantizers stay, to be exported as Q/DQ); returns the model and the integers, keyed
    by weight parameter name."""
    specs = {}
    for name, module in list(model.named_modules()):
        if isinstance(module, FakeQuantRecurrent) and not module.frozen:
            for weight, bits in freeze_recurrent(module).items():
                values = getattr(module.layer, weight).detach()
                integers, scale = row_quantized(values, bits)
                specs[f"{name}.layer.{weight}"] = QuantSpec(bits, integers.to(torch.int8), scale[:, 0], None, None,
                                                            recurrent=True)
        if isinstance(module, FakeQuantEmbedding) and not module.frozen:
            scale, integers = module.weight_scale(), module.quantized_weight()
            module.layer.weight.copy_(integers * scale[:, None])
            specs[f"{name}.layer.weight"] = QuantSpec(module.bits, integers.to(torch.int8), scale, None, None)
            module.frozen = True
        if not isinstance(module, FakeQuantLayer) or module.frozen:
            continue
        layer, scale = module.layer, module.weight_scale()
        integers = module.quantized_weight()
        input_qparams = None if module.weights_only else module.input_quant.qparams()
        layer.weight.copy_(integers * module._per_channel(scale))
        if layer.bias is not None and input_qparams is not None:
            bias_scale = scale * input_qparams[0]
            layer.bias.copy_(torch.round(layer.bias / bias_scale) * bias_scale)
        output_qparams = None if module.output_quant is None else module.output_quant.qparams()
        specs[f"{name}.layer.weight"] = QuantSpec(module.bits, integers.to(torch.int8), scale, input_qparams,
                                                  output_qparams)
        module.frozen = True
    return model.eval(), specs
