"""layer_plan against the compressor itself: for random plans on the digits architecture, the
channels it says each layer keeps are the channels the compressed model has."""

import random

import pytest
import torch
from torch import nn

from autocompress import Task
from autocompress.compressors.distill import DistillConfig
from autocompress.compressors.pipeline import compress, task_context
from autocompress.plan import LayerPlan, Plan
from autocompress.reports.layer_plan import channels_from_notes, layer_plan
from autocompress.tasks.digits import DigitsResNet, digits_splits


@pytest.fixture(scope="module")
def digits_shape_task():
    """The digits task's architecture with its initial weights (the channels do not depend on training)."""
    torch.manual_seed(0)
    splits = digits_splits(0)
    return Task(name="digits-untrained", teacher=DigitsResNet().eval(), **splits,
                example_inputs=splits["val"].tensors[0][:1], blocks=("stage1.0", "stage1.1", "stage2.0", "stage2.1"))


def _out_channels(model: nn.Module) -> dict[str, int]:
    return {name: m.weight.shape[0] for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def test_kept_channels_are_what_the_compressor_keeps(digits_shape_task):
    info = task_context(digits_shape_task).discovery
    groups = {g.name: list(g.members) for g in info.groups}
    channels = {g.name: g.channels for g in info.groups}
    layers = [layer.name for layer in info.layers]
    assert groups["stem.0"] == ["stem.0", "stage1.0.conv2", "stage1.1.conv2"]  # pruned through stem.0's group
    rng = random.Random(0)
    plans = [Plan(layers={"stem.0": LayerPlan(prune=0.5)}, width=0.75)] + [
        Plan(layers={g: LayerPlan(prune=rng.choice([0.0, 0.25, 0.5, 0.7])) for g in groups},
             depth={s: rng.randint(0, len(b)) for s, b in info.stages.items()}, width=rng.choice([1.0, 0.9, 0.75, 0.5]))
        for _ in range(5)]
    for plan in plans:
        result = compress(digits_shape_task, plan, config=DistillConfig(steps=0))
        real = _out_channels(result.model)
        rows = layer_plan(plan, layers=layers, stages=info.stages, groups=groups, channels=channels)
        assert {r.name for r in rows if not r.dropped} == set(real), plan  # dropped blocks' layers are gone
        for row in rows:
            if row.dropped:
                continue
            teacher = dict(_out_channels(digits_shape_task.teacher))[row.name]
            expected = row.channels[1] if row.channels else teacher
            assert real[row.name] == expected, (plan, row)
            assert row.kept == pytest.approx(real[row.name] / teacher), (plan, row)
        # the notes the compressor writes tell the same channel counts
        assert channels_from_notes(["; ".join(result.notes)], groups).items() <= channels.items()
    first = {r.name: r for r in layer_plan(plans[0], layers=layers, stages=info.stages, groups=groups, channels=channels)}
    assert first["stage1.0.conv2"].channels == (32, 12) and first["stage1.0.conv2"].group == "stem.0"
    assert first["fc"].kept == 1.0 and first["fc"].group is None  # the output layer keeps its classes


def test_without_groups_or_channel_counts_the_plan_is_read_as_today():
    plan = Plan(layers={"a": LayerPlan(prune=0.5, bits=8), "b": LayerPlan(rank=0.25)}, width=0.5)
    rows = {r.name: r for r in layer_plan(plan, layers=["a", "b", "c"])}
    assert (rows["a"].kept, rows["a"].channels, rows["a"].bits) == (0.25, None, 8)
    assert (rows["b"].kept, rows["b"].rank, rows["c"].kept) == (1.0, 0.25, 1.0)
    assert rows["a"].to_dict()["group"] == "a"
