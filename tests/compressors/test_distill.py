"""Fine-tuning: checkpoints continue exactly where they stopped, augmented batches reach the
teacher, the learning rate warms up then decays, and the pipeline uses the task's augmentation."""

import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from autocompress import LayerPlan, Plan, Task
from autocompress.compressors import DistillConfig, compress
from autocompress.compressors.distill import distill, learning_rate, teacher_targets
from autocompress.compressors.quantize import calibrate, prepare_qat
from autocompress.task import UsageError
from tests.fixtures.user_tasks import tiny


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g))


def _student(width=8, seed=1):
    """A small network with fake-quant layers, so buffers (observed ranges) are part of the state."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Linear(width, 3))
    prepare_qat(net, {"0": 8, "2": 8})
    calibrate(net, [_data().tensors[0][:16]])
    return net


def _teacher():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


def _same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if isinstance(a[name], dict):
            _same_tensors(a[name], b[name])
        elif isinstance(a[name], torch.Tensor):
            assert torch.equal(a[name], b[name]), name
        else:
            assert a[name] == b[name], name


# constant rate, no warm-up: the learning rate of a step does not depend on the total, so a run
# split in two must equal the run in one go bit for bit
# (and quantization-aware throughout: a float phase is a fraction of each run's own total)
FLAT = DistillConfig(steps=6, batch_size=16, lr=1e-2, schedule="constant", warmup_fraction=0.0, feature_weight=0.5,
                     float_fraction=0.0)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_a_continued_checkpoint_restores_weights_optimizer_and_rng_exactly(tmp_path, optimizer):
    config = dataclasses.replace(FLAT, optimizer=optimizer)
    whole, split = tmp_path / "whole.pt", tmp_path / "split.pt"
    losses_whole = distill(_student(), _data(), _teacher(), config, head="2", checkpoint=whole)
    first = distill(_student(), _data(), _teacher(), dataclasses.replace(config, steps=3), head="2", checkpoint=split)
    other_init = _student(seed=7)  # rebuilt by the caller, weights anything: the checkpoint's win
    losses_split = distill(other_init, _data(), _teacher(), config, head="2", checkpoint=split)
    assert losses_split[:3] == first and losses_split == losses_whole
    saved_whole = torch.load(whole, weights_only=True)
    saved_split = torch.load(split, weights_only=True)
    assert saved_whole["step"] == saved_split["step"] == 6
    for part in ("student", "projection", "optimizer"):  # tensor by tensor, optimizer moments included
        _same_tensors(saved_whole[part], saved_split[part])
    assert saved_split["optimizer"]["state"]  # the optimizer had state to restore
    assert torch.equal(saved_whole["generator"], saved_split["generator"])
    _same_tensors(other_init.state_dict(), saved_whole["student"])
    assert any(name.endswith("input_quant.range") for name in saved_whole["student"])  # fake-quant ranges travel


def test_a_checkpoint_at_the_requested_steps_is_restored_as_saved(tmp_path):
    path = tmp_path / "checkpoint.pt"
    trained = _student()
    distill(trained, _data(), _teacher(), FLAT, head="2", checkpoint=path)
    fresh = _student(seed=3)
    assert not torch.equal(fresh.state_dict()["0.layer.weight"], trained.state_dict()["0.layer.weight"])
    losses = distill(fresh, _data(), _teacher(), FLAT, head="2", checkpoint=path)
    assert len(losses) == FLAT.steps
    _same_tensors(fresh.state_dict(), trained.state_dict())


def test_training_n_then_2n_continues_the_step_count(tmp_path):
    path, steps = tmp_path / "checkpoint.pt", []
    config = DistillConfig(steps=4, batch_size=8, lr=1e-2)
    student = _student()
    distill(student, _data(), _teacher(), config, head="2", checkpoint=path, on_step=steps.append)
    losses = distill(student, _data(), _teacher(), dataclasses.replace(config, steps=8), head="2",
                     checkpoint=path, on_step=steps.append)
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8] and len(losses) == 8
    assert torch.load(path, weights_only=True)["step"] == 8


def test_a_checkpoint_of_another_structure_or_other_settings_is_refused_in_one_line(tmp_path):
    path = tmp_path / "checkpoint.pt"
    distill(_student(), _data(), _teacher(), FLAT, head="2", checkpoint=path)
    before = path.read_bytes()
    with pytest.raises(UsageError, match=r"does not fit the student \(0.layer.weight is \(8, 6\) there, "
                                         r"\(4, 6\) here\)") as error:
        distill(_student(width=4), _data(), _teacher(), dataclasses.replace(FLAT, steps=9), head="2", checkpoint=path)
    assert "\n" not in str(error.value)
    with pytest.raises(UsageError, match="fine-tuned with lr=0.01, not 0.02"):
        distill(_student(), _data(), _teacher(), dataclasses.replace(FLAT, lr=2e-2), head="2", checkpoint=path)
    with pytest.raises(UsageError, match="has 6 steps, more than steps=3"):
        distill(_student(), _data(), _teacher(), dataclasses.replace(FLAT, steps=3), head="2", checkpoint=path)
    assert path.read_bytes() == before  # refused: nothing was trained or written
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot be read"):
        distill(_student(), _data(), _teacher(), FLAT, head="2", checkpoint=path)


def _quantized_steps(student) -> list[bool]:
    """Whether each forward of ``student`` (a ``_student``) ran its weights fake-quantized."""
    seen = []
    student[0].register_forward_hook(lambda m, args, out: seen.append(m.enabled))
    return seen


def test_float_fraction_fine_tunes_in_float_then_recalibrates_and_ends_quantization_aware(tmp_path):
    config = DistillConfig(steps=10, batch_size=8, lr=1e-1, float_fraction=0.6)
    student = _student()
    stale = student[0].output_quant.range.clone()
    seen = _quantized_steps(student)
    distill(student, _data(), _teacher(), config, head="2")
    # 6 float steps, 4 calibration batches with the quantizers on, 4 quantization-aware steps
    assert seen == [False] * 6 + [True] * 4 + [True] * 4
    assert not torch.equal(student[0].output_quant.range, stale)  # observed afresh on the moved weights
    # a continued run whose new total puts the switch later goes float again, then recalibrates
    path = tmp_path / "checkpoint.pt"
    distill(_student(), _data(), _teacher(), config, head="2", checkpoint=path)
    student = _student()
    seen = _quantized_steps(student)
    distill(student, _data(), _teacher(), dataclasses.replace(config, steps=20), head="2", checkpoint=path)
    assert seen == [False] * 2 + [True] * 4 + [True] * 8


def test_a_checkpoint_saved_before_float_fraction_existed_continues_quantization_aware_only(tmp_path):
    path = tmp_path / "checkpoint.pt"
    distill(_student(), _data(), _teacher(), FLAT, head="2", checkpoint=path)
    state = torch.load(path, weights_only=True)
    del state["settings"]["float_fraction"]  # as a checkpoint of an older autocompress has it
    torch.save(state, path)
    longer = dataclasses.replace(FLAT, steps=8)
    assert len(distill(_student(), _data(), _teacher(), longer, head="2", checkpoint=path)) == 8
    with pytest.raises(UsageError, match="fine-tuned with float_fraction=0.0, not 0.5"):
        distill(_student(), _data(), _teacher(), dataclasses.replace(longer, steps=9, float_fraction=0.5), head="2",
                checkpoint=path)


def test_float_fraction_must_leave_quantization_aware_steps():
    with pytest.raises(ValueError, match=r"float_fraction must be in \[0, 1\), got 1"):
        DistillConfig(float_fraction=1)


class RecordingTeacher(nn.Module):
    """A teacher that keeps every batch it is given, and whether gradients were on."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.inputs, self.grad_enabled = [], []

    def forward(self, x):
        self.inputs.append(x.clone())
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.fc(x)


def test_augmented_batches_reach_the_teacher_under_no_grad():
    teacher, student_inputs = RecordingTeacher(), []
    student = _student()
    student.register_forward_pre_hook(lambda module, args: student_inputs.append(args[0].clone()))

    def augment(x, generator):
        return x + torch.randn(x.shape, generator=generator)

    data = _data()
    # quantization-aware throughout: no calibration forwards between the steps
    distill(student, data, teacher, DistillConfig(steps=3, batch_size=8, float_fraction=0.0), head="2", augment=augment)
    assert len(teacher.inputs) == 3 and not any(teacher.grad_enabled)
    for seen_by_teacher, seen_by_student in zip(teacher.inputs, student_inputs[-3:]):
        assert torch.equal(seen_by_teacher, seen_by_student)
        # augmented: no row is a row of the data as stored
        assert not (seen_by_teacher[:, None, :] == data.tensors[0][None]).all(-1).any()


def test_augmentation_needs_the_teacher_module_not_cached_targets():
    targets = teacher_targets(_teacher(), _data(), head="2")
    with pytest.raises(ValueError, match="augment needs the teacher module"):
        distill(_student(), _data(), targets, DistillConfig(steps=1), head="2", augment=lambda x, g: x)


def test_the_learning_rate_warms_up_then_decays():
    config = DistillConfig(lr=0.1, warmup_fraction=0.1)
    rates = [learning_rate(step, total=100, config=config) for step in range(100)]
    warmup, decay = rates[:10], rates[10:]
    assert all(a < b for a, b in zip(warmup, warmup[1:])) and warmup[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(decay[1:], decay[2:])) and decay[0] == pytest.approx(0.1)
    assert 0 < rates[-1] < 0.001
    assert rates[50] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 40 / 90)))
    constant = DistillConfig(lr=0.1, warmup_fraction=0.1, schedule="constant")
    assert [learning_rate(s, total=100, config=constant) for s in (0, 10, 99)] == pytest.approx([0.01, 0.1, 0.1])
    # a continued run follows the longer schedule from the step it reached
    assert learning_rate(100, total=200, config=config) == pytest.approx(
        0.1 * 0.5 * (1 + math.cos(math.pi * 80 / 180)))


def test_compress_fine_tunes_on_the_tasks_augmentation_when_asked(tmp_path):
    calls = []

    def augment(x, generator):
        calls.append(len(x))
        return x.flip(3)

    base = tiny()
    task = Task(name="tiny-augmented", teacher=base.teacher, train=base.train, val=base.val, test=base.test,
                example_inputs=base.example_inputs, augment=augment)
    plan = Plan(layers={"fc": LayerPlan(bits=8)})
    compress(task, plan, config=DistillConfig(steps=3, batch_size=4))
    assert calls == [4, 4, 4]
    compress(task, plan, config=DistillConfig(steps=3, batch_size=4, augment=False))
    assert calls == [4, 4, 4]
    path = tmp_path / "checkpoint.pt"
    first = compress(task, plan, config=DistillConfig(steps=2, batch_size=4), checkpoint=str(path))
    later = compress(task, plan, config=DistillConfig(steps=4, batch_size=4), checkpoint=str(path))
    assert later.losses[:2] == first.losses and len(later.losses) == 4


def test_a_task_augment_must_be_callable():
    base = tiny()
    with pytest.raises(UsageError, match="augment must be a function"):
        Task(name="t", teacher=base.teacher, train=base.train, val=base.val, test=base.test,
             example_inputs=base.example_inputs, augment="crop")


def test_per_pixel_class_logits_are_distilled_and_scored_over_their_class_dimension(tmp_path):
    """A segmentation-like output (N, C, H, W) with labels (N, H, W): classes in dimension 1, as
    PyTorch's cross-entropy takes them; the candidate learns them, the metric counts pixels."""
    from autocompress import evaluate
    from autocompress.compressors.distill import hard_label_loss
    from autocompress.task import accuracy

    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 1)).eval()
    x = torch.randn(96, 3, 8, 8)
    with torch.no_grad():
        labels = teacher(x).argmax(1)  # (N, H, W)
    assert float(hard_label_loss(teacher(x[:4]), labels[:4])) < 1.5
    assert accuracy(teacher(x).detach().numpy(), labels.numpy()) == 1.0
    data = TensorDataset(x, labels)
    task = Task(name="pixels", teacher=teacher, train=data, val=data, test=data, example_inputs=x[:1])
    plan = Plan(layers={"0": LayerPlan(prune=0.5)})
    untuned = evaluate(task, plan, out_dir=tmp_path / "0", config=DistillConfig(steps=0))
    tuned = evaluate(task, plan, out_dir=tmp_path / "60", config=DistillConfig(steps=60, lr=1e-2))
    assert 0 <= untuned.accuracy <= 1 and tuned.accuracy > untuned.accuracy
