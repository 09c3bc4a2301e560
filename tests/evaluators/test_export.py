"""Oracle tests of the artifact: its size is the file's, ONNX Runtime computes what PyTorch
computes, and the integers really are stored at the planned width."""

import collections
import copy
import math
import os

import numpy as np
import onnx
from onnx import numpy_helper
import onnxruntime as ort
import pytest
import torch
from torch import nn

from autocompress import LayerPlan, Plan
from autocompress.compressors import DistillConfig, compress
from autocompress.evaluators.evaluate import evaluate, export_artifact
from autocompress.compressors.quantize import calibrate, freeze, prepare_qat
from autocompress.evaluators.export import export_onnx, pack_integers
from autocompress.evaluators.measure import onnx_logits, onnx_session

LAYERS = ("stem.0", "stage1.0.conv1", "stage1.0.conv2", "stage1.1.conv1", "stage1.1.conv2", "down.0",
          "stage2.0.conv1", "stage2.0.conv2", "stage2.1.conv1", "stage2.1.conv2", "fc")


def _torch_logits(model, data):
    with torch.no_grad():
        return model.eval()(data.tensors[0]).numpy()


def test_size_bytes_is_the_file_size(digits_task, tmp_path):
    metrics = evaluate(digits_task, Plan(layers={"fc": LayerPlan(bits=4)}), out_dir=tmp_path,
                       config=DistillConfig(steps=3))
    assert metrics.size_bytes == os.path.getsize(tmp_path / "model.onnx")
    assert Plan.from_json((tmp_path / "plan.json").read_text()) == Plan(layers={"fc": LayerPlan(bits=4)})
    assert metrics.latency_ms > 0 and 0 <= metrics.accuracy <= 1 and metrics.fidelity.startswith("steps=3")


@pytest.mark.parametrize("plan", [Plan(), Plan(width=0.5, depth={"stage1": 1}, layers={"fc": LayerPlan(rank=0.5)})],
                         ids=["teacher", "student-lowrank"])
def test_fp32_onnx_output_equals_pytorch(digits_task, tmp_path, plan):
    result = compress(digits_task, plan, config=DistillConfig(steps=0))
    export_artifact(result, digits_task.example_inputs, str(tmp_path / "m.onnx"))
    onnx_out, _ = onnx_logits(onnx_session(str(tmp_path / "m.onnx")), digits_task.val)
    np.testing.assert_allclose(onnx_out, _torch_logits(result.model, digits_task.val), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(onnx_out, _torch_logits(digits_task.teacher, digits_task.val), atol=1e-3) \
        if plan == Plan() else None


def _within_quantization_error(onnx_out, torch_out, head):
    """The two may differ by the rounding of int8 kernels: at most two uint8 steps of every input of
    the output layer, i.e. 2 x input scale x the largest row sum of |weights|."""
    step = head.input_quant.qparams()[0]
    bound = 2 * step * float(head.layer.weight.detach().abs().sum(1).max())
    assert np.abs(onnx_out - torch_out).max() <= bound + 1e-4
    assert (onnx_out.argmax(1) == torch_out.argmax(1)).mean() > 0.97


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_quantized_onnx_output_stays_within_quantization_error(digits_task, tmp_path, bits):
    plan = Plan(layers={n: LayerPlan(bits=bits) for n in LAYERS})
    result = compress(digits_task, plan, config=DistillConfig(steps=20))
    path = str(tmp_path / "q.onnx")
    export_artifact(result, digits_task.example_inputs, path)
    onnx_out, labels = onnx_logits(onnx_session(path), digits_task.val)
    torch_out = _torch_logits(result.model, digits_task.val)  # the fake-quantized model
    _within_quantization_error(onnx_out, torch_out, dict(result.model.named_modules())["fc"])


@pytest.mark.parametrize("kernels", ["int8", "float"])
def test_int8_weights_on_int8_kernels_keep_seven_bits_so_avx2_cannot_saturate(digits_task, tmp_path, kernels):
    """uint8 x int8 products added in pairs in int16 (AVX2 without VNNI) stay below 32,767 only for
    weights within -63..63; on float kernels nothing saturates and the weights keep their 8 bits."""
    plan = Plan(layers={n: LayerPlan(bits=8) for n in LAYERS}, kernels=kernels)
    path = str(tmp_path / "q.onnx")
    export_artifact(compress(digits_task, plan, config=DistillConfig(steps=0)), digits_task.example_inputs, path)
    stored = {t.name: t for t in onnx.load(path).graph.initializer}
    largest = max(int(np.abs(numpy_helper.to_array(stored[f"{n}.weight_quantized"]).astype(int)).max()) for n in LAYERS)
    assert largest == (63 if kernels == "int8" else 127)  # 2 x 255 x 63 = 32,130 <= 32,767


@pytest.mark.parametrize("bits,data_type", [(8, onnx.TensorProto.INT8), (4, onnx.TensorProto.INT4),
                                            (2, onnx.TensorProto.INT2)])
def test_weights_are_stored_at_the_planned_width(digits_task, tmp_path, bits, data_type):
    plan = Plan(layers={"stage2.0.conv1": LayerPlan(bits=bits)})
    path = str(tmp_path / "q.onnx")
    export_artifact(compress(digits_task, plan, config=DistillConfig(steps=0)), digits_task.example_inputs, path)
    model = onnx.load(path)
    stored = {t.name: t for t in model.graph.initializer}
    weight = stored["stage2.0.conv1.weight_quantized"]
    assert weight.data_type == data_type and list(weight.dims) == [64, 64, 3, 3]
    assert len(weight.raw_data) == math.ceil(64 * 64 * 9 * bits / 8)
    assert "stage2.0.conv1.weight" not in stored  # no float copy left behind
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {25 if bits == 2 else 21}


def _optimized_graph(path, tmp_path) -> onnx.GraphProto:
    """The graph ONNX Runtime runs (all optimizations, as the latency is measured)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return onnx.load(str(tmp_path / "optimized.onnx")).graph


def _fed_by(graph: onnx.GraphProto) -> dict[str, list[str]]:
    """op type -> the op types that produce its first input (graph inputs as 'input')."""
    made_by = {out: node.op_type for node in graph.node for out in node.output}
    fed = {}
    for node in graph.node:
        fed.setdefault(node.op_type, []).append(made_by.get(node.input[0], "input"))
    return fed


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_quantized_chain_runs_int8_kernels_without_dequantizing_between_layers(digits_task, tmp_path, bits):
    """conv1 -> relu -> conv2 is QLinearConv -> QLinearConv, a residual Add of two int8 tensors
    is QLinearAdd; low-bit weights (stored at 4/2 bits) run the same int8 kernels."""
    plan = Plan(layers={n: LayerPlan(bits=bits) for n in LAYERS})
    path = str(tmp_path / "q.onnx")
    export_artifact(compress(digits_task, plan, config=DistillConfig(steps=0)), digits_task.example_inputs, path)
    graph = _optimized_graph(path, tmp_path)
    ops = collections.Counter(n.op_type for n in graph.node)
    assert ops["QLinearConv"] == 10 and ops["Conv"] == 0 and ops["QLinearAdd"] >= 3 and ops["QGemm"] == 1
    assert ops["Cast"] == 0  # the low-bit weights were widened once, at load
    fed = _fed_by(graph)
    # no DequantizeLinear -> QuantizeLinear pair left anywhere, and no dequantized input into an int8 kernel
    assert "DequantizeLinear" not in fed.get("QuantizeLinear", [])
    assert not {"DequantizeLinear", "Relu"} & set(fed["QLinearConv"] + fed["QLinearAdd"])
    assert fed["QLinearConv"].count("QLinearConv") >= 4  # each block's conv1 feeds its conv2 in int8
    assert ops["DequantizeLinear"] <= 2  # only where the int8 chain ends
    stored = {t.name: t for t in onnx.load(path).graph.initializer}
    assert stored["stage1.0.conv1.weight_quantized"].data_type == {8: onnx.TensorProto.INT8,
                                                                   4: onnx.TensorProto.INT4,
                                                                   2: onnx.TensorProto.INT2}[bits]
    # the file's bytes are its weights: no node names, no exporter's long tensor names, no Constant nodes
    model = onnx.load(path)
    named = {v.name for v in model.graph.input} | {v.name for v in model.graph.output} | set(stored)
    intermediate = {name for n in model.graph.node for name in [*n.input, *n.output] if name not in named}
    assert all(not n.name for n in model.graph.node) and "Constant" not in {n.op_type for n in model.graph.node}
    assert intermediate and max(map(len, intermediate)) <= 3


class _LeNetLike(nn.Module):
    """No BatchNorm, so no fx: the quantizers are placed by following torch.relu, max-pooling and flatten."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 5), nn.Conv2d(8, 16, 5)
        self.fc1, self.fc2 = nn.Linear(16 * 4 * 4, 32), nn.Linear(32, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _quantized_lenet(tmp_path, bits: int, *, kernels: str = "int8"):
    """A LeNet-like model quantized at ``bits`` (its last layer at 8), calibrated, exported:
    (the fake-quantized model, its outputs on 64 inputs, the file's outputs, the file's path);
    the float model's own file is teacher.onnx beside it."""
    torch.manual_seed(0)
    model, x = _LeNetLike().eval(), torch.randn(64, 1, 28, 28)
    export_onnx(copy.deepcopy(model), x[:1], str(tmp_path / "teacher.onnx"))
    prepare_qat(model, {"conv1": bits, "conv2": bits, "fc1": bits, "fc2": 8}, kernels=kernels)
    calibrate(model, [x])
    expected = _torch_logits(model, torch.utils.data.TensorDataset(x))
    frozen, specs = freeze(copy.deepcopy(model))
    path = str(tmp_path / "lenet.onnx")
    export_onnx(frozen, x[:1], path, specs)
    return model, expected, onnx_session(path).run(None, {"input": x.numpy()})[0], path


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_plain_module_export_matches_fake_quant_model_and_stays_int8(tmp_path, bits):
    model, expected, got, path = _quantized_lenet(tmp_path, bits)
    _within_quantization_error(got, expected, model.fc2)
    ops = collections.Counter(n.op_type for n in _optimized_graph(path, tmp_path).node)
    assert ops["QLinearConv"] == 2 and ops["Conv"] == 0 and ops["QGemm"] == 2 and ops["Relu"] == 0
    assert ops["DequantizeLinear"] == 0 and ops["QuantizeLinear"] == 1  # the input, once
    weight = {t.name: t for t in onnx.load(path).graph.initializer}["conv2.weight_quantized"]
    assert len(weight.raw_data) == math.ceil(16 * 8 * 5 * 5 * bits / 8)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_weights_on_float_kernels_are_stored_at_their_width_and_run_the_float_kernels(tmp_path, bits):
    """Plan.kernels "float": the file holds the integers (bits a weight) and no activation
    quantizer; ONNX Runtime widens them once, at load, so the graph it runs is the teacher's
    (float Conv and Gemm, nothing dequantized per inference), and the output is the
    weight-quantized model's."""
    _, expected, got, path = _quantized_lenet(tmp_path, bits, kernels="float")
    teacher_path = str(tmp_path / "teacher.onnx")
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    stored = collections.Counter(n.op_type for n in onnx.load(path).graph.node)
    assert stored["QuantizeLinear"] == 0 and stored["DequantizeLinear"] == 0
    ran = collections.Counter(n.op_type for n in _optimized_graph(path, tmp_path).node)
    teacher_ran = collections.Counter(n.op_type for n in _optimized_graph(teacher_path, tmp_path).node)
    assert ran == teacher_ran and ran["Conv"] == 2 and ran["Cast"] == ran["Mul"] == 0
    weight = {t.name: t for t in onnx.load(path).graph.initializer}["conv2.weight_quantized"]
    assert len(weight.raw_data) == math.ceil(16 * 8 * 5 * 5 * bits / 8)
    assert os.path.getsize(path) < os.path.getsize(teacher_path) * (bits + 2) / 32


def test_pack_integers_low_bits_first():
    assert pack_integers(np.array([1, -2, 3, -1]), 2) == bytes([0b11_11_10_01])
    assert pack_integers(np.array([-8, 7]), 4) == bytes([0x78])


class _TinyText(nn.Module):
    """Token and position embeddings (the positions looked up by a Range the graph computes), mean, head."""

    def __init__(self):
        super().__init__()
        self.tokens, self.positions, self.head = nn.Embedding(300, 16), nn.Embedding(12, 16), nn.Linear(16, 2)

    def forward(self, ids):
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
        return self.head(torch.tanh(x).mean(1))


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_an_embedding_is_stored_at_its_width_and_only_the_rows_looked_up_are_dequantized(tmp_path, bits):
    torch.manual_seed(0)
    model, ids = _TinyText().eval(), torch.randint(0, 300, (32, 12))
    prepare_qat(model, {"tokens": bits, "positions": bits})
    calibrate(model, [ids])
    with torch.no_grad():
        expected = model(ids).numpy()
    frozen, specs = freeze(copy.deepcopy(model))
    path = str(tmp_path / "text.onnx")
    export_onnx(frozen, ids[:1], path, specs)
    np.testing.assert_allclose(onnx_session(path).run(None, {"input": ids.numpy()})[0], expected, atol=1e-5)
    stored = {t.name: t for t in onnx.load(path).graph.initializer}
    assert len(stored["tokens.weight_quantized"].raw_data) == math.ceil(300 * 16 * bits / 8)
    assert not [t for t in stored.values() if t.data_type == onnx.TensorProto.FLOAT and tuple(t.dims) == (300, 16)]
    assert 300 * 16 * bits / 8 + 300 * 4 < os.path.getsize(path) < 300 * 16 * bits / 8 + 300 * 4 + 4000
    ran = _optimized_graph(path, tmp_path)
    assert not [n for n in ran.node if n.op_type == "DequantizeLinear"]  # no float copy of a table, at load or per run
    int8_table = {t.name for t in ran.initializer
                  if t.data_type == onnx.TensorProto.INT8 and tuple(t.dims) == (300, 16)}
    assert [n for n in ran.node if n.op_type == "Gather" and n.input[0] in int8_table]  # 4 and 2 bits: widened at load


class _InvertedResidual(nn.Module):
    """As torchvision writes it: BatchNorm, ReLU6 and ReLU applied in place, the residual added in place."""

    def __init__(self, channels: int = 16):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(channels, 4 * channels, 1, bias=False), nn.BatchNorm2d(4 * channels),
                                    nn.ReLU6(inplace=True))
        self.depthwise = nn.Sequential(nn.Conv2d(4 * channels, 4 * channels, 3, padding=1, groups=4 * channels,
                                                 bias=False), nn.BatchNorm2d(4 * channels), nn.ReLU6(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(4 * channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        out += x
        return self.relu(out)


class _MobileLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(inplace=True))
        self.blocks = nn.Sequential(_InvertedResidual(), _InvertedResidual())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def test_in_place_activations_relu6_and_residuals_chain_int8_kernels(tmp_path):
    """torchvision's in-place ReLU6/ReLU and ``out += x``: each quantizer sits where the activation's
    result is (capped at 6 before a ReLU6), so every convolution runs as QLinearConv with no Clip,
    Relu or dequantized tensor between them, and ONNX Runtime computes what the model computes."""
    from autocompress import Task

    torch.manual_seed(0)
    model = _MobileLike().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    x = torch.randn(64, 3, 12, 12) * 2
    data = torch.utils.data.TensorDataset(x, torch.arange(64) % 10)
    task = Task(name="mobile-like", teacher=model, train=data, val=data, test=data, example_inputs=x[:1])
    assert not any(getattr(m, "inplace", False) for m in task.teacher.modules())  # made out-of-place, checked
    layers = [n for n, m in task.teacher.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    result = compress(task, Plan(layers={n: LayerPlan(bits=8) for n in layers}), config=DistillConfig(steps=0))
    quants = [q for q in result.model.modules() if type(q).__name__ == "ActivationQuant"]
    assert sum(q.upper == 6.0 for q in quants) == 5  # stem, and each block's expand and depthwise
    path = str(tmp_path / "q.onnx")
    export_artifact(result, task.example_inputs, path)
    graph = _optimized_graph(path, tmp_path)
    ops = collections.Counter(n.op_type for n in graph.node)
    assert ops["QLinearConv"] == 7 and ops["Conv"] == 0 and ops["QLinearAdd"] == 1  # the last feeds a mean
    fed = _fed_by(graph)
    assert not {"DequantizeLinear", "Relu", "Clip"} & set(fed["QLinearConv"] + fed["QLinearAdd"])
    onnx_out, _ = onnx_logits(onnx_session(path), data)
    _within_quantization_error(onnx_out, _torch_logits(result.model, data), dict(result.model.named_modules())["head"])


@pytest.mark.parametrize("damage", ["garbled", "missing"])
def test_a_promotion_whose_checkpoint_is_garbled_or_missing_fine_tunes_from_the_start_and_says_so(
        digits_task, tmp_path, damage):
    """A promoted trial continues its rung-below checkpoint; with that state gone it cannot have
    continued it: it fine-tunes all its steps from the start, and its notes say which and why."""
    plan = Plan(layers={"fc": LayerPlan(bits=8)})
    below = tmp_path / "below" / "checkpoint.pt"
    below.parent.mkdir()
    if damage == "garbled":
        below.write_bytes(b"PK\x03\x04 not a checkpoint at all")
    metrics = evaluate(digits_task, plan, out_dir=tmp_path / "promoted", config=DistillConfig(steps=3),
                       checkpoint=True, continue_from=below)
    assert "fine-tuned from the start, not continued: checkpoint" in metrics.notes
    assert ("is missing" if damage == "missing" else "cannot be read") in metrics.notes
    assert metrics.steps == 3 and (tmp_path / "promoted" / "checkpoint.pt").is_file()
