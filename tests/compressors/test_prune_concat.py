"""Pruning through concatenations: the branch that made a channel loses it, the layers reading the
concatenation lose that input at its offset, and the pruned model runs the same in ONNX Runtime."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from autocompress import LayerPlan, Plan
from autocompress.compressors import DistillConfig, compress
from autocompress.compressors.prune import prune_groups
from autocompress.evaluators.evaluate import evaluate
from autocompress.evaluators.measure import onnx_logits, onnx_session
from autocompress.spaces.layers import discover
from tests.fixtures.concat_tasks import PaddedShortcutNet, two_branch

CONCAT_GROUPS = {"left.0": 0.5, "right.0": 0.5, "mix.0": 0.5}


def _rows_kept(pruned: nn.Conv2d, original: nn.Conv2d) -> list[int]:
    """Which output channels of ``original`` the pruned layer kept, found by their bias (a filter's
    weights lose the inputs pruned upstream; its bias is its own)."""
    return [next(i for i in range(original.out_channels) if original.bias[i] == b) for b in pruned.bias]


@pytest.fixture(scope="module")
def task():
    return two_branch()


def _pruned(task, keep):
    model = copy.deepcopy(task.teacher)
    info = discover(copy.deepcopy(task.teacher), task.example_inputs)
    changed = prune_groups(model, task.example_inputs, keep=keep, head=info.head,
                           group_of={m: g.name for g in info.groups for m in g.members})
    return model, changed


def test_the_consumer_loses_exactly_the_pruned_branch_channels_at_their_offsets(task):
    model, changed = _pruned(task, CONCAT_GROUPS)
    assert changed == {"left.0": (8, 4), "right.0": (4, 2), "mix.0": (16, 8)}
    new, old = dict(model.named_modules()), dict(task.teacher.named_modules())
    left, right, mix, wide, narrow = (_rows_kept(new[f"{n}.0"], old[f"{n}.0"])
                                      for n in ("left", "right", "mix", "wide", "narrow"))
    # mix reads cat([left (channels 0-7), right (channels 8-11)])
    assert torch.equal(new["mix.0"].weight, old["mix.0"].weight[mix][:, left + [8 + i for i in right]])
    # the sum mix + cat([wide (0-9), narrow (10-15)]): each kept channel of mix keeps its branch's twin
    assert mix == wide + [10 + i for i in narrow]
    assert torch.equal(new["fc"].weight, old["fc"].weight[:, mix])
    assert torch.equal(new["wide.0"].weight, old["wide.0"].weight[wide][:, mix])


def test_the_pruned_model_computes_what_the_teacher_computes_with_those_channels_silenced(task):
    """Oracle: silencing the dropped channels in the teacher (their BatchNorm scale and shift set
    to 0, so they are 0 after ReLU) gives the pruned model's outputs."""
    model, _ = _pruned(task, CONCAT_GROUPS)
    silenced = copy.deepcopy(task.teacher)
    new, old = dict(model.named_modules()), dict(silenced.named_modules())
    for name in ("left", "right", "mix", "wide", "narrow"):
        kept = _rows_kept(new[f"{name}.0"], old[f"{name}.0"])
        dropped = sorted(set(range(old[f"{name}.0"].out_channels)) - set(kept))
        with torch.no_grad():
            old[f"{name}.1"].weight[dropped] = 0
            old[f"{name}.1"].bias[dropped] = 0
    x = task.val.tensors[0]
    with torch.no_grad():
        torch.testing.assert_close(model(x), silenced(x), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(silenced(x), task.teacher(x), atol=1e-3)  # the silencing did something


def test_every_concatenated_branch_keeps_a_channel(task):
    model, changed = _pruned(task, {"mix.0": 1 / 16})
    modules = dict(model.named_modules())
    assert changed == {"mix.0": (16, 2)}  # one channel asked for; two branches each keep one
    assert modules["wide.0"].out_channels == 1 and modules["narrow.0"].out_channels == 1
    assert modules["mix.0"].out_channels == 2 and modules["fc"].in_features == 2


def test_a_refused_group_is_not_pruned_even_when_a_plan_names_it():
    model = PaddedShortcutNet().eval()
    before = copy.deepcopy(model)
    changed = prune_groups(model, torch.rand(1, 1, 8, 8), keep={"conv2": 0.5, "stem.0": 0.5, "conv1.0": 0.5},
                           head="fc")
    assert changed == {"conv1.0": (16, 8)}
    assert model.conv2.out_channels == 16 and model.stem[0].out_channels == before.stem[0].out_channels


@pytest.mark.parametrize("bits", [None, 8], ids=["float", "int8"])
def test_the_exported_onnx_of_a_concat_pruned_plan_runs_and_matches_torch(task, tmp_path, bits):
    info = discover(copy.deepcopy(task.teacher), task.example_inputs)
    layers = {layer.name: LayerPlan(prune=CONCAT_GROUPS.get(layer.name, 0.0), bits=bits) for layer in info.layers}
    plan = Plan(layers=layers)
    metrics = evaluate(task, plan, out_dir=tmp_path, config=DistillConfig(steps=0))
    teacher_params = sum(p.numel() for p in task.teacher.parameters())
    assert metrics.params < teacher_params * 0.5 and "pruned mix.0 16->8" in metrics.notes
    onnx_out, _ = onnx_logits(onnx_session(str(tmp_path / "model.onnx")), task.val)
    model = compress(task, plan, config=DistillConfig(steps=0)).model  # the same candidate, in torch
    with torch.no_grad():
        torch_out = model(task.val.tensors[0]).numpy()
    if bits is None:
        np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4, rtol=1e-4)
    else:  # int8 kernels against fake quantization: within a few output steps, same decisions
        fc = dict(model.named_modules())["fc"]  # the head: int8 input, float output
        bound = 2 * fc.input_quant.qparams()[0] * float(fc.layer.weight.detach().abs().sum(1).max())
        assert np.abs(onnx_out - torch_out).max() <= bound + 1e-4
        assert (onnx_out.argmax(1) == torch_out.argmax(1)).mean() > 0.9
