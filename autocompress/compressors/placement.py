"""Where to quantize each quantized layer's input: found by tracing one forward pass.

``trace_dataflow`` runs the model once under a ``TorchFunctionMode`` that records every
torch operation (which tensors it read, which it produced), and module hooks that record
which tensors quantized layers read and produced, and which tensors were a module's output.
For every quantized layer it then walks back from its input through operations that keep
uint8-grid values on the grid (ReLU, ReLU6 and other clamps from 0, whose upper bound then caps
the quantizer's range, max-pooling, reshapes, transposes), each the only
reader of its input, to the furthest tensor that a quantized layer or a module (called
once) produced: quantizing that tensor there quantizes the layer's input too. Layers whose
walk ends on the same tensor share one quantizer.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from autocompress.compressors.quantize import FakeQuantLayer
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3))
    >>> for i in (0, 3):
    ...     net[i] = FakeQuantLayer(net[i], 8)
    >>> [(p.consumer is net[3], p.producer_layer is net[0], p.nonnegative)
    ...  for p in trace_dataflow(net, torch.randn(1, 1, 12, 12), [net[0], net[3]])]
    [(False, False, False), (True, True, True)]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autocompress.model_io import call, tensors
from autocompress.tracing import OpRecorder

RELU_OPS = {"relu", "relu_"}
GRID_OPS = RELU_OPS | {"max_pool2d", "_max_pool2d", "max_pool1d", "flatten", "reshape", "view", "transpose",
                       "permute", "contiguous", "squeeze", "unsqueeze", "dropout"}


def floor_at_zero(op) -> tuple[bool, float | None]:
    """Whether ``op`` is a ReLU or a clamp from 0 (ReLU6, ``clamp(0, c)``), and its upper bound if
    it has one: quantized before it at a range from 0 to no more than that bound, it changes nothing.

    >>> from autocompress.tracing import Op
    >>> floor_at_zero(Op("hardtanh", [], [], (0.0, 6.0))), floor_at_zero(Op("hardtanh", [], [], (-1.0, 1.0)))
    ((True, 6.0), (False, None))
    """
    if op.name in RELU_OPS:
        return True, None
    if op.bounds is not None and op.bounds[0] == 0 and (op.bounds[1] is None or op.bounds[1] > 0):
        return True, op.bounds[1]
    return False, None


def _lower(cap: float | None, bound: float | None) -> float | None:
    return bound if cap is None else cap if bound is None else min(cap, bound)


@dataclass
class Placement:
    """The quantizer of ``consumer``'s input: on the output of ``producer_layer``, of
    ``producer_module`` or of the fx ``producer_node`` if one is set, else at the consumer's own
    input. ``key`` names the quantized tensor: consumers with equal keys share a quantizer.
    ``requantize``: between the two lie operations other than ReLU (max-pooling, reshapes), so
    the consumer quantizes again at the same qparams (a no-op on grid values that lets ONNX
    Runtime run those operations on uint8). ``upper``: a clamp between them (ReLU6) bounds the
    range from above, so the quantizer's range stops there and the clamp changes nothing."""

    consumer: nn.Module
    key: int
    nonnegative: bool = False
    upper: float | None = None
    requantize: bool = True
    producer_layer: nn.Module | None = None
    producer_module: nn.Module | None = None
    producer_node: torch.fx.Node | None = None


def _record(model: nn.Module, example: torch.Tensor, layers: list[nn.Module]):
    recorder = OpRecorder()
    layer_io, module_out, calls = {}, {}, {}
    quantized = {id(m) for m in layers}

    def pre(module, args):
        calls[id(module)] = calls.get(id(module), 0) + 1
        if id(module) in quantized:
            recorder.paused += 1

    def post(module, args, output):
        if id(module) in quantized:
            recorder.paused -= 1
            layer_io[id(module)] = (args[0], output)
            recorder.keep += [args[0], output]
        elif not recorder.paused and isinstance(output, torch.Tensor):
            module_out.setdefault(id(output), module)  # the innermost module producing it
            recorder.keep.append(output)

    node_out = {}

    class Interpreter(torch.fx.Interpreter):  # a GraphModule (BN folded by fx): every node is a place
        def run_node(self, node):
            out = super().run_node(node)
            if isinstance(out, torch.Tensor) and node.op not in ("placeholder", "output"):
                node_out.setdefault(id(out), node)
                recorder.keep.append(out)
            return out

    handles = []
    for module in model.modules():
        if module is not model:
            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        with torch.no_grad(), recorder:
            if isinstance(model, torch.fx.GraphModule):
                Interpreter(model).run(*_positional(model, example))
            else:
                call(model, example)
    finally:
        for handle in handles:
            handle.remove()
    module_out = {k: m for k, m in module_out.items() if calls.get(id(m)) == 1}
    return recorder.ops, layer_io, module_out, node_out


def _positional(model: torch.fx.GraphModule, example) -> tuple:
    """The inputs in the order of the traced graph's placeholders (a dict: by their names)."""
    if not isinstance(example, dict):
        return tensors(example)
    names = [node.target for node in model.graph.nodes if node.op == "placeholder"]
    return tuple(example.get(name) for name in names)


def trace_dataflow(model: nn.Module, example: torch.Tensor, layers: list[nn.Module]) -> list[Placement]:
    """One Placement per layer of ``layers`` that ran (see the module docstring)."""
    ops, layer_io, module_out, node_out = _record(model, example, layers)
    made_by_op = {id(t): op for op in ops for t in op.outputs}
    readers: dict[int, int] = {}
    for op in ops:
        for t in {id(t) for t in op.inputs}:
            readers[t] = readers.get(t, 0) + 1
    by_id = {id(m): m for m in layers}
    made_by_layer = {id(out): by_id[k] for k, (_, out) in layer_io.items()}
    for k, (inp, _) in layer_io.items():
        readers[id(inp)] = readers.get(id(inp), 0) + 1
    placeable = made_by_layer.keys() | module_out.keys() | node_out.keys()
    placements = []
    for layer in layers:
        if id(layer) not in layer_io:
            continue
        tensor = layer_io[id(layer)][0]
        best, walked_nonnegative, walked_other, cap = None, False, False, None
        while True:
            if id(tensor) in placeable:
                best = (tensor, walked_nonnegative, walked_other, cap)
            if id(tensor) in made_by_layer:
                break
            op = made_by_op.get(id(tensor))
            floored, bound = floor_at_zero(op) if op is not None else (False, None)
            if (op is None or (op.name not in GRID_OPS and not floored) or not op.inputs or op.inputs[0] is tensor
                    or readers.get(id(op.inputs[0])) != 1):
                break
            walked_nonnegative |= floored
            walked_other |= not floored
            cap = _lower(cap, bound)
            tensor = op.inputs[0]
        if best is None:
            placements.append(Placement(layer, key=id(layer_io[id(layer)][0])))
            continue
        tensor, nonnegative, requantize, upper = best
        key = id(tensor)
        producer_layer = made_by_layer.get(key)
        producer_module = None if producer_layer else module_out.get(key)
        producer_node = None if producer_layer or producer_module else node_out.get(key)
        placements.append(Placement(layer, key=key, nonnegative=nonnegative, upper=upper, requantize=requantize,
                                    producer_layer=producer_layer, producer_module=producer_module,
                                    producer_node=producer_node))
    return placements
