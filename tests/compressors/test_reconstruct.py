import copy

import pytest
import torch
from torch import nn

from autocompress import LayerPlan, Plan
from autocompress.compressors.fold import recalibrate_batchnorm
from autocompress.compressors.pipeline import BN_BATCHES, build
from autocompress.compressors.prune import prune_groups
from autocompress.compressors.reconstruct import consumers, reconstruct_consumers
from autocompress.model_io import forward


def _pruned_copy(task, keep):
    model = copy.deepcopy(task.teacher).eval()
    prune_groups(model, task.example_inputs, keep=keep, head="fc")
    return model


def _inputs(data, start, count):
    return torch.stack([data[i][0] for i in range(start, start + count)])


@torch.no_grad()
def _distance(model, teacher, x):
    return float((forward(model, x) - forward(teacher, x)).pow(2).mean())


def test_refitted_inner_convs_bring_held_out_outputs_closer_to_the_teacher(digits_task):
    teacher = digits_task.teacher.eval()
    model = _pruned_copy(digits_task, {"stage1.0.conv1": 0.5, "stage2.0.conv1": 0.5})
    fit = [_inputs(digits_task.train, 64 * i, 64) for i in range(4)]
    held_out = _inputs(digits_task.val, 0, 128)
    before = _distance(model, teacher, held_out)
    assert consumers(model, teacher) == ["stage1.0.conv2", "stage2.0.conv2"]
    assert reconstruct_consumers(model, teacher, fit) == ["stage1.0.conv2", "stage2.0.conv2"]
    assert _distance(model, teacher, held_out) < 0.7 * before


class _Fed(nn.Module):
    """``layer`` fed its input as it comes, or (``axis``) with its channels given twice."""

    def __init__(self, layer, axis=None):
        super().__init__()
        self.layer, self.axis = layer, axis

    def forward(self, x):
        return self.layer(x if self.axis is None else torch.cat([x, x], self.axis))


@pytest.mark.parametrize("make, shape, axis", [
    (lambda c_in: nn.Conv2d(c_in, 5, 3, stride=2, padding=2, dilation=2), (16, 3, 11, 9), 1),
    (lambda c_in: nn.Conv1d(c_in, 5, 3, stride=2, padding=1, bias=False), (16, 3, 13), 1),
    (lambda c_in: nn.Linear(c_in, 5), (16, 7, 3), -1),
])
def test_a_layer_whose_lost_inputs_were_copies_gives_the_teachers_outputs_exactly(make, shape, axis):
    """The teacher's layer reads every channel twice: the pruned one, reading each once, loses
    nothing a refit cannot put back, so every geometry (stride, padding, dilation; 1-D; a Linear
    on the last axis) must come out equal to the teacher on new inputs, not merely closer."""
    torch.manual_seed(0)
    teacher, pruned = _Fed(make(6), axis).eval(), _Fed(make(3)).eval()
    batches = [torch.randn(shape) for _ in range(3)]
    assert reconstruct_consumers(pruned, teacher, batches) == ["layer"]
    with torch.no_grad():
        x = torch.randn(shape)
        torch.testing.assert_close(pruned(x), teacher(x), atol=1e-2, rtol=0)


def test_layers_a_refit_cannot_serve_are_left_alone():
    teacher = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.Conv2d(8, 6, 1), nn.Linear(8, 3)).eval()
    pruned = nn.Sequential(nn.Conv2d(2, 8, 3, groups=2), nn.Conv2d(4, 5, 1), nn.Linear(8, 3)).eval()
    assert consumers(pruned, teacher) == []  # grouped; lost outputs too; nothing lost


class _Twice(nn.Module):
    """``cell`` called twice, ``head`` once; the teacher (``width`` 6) reads its input twice over."""

    def __init__(self, width):
        super().__init__()
        self.cell, self.head = nn.Linear(width, 6), nn.Linear(width, 6)

    def forward(self, x):
        x = torch.cat([x, x], -1) if self.cell.in_features > x.shape[-1] else x
        return self.cell(x) + self.cell(x.flip(0)) + self.head(x)


def test_a_layer_called_twice_or_with_too_few_rows_keeps_its_weights():
    teacher, pruned = _Twice(6).eval(), _Twice(3).eval()
    before = {name: p.clone() for name, p in pruned.named_parameters()}
    assert consumers(pruned, teacher) == ["cell", "head"]
    assert reconstruct_consumers(pruned, teacher, [torch.randn(4, 3)]) == []  # cell twice; head: 4 rows, 4 columns
    assert all(torch.equal(p, before[name]) for name, p in pruned.named_parameters())
    assert reconstruct_consumers(pruned, teacher, [torch.randn(64, 3) for _ in range(3)]) == ["head"]
    with pytest.raises(ValueError, match="eval mode"):
        reconstruct_consumers(pruned.train(), teacher, [torch.randn(64, 3)])


def test_a_pruned_plan_is_built_closer_to_the_teacher_than_pruning_and_statistics_alone(digits_task):
    plan = Plan(layers={"stage1.0.conv1": LayerPlan(prune=0.5), "stage2.0.conv1": LayerPlan(prune=0.5)})
    built = build(digits_task, plan)
    assert any(note.startswith("refitted stage1.0.conv2, stage2.0.conv2 ") for note in built.notes)
    alone = _pruned_copy(digits_task, {"stage1.0.conv1": 0.5, "stage2.0.conv1": 0.5})
    recalibrate_batchnorm(alone, [_inputs(digits_task.train, 64 * i, 64) for i in range(BN_BATCHES)])
    held_out = _inputs(digits_task.val, 0, 128)
    assert _distance(built.model, digits_task.teacher, held_out) < 0.7 * _distance(alone, digits_task.teacher, held_out)
    unpruned = build(digits_task, Plan(layers={"stage1.0.conv1": LayerPlan(bits=8)}))
    assert not any(note.startswith("refitted") for note in unpruned.notes)
