"""Fine-tuning on a device: the CPU path is unchanged to the bit, the model comes back on the CPU,
and the mixed-precision forward pass (bfloat16 autocast) runs through fake-quantized layers."""

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from autocompress.compressors.distill import DistillConfig, _loss, distill, teacher_targets
from autocompress.compressors.quantize import calibrate, prepare_qat
from autocompress.task import UsageError
from autocompress.tasks.training import train_classifier


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))


def _shift(x, generator):  # an augmentation drawing from the sampling generator, like crop_and_flip
    return x + 0.1 * torch.randn(x.shape, generator=generator)


@pytest.mark.parametrize("teacher_kind", ["module", "targets"])
def test_fine_tuning_on_an_explicit_cpu_device_is_bit_identical_to_no_device(teacher_kind):
    data, teacher = _data(), _net().eval()
    config = DistillConfig(steps=6, batch_size=8, feature_weight=0.5)
    source = teacher if teacher_kind == "module" else teacher_targets(teacher, data, head="3")
    augment = _shift if teacher_kind == "module" else None
    runs = []
    for device in (None, torch.device("cpu")):
        student = _net()
        torch.manual_seed(1)  # dropout draws from torch's generator
        losses = distill(student, data, source, config, head="3", augment=augment, device=device)
        runs.append((losses, student.state_dict()))
    (first, weights), (second, again) = runs
    assert first == second
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_amp_on_the_cpu_is_refused_in_one_line_before_any_step():
    student = _net()
    before = copy.deepcopy(student.state_dict())
    with pytest.raises(UsageError) as caught:
        distill(student, _data(), _net().eval(), DistillConfig(steps=3, amp="bf16"), head="3")
    assert "--amp bf16: this trial trains on the CPU" in str(caught.value) and "\n" not in str(caught.value)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())
    with pytest.raises(ValueError, match="amp must be None or one of bf16"):
        DistillConfig(amp="fp16")


def test_a_bf16_autocast_step_runs_through_fake_quantized_layers():
    """What --amp runs on a GPU, run under the CPU's autocast: fake-quantized activations in
    bfloat16 are quantized in fp32, the loss is finite, gradients reach the fp32 weights."""
    data, teacher = _data(), _net().eval()
    student = _net()
    prepare_qat(student, {"0": 8, "3": 4})
    calibrate(student, [data.tensors[0][:32]])
    student.train()
    x, y = data.tensors[0][:16], data.tensors[1][:16]
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits = student(x)
        loss = _loss(logits, y, teacher(x), DistillConfig())
    assert logits.dtype == torch.bfloat16 and torch.isfinite(loss)
    loss.backward()
    weight = student[0].layer.weight
    assert weight.dtype == torch.float32 and weight.grad is not None and torch.isfinite(weight.grad).all()


def test_a_teacher_trained_on_an_explicit_cpu_matches_the_default_here_and_ends_on_the_cpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the default trains there (a GPU run is benchmarks/gpu.py's)")
    data = _data()
    models = [_net(), _net()]
    train_classifier(models[0], data, epochs=1, batch=16, lr=1e-2, seed=0)
    train_classifier(models[1], data, epochs=1, batch=16, lr=1e-2, seed=0, device=torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()))
    assert not models[0].training and next(models[0].parameters()).device.type == "cpu"
