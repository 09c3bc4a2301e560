"""Recurrent weights stored as integers in the exported file (see ``compressors.recurrent``).

torch.onnx writes an LSTM/GRU/RNN layer as one ONNX node per stacked layer whose W and R inputs
are float initializers of shape (directions, gates x hidden, inputs), its gates reordered
(LSTM: i, o, f, c). Each W or R that holds a quantized layer's weights (found by value: its rows
are that weight's rows, reordered) becomes an integer initializer with one scale per row, a
DequantizeLinear and a Reshape back to three dimensions. The values the node computes with are
exactly those it computed with before: frozen weights are integers times their row's scale.

Example:
    >>> import io, torch, onnx
    >>> from torch import nn
    >>> from autocompress.compressors.recurrent import FakeQuantRecurrent
    >>> from autocompress.compressors.quantize import freeze
    >>> net = nn.Sequential(FakeQuantRecurrent(nn.GRU(4, 6), 8))
    >>> _, specs = freeze(net)
    >>> buffer = io.BytesIO()
    >>> torch.onnx.export(net[0].layer, (torch.randn(3, 1, 4),), buffer, dynamo=False, opset_version=21)
    >>> proto = onnx.load_from_string(buffer.getvalue())
    >>> quantize_recurrent_weights(proto, specs)
    2
    >>> sorted(t.data_type for t in proto.graph.initializer if t.name.endswith("weight_quantized"))
    [3, 3]
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from autocompress.compressors.quantize import QuantSpec

RECURRENT_OPS = ("LSTM", "GRU", "RNN")


def _sorted_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.lexsort(matrix.T[::-1])]


def _owner(matrix: np.ndarray, specs: dict[str, QuantSpec]) -> QuantSpec | None:
    """The recurrent spec whose dequantized weight has the rows of ``matrix`` (in any order)."""
    for spec in specs.values():
        values = spec.weight.numpy().astype(np.float64) * spec.weight_scale.numpy().astype(np.float64)[:, None]
        if values.shape == matrix.shape and np.allclose(_sorted_rows(values), _sorted_rows(matrix), rtol=1e-5,
                                                        atol=1e-7):
            return spec
    return None


def _integer_form(tag: str, stacked: np.ndarray, bits: int) -> tuple[list, list]:
    """Nodes and initializers giving ``{tag}.weight_3d``, the (directions, rows, cols) weight,
    from integers with one scale per row."""
    from autocompress.evaluators.export import _dequantized_weight

    flat = stacked.reshape(-1, stacked.shape[-1]).astype(np.float64)
    scale = np.maximum(np.abs(flat).max(axis=1) / (2 ** (bits - 1) - 1), 1e-8)
    integers = np.round(flat / scale[:, None])
    nodes, stored = _dequantized_weight(tag, integers, scale.astype(np.float32), bits, axis=0)
    stored.append(numpy_helper.from_array(np.array(stacked.shape, np.int64), f"{tag}.shape"))
    nodes.append(helper.make_node("Reshape", [f"{tag}.weight_dq", f"{tag}.shape"], [f"{tag}.weight_3d"]))
    return nodes, stored


def quantize_recurrent_weights(model: onnx.ModelProto, specs: dict[str, QuantSpec]) -> int:
    """Store the W and R inputs of the recurrent nodes that hold quantized weights as integers,
    in place (see the module docstring); returns how many were replaced."""
    recurrent = {name: spec for name, spec in specs.items() if spec.recurrent}
    if not recurrent:
        return 0
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    new_nodes, new_inits, dropped = [], [], set()
    for index, node in enumerate(n for n in graph.node if n.op_type in RECURRENT_OPS):
        for slot in (1, 2):
            name = node.input[slot]
            if name not in initializers:
                continue
            stacked = numpy_helper.to_array(initializers[name])
            owners = [_owner(direction, recurrent) for direction in stacked]
            if any(owner is None for owner in owners) or len({o.bits for o in owners}) != 1:
                continue
            tag = f"recurrent{index}.{'WR'[slot - 1]}"
            nodes, inits = _integer_form(tag, stacked, owners[0].bits)
            new_nodes, new_inits = new_nodes + nodes, new_inits + inits
            dropped.add(name)
            node.input[slot] = f"{tag}.weight_3d"
    ordered = new_nodes + list(graph.node)  # the new nodes read initializers only
    del graph.node[:]
    graph.node.extend(ordered)
    kept = [t for t in graph.initializer if t.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    return len(dropped)
