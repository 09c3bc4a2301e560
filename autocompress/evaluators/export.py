"""The artifact exporter: one ONNX file per candidate, stored the way it is measured.

The float graph is exported by torch.onnx (TorchScript exporter: ~0.1 s per model here, vs
~2.5 s and larger files with metadata for the dynamo exporter). Then every quantized layer is
rewritten to QDQ form: its weight becomes an INT8/INT4/INT2 initializer (raw-packed) feeding
DequantizeLinear (per output channel), its bias an int32 initializer, and its input and
output pass through uint8 QuantizeLinear/DequantizeLinear so ONNX Runtime can fuse int8
kernels. INT2 needs opset 25; otherwise opset 21. Doc strings are stripped: the file holds
the model, nothing else.

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

from autocompress.compressors.quantize import QuantSpec

WEIGHT_TYPES = {8: TensorProto.INT8, 4: TensorProto.INT4, 2: TensorProto.INT2}
INPUT_NAME, OUTPUT_NAME = "input", "logits"


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


def _scalar(name: str, value, dtype) -> TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def _qdq(tensor: str, tag: str, qparams: tuple[float, int], out: str) -> tuple[list, list]:
    """Nodes and initializers of a uint8 Quantize->Dequantize pair from ``tensor`` to ``out``."""
    scale, zero_point = f"{tag}_scale", f"{tag}_zero_point"
    inits = [_scalar(scale, qparams[0], np.float32), _scalar(zero_point, qparams[1], np.uint8)]
    nodes = [helper.make_node("QuantizeLinear", [tensor, scale, zero_point], [f"{tag}_quantized"]),
             helper.make_node("DequantizeLinear", [f"{tag}_quantized", scale, zero_point], [out])]
    return nodes, inits


def _locate_weights(graph: onnx.GraphProto, specs: dict[str, QuantSpec]) -> dict[str, tuple[str, bool]]:
    """{weight name: (initializer name, stored transposed)}. A bias-free Linear is exported as
    MatMul with a transposed copy of its weight under a generated name: found by value."""
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
    """Nodes and initializers producing ``{tag}.weight_dq`` from the stored integers.

    INT8/INT4: one per-channel DequantizeLinear, the pattern ONNX Runtime fuses into int8
    kernels. INT2: DequantizeLinear at scale 1, then Mul by the per-channel scales, because
    ONNX Runtime 1.32 fuses DQ(INT2)->Conv->Q into a QLinearConv that rejects INT2 and the
    session fails to load. The file stores the same integers and scales either way.
    """
    out = f"{tag}.weight_dq"
    stored = [integer_tensor(f"{tag}.weight_quantized", integers, bits)]
    if bits != 2:
        stored += [numpy_helper.from_array(scale, f"{tag}.weight_scale"),
                   integer_tensor(f"{tag}.weight_zero_point", np.zeros(len(scale), np.int8), bits)]
        return [helper.make_node("DequantizeLinear", [f"{tag}.weight_quantized", f"{tag}.weight_scale",
                                                      f"{tag}.weight_zero_point"], [out], axis=axis)], stored
    shape = [1] * integers.ndim
    shape[axis] = len(scale)
    stored += [_scalar(f"{tag}.weight_unit_scale", 1.0, np.float32),
               integer_tensor(f"{tag}.weight_zero_point", np.zeros((), np.int8), bits),
               numpy_helper.from_array(scale.reshape(shape), f"{tag}.weight_scale")]
    nodes = [helper.make_node("DequantizeLinear", [f"{tag}.weight_quantized", f"{tag}.weight_unit_scale",
                                                   f"{tag}.weight_zero_point"], [f"{tag}.weight_levels"]),
             helper.make_node("Mul", [f"{tag}.weight_levels", f"{tag}.weight_scale"], [out])]
    return nodes, stored


def insert_qdq(model: onnx.ModelProto, specs: dict[str, QuantSpec]) -> None:
    """Rewrite the layers whose weights are named in ``specs`` to QDQ form, in place."""
    graph = model.graph
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
    before, after, new_inits, dropped = {}, {}, [], set()
    for weight, spec in specs.items():
        node, index = consumers[weight]
        initializer, transposed = located[weight]
        if node.op_type not in ("Conv", "Gemm", "MatMul") or index != 1:
            raise RuntimeError(f"cannot quantize {weight}: used by {node.op_type} input {index}")
        tag = weight.removesuffix(".weight")
        scale = spec.weight_scale.numpy().astype(np.float32)
        integers = spec.weight.numpy().T if transposed else spec.weight.numpy()
        nodes, inits = _dequantized_weight(tag, integers, scale, spec.bits, axis=1 if transposed else 0)
        new_inits += inits
        dropped.add(initializer)
        node.input[1] = f"{tag}.weight_dq"
        if len(node.input) > 2 and node.input[2] in initializers:
            bias_name = node.input[2]
            bias = numpy_helper.to_array(initializers[bias_name]).astype(np.float64)
            bias_scale = (scale.astype(np.float64) * spec.input_qparams[0]).astype(np.float32)
            new_inits += [numpy_helper.from_array(np.round(bias / bias_scale).astype(np.int32), f"{tag}.bias_quantized"),
                          numpy_helper.from_array(bias_scale, f"{tag}.bias_scale"),
                          numpy_helper.from_array(np.zeros(len(scale), np.int32), f"{tag}.bias_zero_point")]
            nodes.append(helper.make_node("DequantizeLinear", [f"{tag}.bias_quantized", f"{tag}.bias_scale",
                                                              f"{tag}.bias_zero_point"], [f"{tag}.bias_dq"], axis=0))
            dropped.add(bias_name)
            node.input[2] = f"{tag}.bias_dq"
        qdq_nodes, qdq_inits = _qdq(node.input[0], f"{tag}.input", spec.input_qparams, f"{tag}.input_dq")
        node.input[0] = f"{tag}.input_dq"
        output = node.output[0]
        node.output[0] = f"{tag}.output_raw"
        out_nodes, out_inits = _qdq(f"{tag}.output_raw", f"{tag}.output", spec.output_qparams, output)
        before[id(node)] = nodes + qdq_nodes
        after[id(node)] = out_nodes
        new_inits += qdq_inits + out_inits
    ordered = []
    for node in graph.node:
        ordered += before.get(id(node), []) + [node] + after.get(id(node), [])
    del graph.node[:]
    graph.node.extend(ordered)
    kept = [t for t in graph.initializer if t.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)


def _strip_doc_strings(model: onnx.ModelProto) -> None:
    model.doc_string = ""
    model.graph.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""


def export_onnx(model: nn.Module, example_inputs: torch.Tensor, path: str,
                specs: dict[str, QuantSpec] | None = None) -> None:
    """Write ``model`` (float, eval mode) to ``path`` as ONNX, quantized layers in QDQ form."""
    buffer = io.BytesIO()
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example_inputs,), buffer, dynamo=False, opset_version=21,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    proto = onnx.load_from_string(buffer.getvalue())
    if specs:
        insert_qdq(proto, specs)
        if any(spec.bits == 2 for spec in specs.values()):
            for opset in proto.opset_import:
                if opset.domain in ("", "ai.onnx"):
                    opset.version = 25
    _strip_doc_strings(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
