"""The artifact exporter: one ONNX file per candidate, stored the way it is measured.

The model is exported by torch.onnx (TorchScript exporter: ~0.1 s per model here, vs ~2.5 s
and larger files with metadata for the dynamo exporter). A quantized model is exported as it
was fine-tuned and frozen (``compressors.quantize``): its activation quantizers become uint8
QuantizeLinear/DequantizeLinear pairs where the model quantizes (each tensor once, where it
is produced), so the graph computes what the fake-quantized model computes. Then every
quantized layer's weight becomes an INT8/INT4/INT2 initializer (raw-packed; 4 and 2 bits
widened by a Cast that ONNX Runtime folds at load) feeding a per-channel DequantizeLinear,
its bias an int32 initializer: the patterns ONNX Runtime fuses into int8 kernels (QLinearConv
chains, QLinearAdd, QGemm). A plan on float kernels (``Plan.kernels``) quantizes weights alone:
no activation is quantized, and each weight's integers are widened to float by a Cast and a Mul
that ONNX Runtime folds at load (float kernels, the file's bytes still ``bits`` a weight). A quantized embedding's lookup becomes a lookup of its integer rows
and of their scales, then a Cast and a Mul: only the rows read are dequantized. INT2 needs
opset 25; otherwise opset 21. Doc strings are stripped: the file holds the model, nothing else.
Its bytes are the weights: the exporter's long intermediate names
(``/layer1/layer1.0/conv1/input_quant/QuantizeLinear_output_0``) become short ids, node names are
dropped, and constant nodes become initializers, identical ones stored once (ResNet-20 pruned +
int8: 180,674 B before, 155,768 B after). Initializers keep their names (they name the layers).

Example:
    >>> import os, tempfile, torch
    >>> from torch import nn
    >>> path = os.path.join(tempfile.mkdtemp(), "m.onnx")
    >>> export_onnx(nn.Linear(4, 2), torch.randn(1, 4), path)
    >>> os.path.getsize(path) > 0
    True
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from autocompress import model_io
from autocompress.quiet import fd_silenced
from autocompress.compressors.quantize import QuantSpec
from autocompress.evaluators.graph_tidy import compact_graph, drop_name_prefix, strip_doc_strings
from autocompress.evaluators.recurrent_export import quantize_recurrent_weights
from autocompress.modules import attention_fast_path_off

WEIGHT_TYPES = {8: TensorProto.INT8, 4: TensorProto.INT4, 2: TensorProto.INT2}
INPUT_NAME, OUTPUT_NAME = model_io.SINGLE_INPUT_NAME, model_io.OUTPUT_NAME


def pack_integers(values: np.ndarray, bits: int) -> bytes:
    """Raw ONNX bytes of signed integers: 8 bits as int8; 4 and 2 bits packed low bits first.

    >>> pack_integers(np.array([1, -1, 0]), 4).hex()
    'f100'
    """
    values = np.asarray(values).astype(np.int64).ravel()
    if bits == 8:
        return values.astype(np.int8).tobytes()
    per_byte = 8 // bits
    codes = (values & ((1 << bits) - 1)).astype(np.uint8)
    codes = np.concatenate([codes, np.zeros(-len(codes) % per_byte, np.uint8)]).reshape(-1, per_byte)
    packed = np.zeros(len(codes), np.uint8)
    for i in range(per_byte):
        packed |= codes[:, i] << (i * bits)
    return packed.tobytes()


def integer_tensor(name: str, values: np.ndarray, bits: int) -> TensorProto:
    tensor = TensorProto(name=name, data_type=WEIGHT_TYPES[bits], dims=list(np.shape(values)))
    tensor.raw_data = pack_integers(values, bits)
    return tensor


def _locate_weights(graph: onnx.GraphProto, specs: dict[str, QuantSpec]) -> dict[str, tuple[str, bool]]:
    """{weight name: (initializer name, stored transposed)}. A Linear applied to a 3-d input is
    exported as MatMul with a transposed copy of its weight under a generated name: found by value."""
    initializers = {t.name: t for t in graph.initializer}
    located = {}
    for weight, spec in specs.items():
        if weight in initializers:
            located[weight] = (weight, False)
            continue
        expected = (spec.weight.numpy().astype(np.float64) * spec.weight_scale.numpy()[:, None]).T
        for name, tensor in initializers.items():
            if tuple(tensor.dims) == expected.shape and np.allclose(numpy_helper.to_array(tensor), expected,
                                                                    rtol=1e-6, atol=1e-7):
                located[weight] = (name, True)
                break
    return located


def _dequantized_weight(tag: str, integers: np.ndarray, scale: np.ndarray, bits: int, *, axis: int
                        ) -> tuple[list, list]:
    """Nodes and initializers producing ``{tag}.weight_dq`` from the integers stored at ``bits``.

    One per-channel DequantizeLinear of INT8 values: the pattern ONNX Runtime fuses into int8
    kernels (QLinearConv, QGemm, ...). INT4 and INT2 weights are stored packed and widened by a
    Cast to INT8 first: ONNX Runtime folds that Cast of a constant once, at session load (it
    does not fold DequantizeLinear, which would otherwise run at every inference), so a low-bit
    layer runs the same int8 kernel as an int8 one while its file holds 4 or 2 bits a weight.
    """
    stored = [integer_tensor(f"{tag}.weight_quantized", integers, bits),
              numpy_helper.from_array(scale, f"{tag}.weight_scale"),
              integer_tensor(f"{tag}.weight_zero_point", np.zeros(len(scale), np.int8), 8)]
    nodes, int8 = [], f"{tag}.weight_quantized"
    if bits != 8:
        int8 = f"{tag}.weight_int8"
        nodes.append(helper.make_node("Cast", [f"{tag}.weight_quantized"], [int8], to=TensorProto.INT8))
    nodes.append(helper.make_node("DequantizeLinear", [int8, f"{tag}.weight_scale", f"{tag}.weight_zero_point"],
                                  [f"{tag}.weight_dq"], axis=axis))  # the zero point: QGemm fusion needs it
    return nodes, stored


def _widened_weight(tag: str, integers: np.ndarray, scale: np.ndarray, bits: int, *, axis: int
                    ) -> tuple[list, list]:
    """Nodes and initializers producing ``{tag}.weight_dq`` for a layer on float kernels
    (``Plan.kernels``): its integers Cast to float and scaled per channel by a Mul. Every input
    is a constant, so ONNX Runtime folds them once, at session load: the layer then runs the
    float kernel, as fast as the teacher's, while the file holds ``bits`` a weight."""
    shape = [1] * integers.ndim
    shape[axis] = len(scale)
    stored = [integer_tensor(f"{tag}.weight_quantized", integers, bits),
              numpy_helper.from_array(scale.reshape(shape), f"{tag}.weight_scale")]
    nodes, int8 = [], f"{tag}.weight_quantized"
    if bits != 8:
        int8 = f"{tag}.weight_int8"
        nodes.append(helper.make_node("Cast", [f"{tag}.weight_quantized"], [int8], to=TensorProto.INT8))
    nodes += [helper.make_node("Cast", [int8], [f"{tag}.weight_float"], to=TensorProto.FLOAT),
              helper.make_node("Mul", [f"{tag}.weight_float", f"{tag}.weight_scale"], [f"{tag}.weight_dq"])]
    return nodes, stored


def _dequantized_bias(tag: str, bias: np.ndarray, scale: np.ndarray, input_scale: float) -> tuple[list, list]:
    """int32 bias at input_scale x weight_scale, dequantized: what int8 kernels add. The bias
    scale is a Mul of two constants, folded at load: the file does not store it."""
    stored = [numpy_helper.from_array(np.round(bias / (scale.astype(np.float64) * input_scale)).astype(np.int32),
                                      f"{tag}.bias_quantized"),
              numpy_helper.from_array(np.array(input_scale, np.float32), f"{tag}.input_scale")]
    nodes = [helper.make_node("Mul", [f"{tag}.weight_scale", f"{tag}.input_scale"], [f"{tag}.bias_scale"]),
             helper.make_node("DequantizeLinear", [f"{tag}.bias_quantized", f"{tag}.bias_scale"],
                              [f"{tag}.bias_dq"], axis=0)]
    return nodes, stored


def _gathered_rows(tag: str, lookup: onnx.NodeProto, integers: np.ndarray, scale: np.ndarray, bits: int
                   ) -> tuple[list, list]:
    """Nodes and initializers that replace an embedding's float ``lookup`` (a Gather of its table):
    a Gather of the integer rows and one of their scales, then a Cast and a Mul. Only the rows
    looked up are dequantized; INT4 and INT2 tables are widened to INT8 by a Cast folded at load."""
    stored = [integer_tensor(f"{tag}.weight_quantized", integers, bits),
              numpy_helper.from_array(scale.reshape(-1, 1), f"{tag}.weight_scale")]
    nodes, int8 = [], f"{tag}.weight_quantized"
    if bits != 8:
        int8 = f"{tag}.weight_int8"
        nodes.append(helper.make_node("Cast", [f"{tag}.weight_quantized"], [int8], to=TensorProto.INT8))
    ids = lookup.input[1]
    nodes += [helper.make_node("Gather", [int8, ids], [f"{tag}.rows_quantized"]),
              helper.make_node("Gather", [f"{tag}.weight_scale", ids], [f"{tag}.rows_scale"]),
              helper.make_node("Cast", [f"{tag}.rows_quantized"], [f"{tag}.rows_float"], to=TensorProto.FLOAT),
              helper.make_node("Mul", [f"{tag}.rows_float", f"{tag}.rows_scale"], [lookup.output[0]])]
    return nodes, stored


def _quantized_layer(spec: QuantSpec, tag: str, node: onnx.NodeProto, *, index: int, transposed: bool,
                     initializers: dict) -> tuple[list, list, set, list]:
    """(nodes, initializers, initializers dropped, nodes in place of ``node``) for the layer whose
    weight ``node`` reads as input ``index``: an embedding's table is a Gather's input 0."""
    scale = spec.weight_scale.numpy().astype(np.float32)
    if node.op_type == "Gather" and index == 0:
        nodes, inits = _gathered_rows(tag, node, spec.weight.numpy(), scale, spec.bits)
        return [], inits, {node.input[0]}, nodes
    if node.op_type not in ("Conv", "Gemm", "MatMul") or index != 1:
        raise RuntimeError(f"cannot quantize {tag}: used by {node.op_type} input {index}")
    integers = spec.weight.numpy().T if transposed else spec.weight.numpy()
    weight = _dequantized_weight if spec.input_qparams else _widened_weight
    nodes, inits = weight(tag, integers, scale, spec.bits, axis=1 if transposed else 0)
    dropped = {node.input[1]}
    node.input[1] = f"{tag}.weight_dq"
    if spec.input_qparams and len(node.input) > 2 and node.input[2] in initializers:
        bias = numpy_helper.to_array(initializers[node.input[2]]).astype(np.float64)
        bias_nodes, bias_inits = _dequantized_bias(tag, bias, scale, spec.input_qparams[0])
        nodes, inits = nodes + bias_nodes, inits + bias_inits
        dropped.add(node.input[2])
        node.input[2] = f"{tag}.bias_dq"
    return nodes, inits, dropped, [node]


def _copy_shared_initializers(graph: onnx.GraphProto) -> None:
    """Give each layer its own copy of a weight the exporter shares between layers. The exporter
    stores identical tensors once and feeds the others through Identity nodes (say, the zero
    biases of freshly folded BatchNorms); a layer quantized alone must be able to replace its
    copy without taking the other layers' away."""
    initializers = {t.name: t for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copied = TensorProto()
            copied.CopyFrom(initializers[node.input[0]])
            copied.name = node.output[0]
            graph.initializer.append(copied)
        else:
            kept.append(node)
    if len(kept) < len(graph.node):
        del graph.node[:]
        graph.node.extend(kept)


def insert_quantized_weights(model: onnx.ModelProto, specs: dict[str, QuantSpec]) -> None:
    """Replace the float weights (and biases) of the layers named in ``specs`` by their stored
    integers and DequantizeLinear, in place; an embedding's lookup by a lookup of its integer
    rows (``_gathered_rows``). The activations' QuantizeLinear/DequantizeLinear are already in
    the graph: traced from the model's own quantizers."""
    graph = model.graph
    _copy_shared_initializers(graph)
    initializers = {t.name: t for t in graph.initializer}
    located = _locate_weights(graph, specs)
    by_initializer = {init: weight for weight, (init, _) in located.items()}
    consumers = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in by_initializer:
                consumers[by_initializer[name]] = (node, i)
    missing = set(specs) - set(consumers)
    if missing:
        raise RuntimeError(f"quantized weights {sorted(missing)} are not in the exported graph")
    new_nodes, new_inits, dropped, in_place = [], [], set(), {}
    for weight, spec in specs.items():
        node, index = consumers[weight]
        tag = weight.removesuffix(".weight").removesuffix(".layer")
        nodes, inits, gone, replacement = _quantized_layer(spec, tag, node, index=index,
                                                           transposed=located[weight][1], initializers=initializers)
        new_nodes, new_inits, dropped = new_nodes + nodes, new_inits + inits, dropped | gone
        in_place[node.output[0]] = replacement
    # new_nodes read initializers only; an embedding's lookup is replaced where it stands
    ordered = new_nodes + [n for node in graph.node for n in in_place.get(node.output[0], [node])]
    del graph.node[:]
    graph.node.extend(ordered)
    kept = [t for t in graph.initializer if t.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)


def _constant(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for tensor in graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def _changes_nothing(graph: onnx.GraphProto, clamp: onnx.NodeProto, dequantize: onnx.NodeProto) -> bool:
    """Whether a Relu or Clip reading a uint8 DequantizeLinear leaves every value it can give as
    it is: zero point 0 (nothing negative), and a Clip's upper bound at or above 255 x scale."""
    if len(dequantize.input) < 3:
        return False
    zero_point, scale = _constant(graph, dequantize.input[2]), _constant(graph, dequantize.input[1])
    if zero_point is None or zero_point.dtype != np.uint8 or zero_point.any():
        return False
    if clamp.op_type == "Relu":
        return True
    bounds = [_constant(graph, name) if name else None for name in list(clamp.input[1:3]) + [""] * 2][:2]
    lower, upper = bounds
    if (len(clamp.input) > 1 and clamp.input[1] and lower is None) or scale is None or scale.size != 1:
        return False
    top = float(scale) * 255
    return (lower is None or float(lower) <= 0) and (upper is None and len(clamp.input) < 3 or
                                                     upper is not None and float(upper) >= top * (1 - 1e-6))


def drop_clamps_after_dequantize(model: onnx.ModelProto) -> None:
    """Remove each Relu or Clip that reads a uint8 DequantizeLinear and changes nothing of what it
    can give (``_changes_nothing``): without it the DequantizeLinear reaches the next int8 kernel
    (the quantized model applies its ReLUs after such quantizers and caps the range of a tensor
    quantized before a ReLU6 at 6, where both are no-ops). A Shape of a DequantizeLinear's output
    reads the quantized tensor instead (same shape, no dequantized copy made just for it)."""
    graph = model.graph
    made_by = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    dropped = {}
    for node in graph.node:
        source = made_by.get(node.input[0]) if node.op_type in ("Relu", "Clip") else None
        if source is not None and source.op_type == "DequantizeLinear" and node.output[0] not in outputs \
                and _changes_nothing(graph, node, source):
            dropped[node.output[0]] = node.input[0]
    for node in graph.node:  # a shape needs no dequantized copy: read it off the quantized tensor
        source = made_by.get(node.input[0]) if node.op_type == "Shape" else None
        if source is not None and source.op_type == "DequantizeLinear":
            node.input[0] = source.input[0]
    kept = [node for node in graph.node if not (node.op_type in ("Relu", "Clip") and node.output[0] in dropped)]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in dropped:
                node.input[i] = dropped[name]
    del graph.node[:]
    graph.node.extend(kept)


def export_onnx(model: nn.Module, example_inputs: model_io.Inputs, path: str,
                specs: dict[str, QuantSpec] | None = None) -> None:
    """Write ``model`` (eval mode; frozen by ``quantize.freeze`` if quantized) to ``path`` as ONNX,
    quantized layers in QDQ form (``specs``: what ``freeze`` returned)."""
    buffer = io.BytesIO()
    model.eval()
    plain = isinstance(example_inputs, torch.Tensor) and isinstance(model(example_inputs), torch.Tensor)
    traced = model if plain else model_io.Exportable(model, example_inputs)
    names = model_io.input_names(example_inputs)
    # fd 1 shut: torch 2.13's exporter prints its whole graph there when an export fails (its ONNX
    # log is always on), and our callers say the error in one line
    with warnings.catch_warnings(), torch.no_grad(), attention_fast_path_off(), fd_silenced(1):
        warnings.simplefilter("ignore")
        torch.onnx.export(traced, model_io.tensors(example_inputs), buffer, dynamo=False, opset_version=21,
                          input_names=names, output_names=[OUTPUT_NAME],
                          dynamic_axes={**{name: {0: "batch"} for name in names}, OUTPUT_NAME: {0: "batch"}})
    proto = onnx.load_from_string(buffer.getvalue())
    if not plain:
        drop_name_prefix(proto, "model.")
    if specs:
        quantize_recurrent_weights(proto, specs)
        insert_quantized_weights(proto, {name: spec for name, spec in specs.items() if not spec.recurrent})
        drop_clamps_after_dequantize(proto)
        if any(spec.bits == 2 for spec in specs.values()):
            for opset in proto.opset_import:
                if opset.domain in ("", "ai.onnx"):
                    opset.version = 25
    strip_doc_strings(proto)
    compact_graph(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
