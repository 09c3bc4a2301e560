"""Fine-tuning by knowledge distillation from the teacher.

Loss = alpha * T^2 * KL(teacher soft targets || student) at temperature T
     + (1 - alpha) * cross-entropy with the hard labels
     + feature_weight * MSE(projection(student features), teacher features),
where "features" are the inputs of the output layer and the projection is a learned Linear
(discarded after training).

Teacher outputs come either from a cache computed once per task on unaugmented data
(``TeacherTargets``), or, when the batches are augmented (``augment``, the task's own
augmentation), from the teacher module run under ``no_grad`` on the very batch the student sees.

Learning rate (``learning_rate``): linear warm-up over the first ``warmup_fraction`` of the
steps, then cosine decay towards 0 (``schedule="cosine"``) or constant (``"constant"``); it is
a function of (step, total steps) only.

Device: ``distill(..., device=torch.device("cuda", 0))`` trains there (batches are drawn and
augmented on the CPU, with the same generator, then moved) and moves the student back to the CPU
at the end, ready for export; a teacher module must be on that device already, its
``TeacherTargets`` may be on either (``pipeline.fine_tune`` places both).
``DistillConfig(amp="bf16")`` runs the forward passes under bfloat16 autocast, on a GPU only
(``devices.amp_dtype``). Without ``device`` nothing moves: the CPU path is the one it always was.

Checkpoints: ``distill(..., checkpoint=path)`` saves the student's state dict (every buffer,
fake-quant ranges included), the optimizer's state, the step reached, the sampling RNG and
torch's RNG to ``path`` when it ends; given a ``path`` that exists, it first restores all of
that and continues to ``config.steps`` instead of starting again. When the total grows (200,
then 400 steps), the continued steps follow the learning rate of the new total from the step
reached: step 200 of a 400-step schedule, i.e. the rate rises back to where a 400-step run
would be at step 200 and decays to 0 by step 400. Only ``steps`` may differ from the
settings that made the checkpoint.

Example:
    >>> import os, tempfile
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import TensorDataset
    >>> x, y = torch.randn(32, 4), torch.arange(32) % 2
    >>> teacher = nn.Linear(4, 2)
    >>> targets = teacher_targets(teacher, TensorDataset(x, y), head="")
    >>> losses = distill(nn.Linear(4, 2), TensorDataset(x, y), targets, DistillConfig(steps=3), head="")
    >>> len(losses)
    3
    >>> path, student = os.path.join(tempfile.mkdtemp(), "checkpoint.pt"), nn.Linear(4, 2)
    >>> first = distill(student, TensorDataset(x, y), teacher, DistillConfig(steps=2), head="", checkpoint=path)
    >>> later = distill(student, TensorDataset(x, y), teacher, DistillConfig(steps=5), head="", checkpoint=path)
    >>> len(later), later[:2] == first   # three more steps, after the two it had
    (5, True)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from autocompress import model_io
from autocompress.model_io import forward
from autocompress.compressors.distill_checkpoint import TrainingState
from autocompress.compressors.quantize import calibrate, set_fake_quant
from autocompress.devices import AMP_MODES, amp_dtype, autocast

DEFAULT_LR = 2e-3
SWITCH_CALIBRATION_BATCHES = 4  # training batches that set the ranges when quantization switches on
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "constant")

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """How a candidate is fine-tuned. ``steps`` = 0 means post-training (calibration only).

    lr: peak learning rate; None: the task's ``distill_lr`` (pretrained networks want a
        smaller one), else DEFAULT_LR.
    optimizer: "adamw" (decoupled weight decay) or "sgd" (Nesterov momentum 0.9).
    weight_decay: of every parameter.
    schedule: "cosine" (decay to 0) or "constant", after a linear warm-up over
        ``warmup_fraction`` of the steps.
    augment: use the task's training augmentation (``Task.augment``) where it has one; the
        teacher then runs on every augmented batch.
    amp: None (full precision) or "bf16": forward passes under bfloat16 autocast, on a GPU.
    float_fraction: the first part of the steps fine-tunes a quantized student in float (its fake
        quantizers off: a step costs about half), then its ranges are calibrated afresh and
        quantization-aware fine-tuning takes the rest (0: quantization-aware throughout). 0.7 by
        default: on the CIFAR recipe it ended 0.5 and 1.1 test points closer to the teacher at
        about equal wall time (benchmarks/results/recipe-float-first.md); on digits, equal at
        equal steps in a third less time.
    """

    steps: int = 300
    batch_size: int = 64
    lr: float | None = None
    temperature: float = 4.0
    alpha: float = 0.7
    feature_weight: float = 0.0
    data_fraction: float = 1.0
    seed: int = 0
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_fraction: float = 0.05
    augment: bool = True
    amp: str | None = None
    float_fraction: float = 0.7

    def __post_init__(self):
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")
        if not 0 < self.data_fraction <= 1 or not 0 <= self.alpha <= 1 or self.temperature <= 0:
            raise ValueError("need 0 < data_fraction <= 1, 0 <= alpha <= 1, temperature > 0")
        if self.optimizer not in OPTIMIZERS or self.schedule not in SCHEDULES:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)} and schedule one of "
                             f"{', '.join(SCHEDULES)}, got {self.optimizer!r} and {self.schedule!r}")
        if not 0 <= self.warmup_fraction < 1 or not self.weight_decay >= 0:
            raise ValueError(f"need 0 <= warmup_fraction < 1 and weight_decay >= 0, got "
                             f"{self.warmup_fraction} and {self.weight_decay}")
        if not 0 <= self.float_fraction < 1:
            raise ValueError(f"float_fraction must be in [0, 1), got {self.float_fraction}")
        if self.amp is not None and self.amp not in AMP_MODES:
            raise ValueError(f"amp must be None or one of {', '.join(AMP_MODES)}, got {self.amp!r}")


@dataclass(frozen=True)
class TeacherTargets:
    logits: torch.Tensor  # (N, classes) on the train split
    features: torch.Tensor  # (N, features): inputs of the output layer


def learning_rate(step: int, *, total: int, config: DistillConfig) -> float:
    """The learning rate of step ``step`` (0-based) of a ``total``-step fine-tuning.

    >>> config = DistillConfig(lr=1.0, warmup_fraction=0.25)
    >>> [round(learning_rate(s, total=8, config=config), 3) for s in range(8)]
    [0.5, 1.0, 1.0, 0.933, 0.75, 0.5, 0.25, 0.067]
    """
    peak = config.lr or DEFAULT_LR
    warmup = math.ceil(config.warmup_fraction * total)
    if step < warmup:
        return peak * (step + 1) / warmup
    if config.schedule == "constant":
        return peak
    progress = (step - warmup) / max(total - warmup, 1)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def _capture_head_input(model: nn.Module, head: str, store: list):
    module = model.get_submodule(head) if head else model
    return module.register_forward_pre_hook(lambda mod, args: store.append(args[0].flatten(1)))


@torch.no_grad()
def teacher_targets(teacher: nn.Module, train: Dataset, *, head: str, batch_size: int = 512,
                    device: torch.device | None = None) -> TeacherTargets:
    """The teacher's logits and features on every training example, in order; with ``device``
    (where ``teacher`` already is), computed and kept there."""
    teacher.eval()
    logits, features = [], []
    hook = _capture_head_input(teacher, head, features)
    try:
        for x, _ in DataLoader(train, batch_size=batch_size):
            logits.append(forward(teacher, model_io.to(x, device)))
    finally:
        hook.remove()
    return TeacherTargets(torch.cat(logits), torch.cat(features))


def _batch(data: Dataset, idx: torch.Tensor) -> tuple[model_io.Inputs, torch.Tensor]:
    if isinstance(data, TensorDataset):
        return data.tensors[0][idx], data.tensors[1][idx]
    if isinstance(data, model_io.Examples):
        return model_io.rows(data.inputs, idx), data.labels[idx]
    x, y = zip(*(data[int(i)] for i in idx))
    return model_io.collate(list(x)), torch.as_tensor(np.asarray(y)) if not isinstance(y[0], torch.Tensor) \
        else torch.stack(y)


class _Teacher:
    """Soft targets and features of a batch: looked up in the cache, or the teacher run on it."""

    def __init__(self, teacher: nn.Module | TeacherTargets, head: str, *, features: bool):
        self.teacher, self.store = teacher, []
        self.hook = None
        if isinstance(teacher, nn.Module):
            teacher.eval()
            if features:
                self.hook = _capture_head_input(teacher, head, self.store)

    @torch.no_grad()
    def __call__(self, idx: torch.Tensor, x: model_io.Inputs) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(self.teacher, TeacherTargets):  # to the batch's device (no copy where it is already)
            device = model_io.tensors(x)[0].device
            return self.teacher.logits[idx].to(device), self.teacher.features[idx].to(device)
        self.store.clear()
        logits = forward(self.teacher, x)
        return logits, (self.store[-1] if self.store else None)

    def close(self) -> None:
        if self.hook is not None:
            self.hook.remove()


def _optimizer(params: list, config: DistillConfig) -> torch.optim.Optimizer:
    lr = config.lr or DEFAULT_LR
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)


def _projection(student: nn.Module, teacher: _Teacher, sample: model_io.Inputs, features: list) -> nn.Linear:
    """The learned map from the student's features to the teacher's (sizes from one example)."""
    with torch.no_grad():
        features.clear()
        student.eval()
        model_io.call(student, sample)
        _, target = teacher(torch.zeros(1, dtype=torch.long), sample)
    return nn.Linear(features[-1].shape[1], target.shape[1])


def is_classification(labels: torch.Tensor) -> bool:
    """Integer labels are classes (the outputs are class logits); floating-point labels are
    targets the outputs regress."""
    return not torch.is_floating_point(labels)


def hard_label_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits (``model_io.class_axis``) against integer labels; the mean
    squared error of the outputs against floating-point targets (regression)."""
    if is_classification(labels):  # classes last ((N, C), (N, tokens, C)) or in dimension 1 (N, C, H, W)
        axis = model_io.class_axis(outputs.shape, labels.shape)
        return nn.functional.cross_entropy(outputs.movedim(axis, 1) if outputs.dim() > 2 else outputs, labels)
    return nn.functional.mse_loss(outputs, labels.reshape(outputs.shape).to(outputs.dtype))


def _loss(logits, y, teacher_logits, config: DistillConfig, projected=None, teacher_features=None):
    """alpha x the distance to the teacher's outputs + (1 - alpha) x ``hard_label_loss``: the
    KL divergence of softened class distributions for classes, the mean squared error of the
    outputs for regression."""
    t = config.temperature
    if is_classification(y):
        axis = model_io.class_axis(logits.shape, y.shape)
        soft = nn.functional.kl_div(nn.functional.log_softmax(logits / t, dim=axis),
                                    nn.functional.log_softmax(teacher_logits / t, dim=axis),
                                    log_target=True, reduction="sum") * t * t / (logits.numel() / logits.shape[axis])
    else:
        soft = nn.functional.mse_loss(logits, teacher_logits.to(logits.dtype))
    loss = config.alpha * soft + (1 - config.alpha) * hard_label_loss(logits, y)
    if projected is not None:
        loss = loss + config.feature_weight * nn.functional.mse_loss(projected, teacher_features)
    return loss


def distill(student: nn.Module, train: Dataset, teacher: nn.Module | TeacherTargets, config: DistillConfig, *,
            head: str, on_step: Callable[[int], None] | None = None, augment: Augment | None = None,
            checkpoint: str | os.PathLike | None = None, device: torch.device | None = None) -> list[float]:
    """Fine-tune ``student`` in place to ``config.steps`` steps; returns the loss of every step
    (those of a restored checkpoint first). NaN loss raises.

    teacher: the teacher module (run on every batch), or its cached ``TeacherTargets``.
    augment: ``augment(batch, generator)`` applied to every training batch; needs the module.
    on_step: ``on_step(step)`` after every step (a Ray trial reports progress and yields the
        CPU to latency measurements from there).
    checkpoint: a file to continue from if it exists, and to save the state to at the end.
    device: train there, then move the student back to the CPU (None: where it is, no moves).
    """
    if augment is not None and isinstance(teacher, TeacherTargets):
        raise ValueError("augment needs the teacher module (cached teacher targets are of unaugmented data); "
                         "pass teacher=the module")
    dtype = amp_dtype(config.amp, device or _device_of(student))
    if device is not None:
        student.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    n = len(train)
    subset = torch.randperm(n, generator=generator)[: max(config.batch_size, math.ceil(n * config.data_fraction))]
    source = _Teacher(teacher, head, features=bool(config.feature_weight))
    features: list[torch.Tensor] = []
    hook = _capture_head_input(student, head, features) if config.feature_weight else None
    try:
        sample = model_io.collate([train[int(subset[0])][0]])
        projection = _projection(student, source, _to(sample, device), features) if hook else None
        if projection is not None and device is not None:
            projection.to(device)
        params = list(student.parameters()) + (list(projection.parameters()) if projection is not None else [])
        state = TrainingState(student, projection, _optimizer(params, config), generator, [])
        path = Path(checkpoint) if checkpoint is not None else None
        if path is not None and path.exists():
            state.restore(path, config)
        start = len(state.losses)
        _train(state, train, subset, source, config, features, augment, on_step, device=device, dtype=dtype)
        if path is not None and (len(state.losses) > start or not path.exists()):
            state.save(path, config)
    finally:
        source.close()
        if hook is not None:
            hook.remove()
        if device is not None:
            student.to("cpu")
        student.eval()
    return state.losses


def _quantize_from_here(student: nn.Module, train: Dataset, subset: torch.Tensor, config: DistillConfig,
                        device: torch.device | None) -> None:
    """Switch the fake quantizers back on after float fine-tuning and observe their ranges afresh on
    a few training batches (drawn with a generator of their own: the sampling is not changed)."""
    generator = torch.Generator().manual_seed(config.seed + 1)
    draws = [subset[torch.randint(len(subset), (config.batch_size,), generator=generator)]
             for _ in range(SWITCH_CALIBRATION_BATCHES)]
    set_fake_quant(student, True)
    calibrate(student, [_to(_batch(train, idx)[0], device) for idx in draws], fresh=True)
    student.train()


def _device_of(module: nn.Module) -> torch.device:
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def _to(x, device: torch.device | None):
    return model_io.to(x, device) if not isinstance(x, torch.Tensor) else x if device is None else x.to(device)


def _train(state: TrainingState, train: Dataset, subset: torch.Tensor, teacher: _Teacher, config: DistillConfig,
           features: list, augment: Augment | None, on_step: Callable[[int], None] | None, *,
           device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
    state.student.train()
    switch = math.floor(config.float_fraction * config.steps)
    floating = len(state.losses) < switch and set_fake_quant(state.student, False)
    for step in range(len(state.losses), config.steps):
        if floating and step == switch:
            _quantize_from_here(state.student, train, subset, config, device)
            floating = False
        idx = subset[torch.randint(len(subset), (config.batch_size,), generator=state.generator)]
        x, y = _batch(train, idx)
        if augment is not None:  # on the CPU, with the sampling generator: the same batches on every device
            x = augment(x, state.generator)
        x, y = _to(x, device), _to(y, device)
        with autocast(y.device, dtype):
            teacher_logits, teacher_features = teacher(idx, x)
            features.clear()
            logits = forward(state.student, x)
            projected = state.projection(features[-1]) if state.projection is not None else None
            loss = _loss(logits, y, teacher_logits, config, projected, teacher_features)
        if not torch.isfinite(loss):
            raise RuntimeError(f"distillation loss became {loss.item()} at step {step}")
        for group in state.optimizer.param_groups:
            group["lr"] = learning_rate(step, total=config.steps, config=config)
        state.optimizer.zero_grad()
        loss.backward()
        state.optimizer.step()
        state.losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1)
