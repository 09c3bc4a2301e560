"""Oracle tests of the artifact: its size is the file's, ONNX Runtime computes what PyTorch
computes, and the integers really are stored at the planned width."""

import math
import os

import numpy as np
import onnx
import pytest
import torch

from autocompress import LayerPlan, Plan
from autocompress.compressors import DistillConfig, compress
from autocompress.evaluators import evaluate, export_artifact
from autocompress.evaluators.export import pack_integers
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


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_quantized_onnx_output_stays_within_quantization_error(digits_task, tmp_path, bits):
    plan = Plan(layers={n: LayerPlan(bits=bits) for n in LAYERS})
    result = compress(digits_task, plan, config=DistillConfig(steps=20))
    path = str(tmp_path / "q.onnx")
    export_artifact(result, digits_task.example_inputs, path)
    onnx_out, labels = onnx_logits(onnx_session(path), digits_task.val)
    torch_out = _torch_logits(result.model, digits_task.val)  # the fake-quantized model
    # one uint8 step of the output layer is the quantization error the two may differ by
    fc = dict(result.model.named_modules())["fc"]
    step = (float(fc.output_range[1]) - float(fc.output_range[0])) / 255
    assert np.abs(onnx_out - torch_out).max() <= 2 * step + 1e-4
    assert (onnx_out.argmax(1) == torch_out.argmax(1)).mean() > 0.97


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


def test_onnx_runtime_runs_int8_layers_as_int8_kernels(digits_task, tmp_path):
    plan = Plan(layers={n: LayerPlan(bits=8) for n in LAYERS})
    path, optimized = str(tmp_path / "q.onnx"), str(tmp_path / "optimized.onnx")
    export_artifact(compress(digits_task, plan, config=DistillConfig(steps=0)), digits_task.example_inputs, path)
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.optimized_model_filepath = optimized
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(optimized).graph.node}
    assert "QLinearConv" in ops and "Conv" not in ops


def test_pack_integers_low_bits_first():
    assert pack_integers(np.array([1, -2, 3, -1]), 2) == bytes([0b11_11_10_01])
    assert pack_integers(np.array([-8, 7]), 4) == bytes([0x78])
