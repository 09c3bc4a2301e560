"""The contract every compressor passes: the identity plan changes nothing, the compressed
model runs, the artifact never grows, and the plan survives JSON."""

import copy
import os

import pytest
import torch

from autocompress import LayerPlan, Plan
from autocompress.compressors import DistillConfig, compress
from autocompress.compressors.pipeline import task_context
from autocompress.evaluators import export_artifact

GROUPS = ("stem.0", "stage1.0.conv1", "stage1.1.conv1", "down.0", "stage2.0.conv1", "stage2.1.conv1")
LAYERS = GROUPS + ("stage1.0.conv2", "stage1.1.conv2", "stage2.0.conv2", "stage2.1.conv2", "fc")

PLANS = {
    "prune-l1": Plan(layers={g: LayerPlan(prune=0.5) for g in GROUPS}),
    "prune-taylor": Plan(layers={g: LayerPlan(prune=0.25) for g in GROUPS}, importance="taylor"),
    "quantize-8": Plan(layers={n: LayerPlan(bits=8) for n in LAYERS}),
    "quantize-4": Plan(layers={n: LayerPlan(bits=4) for n in LAYERS}),
    "quantize-2": Plan(layers={n: LayerPlan(bits=2) for n in LAYERS}),
    "lowrank": Plan(layers={n: LayerPlan(rank=0.5) for n in LAYERS}),
    "lowrank-tucker2": Plan(layers={n: LayerPlan(rank=0.5, decomposition="tucker2") for n in LAYERS if n != "fc"}),
    "student-depth": Plan(depth={"stage1": 1, "stage2": 0}),
    "student-width": Plan(width=0.5),
    "joint": Plan(layers={"stem.0": LayerPlan(prune=0.25, bits=8), "down.0": LayerPlan(rank=0.5, bits=4),
                          "fc": LayerPlan(bits=2, rank=0.5)}, depth={"stage2": 1}, width=0.75),
    "joint-tucker2": Plan(layers={"stage1.0.conv1": LayerPlan(prune=0.25, bits=8, rank=0.25, decomposition="tucker2"),
                                  "down.0": LayerPlan(rank=0.5, bits=4, decomposition="tucker2")}, width=0.75),
}
FAST = DistillConfig(steps=5)


def _outputs(model, x):
    with torch.no_grad():
        return model.eval()(x)


def test_identity_plan_changes_nothing(digits_task):
    x = digits_task.val.tensors[0][:64]
    before = copy.deepcopy(digits_task.teacher.state_dict())
    result = compress(digits_task, Plan(), config=DistillConfig(steps=0))
    assert torch.allclose(_outputs(result.model, x), _outputs(digits_task.teacher, x), atol=1e-4)
    after = digits_task.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "compress must not touch the teacher"


@pytest.mark.parametrize("name", sorted(PLANS))
def test_compressor_contract(digits_task, tmp_path, name):
    plan = PLANS[name]
    assert Plan.from_json(plan.to_json()) == plan
    teacher_path, path = str(tmp_path / "teacher.onnx"), str(tmp_path / "model.onnx")
    export_artifact(compress(digits_task, Plan(), config=DistillConfig(steps=0)), digits_task.example_inputs,
                    teacher_path)
    result = compress(digits_task, plan, config=FAST)
    logits = _outputs(result.model, digits_task.val.tensors[0][:8])
    assert logits.shape == (8, 10) and torch.isfinite(logits).all()
    export_artifact(result, digits_task.example_inputs, path)
    assert os.path.getsize(path) < os.path.getsize(teacher_path)


def test_each_plan_really_changes_the_model(digits_task):
    info = task_context(digits_task).discovery
    teacher_params = sum(p.numel() for p in digits_task.teacher.parameters())
    for name in ("prune-l1", "lowrank", "lowrank-tucker2", "student-depth", "student-width"):
        model = compress(digits_task, PLANS[name], config=DistillConfig(steps=0)).model
        assert sum(p.numel() for p in model.parameters()) < teacher_params * 0.8, name
    assert info.head == "fc"
