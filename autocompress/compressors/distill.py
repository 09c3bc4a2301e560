"""Fine-tuning by knowledge distillation from the teacher.

Loss = alpha * T^2 * KL(teacher soft targets || student) at temperature T
     + (1 - alpha) * cross-entropy with the hard labels
     + feature_weight * MSE(projection(student features), teacher features),
where "features" are the inputs of the output layer and the projection is a learned Linear
(discarded after training). Teacher outputs are computed once per task (no augmentation).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import TensorDataset
    >>> x, y = torch.randn(32, 4), torch.arange(32) % 2
    >>> teacher = nn.Linear(4, 2)
    >>> targets = teacher_targets(teacher, TensorDataset(x, y), head="")
    >>> losses = distill(nn.Linear(4, 2), TensorDataset(x, y), targets, DistillConfig(steps=3), head="")
    >>> len(losses)
    3
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset


DEFAULT_LR = 2e-3


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """How a candidate is fine-tuned. ``steps`` = 0 means post-training (calibration only).
    ``lr`` None: the task's ``distill_lr`` (pretrained networks want a smaller one), else
    DEFAULT_LR."""

    steps: int = 300
    batch_size: int = 64
    lr: float | None = None
    temperature: float = 4.0
    alpha: float = 0.7
    feature_weight: float = 0.0
    data_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")
        if not 0 < self.data_fraction <= 1 or not 0 <= self.alpha <= 1 or self.temperature <= 0:
            raise ValueError("need 0 < data_fraction <= 1, 0 <= alpha <= 1, temperature > 0")


@dataclass(frozen=True)
class TeacherTargets:
    logits: torch.Tensor  # (N, classes) on the train split
    features: torch.Tensor  # (N, features): inputs of the output layer


def _capture_head_input(model: nn.Module, head: str, store: list):
    module = model.get_submodule(head) if head else model
    return module.register_forward_pre_hook(lambda mod, args: store.append(args[0].flatten(1)))


@torch.no_grad()
def teacher_targets(teacher: nn.Module, train: Dataset, *, head: str, batch_size: int = 512) -> TeacherTargets:
    teacher.eval()
    logits, features = [], []
    hook = _capture_head_input(teacher, head, features)
    try:
        for x, _ in DataLoader(train, batch_size=batch_size):
            logits.append(teacher(x))
    finally:
        hook.remove()
    return TeacherTargets(torch.cat(logits), torch.cat(features))


def _batch(data: Dataset, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, TensorDataset):
        return data.tensors[0][idx], data.tensors[1][idx]
    x, y = zip(*(data[int(i)] for i in idx))
    return torch.stack(x), torch.as_tensor(y)


def distill(student: nn.Module, train: Dataset, targets: TeacherTargets, config: DistillConfig, *,
            head: str, on_step: Callable[[int], None] | None = None) -> list[float]:
    """Fine-tune ``student`` in place; returns the loss of every step. NaN loss raises.
    ``on_step(step)`` is called after every step (a Ray trial reports progress and yields the
    CPU to latency measurements from there)."""
    generator = torch.Generator().manual_seed(config.seed)
    n = len(train)
    subset = torch.randperm(n, generator=generator)[: max(config.batch_size, math.ceil(n * config.data_fraction))]
    features: list[torch.Tensor] = []
    hook = _capture_head_input(student, head, features) if config.feature_weight else None
    projection = None
    params = list(student.parameters())
    if hook is not None:
        with torch.no_grad():
            features.clear()
            student.eval()
            student(train[int(subset[0])][0][None])
        projection = nn.Linear(features[0].shape[1], targets.features.shape[1])
        params += list(projection.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr or DEFAULT_LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.steps, 1))
    t = config.temperature
    losses = []
    student.train()
    try:
        for step in range(config.steps):
            idx = subset[torch.randint(len(subset), (config.batch_size,), generator=generator)]
            x, y = _batch(train, idx)
            features.clear()
            logits = student(x)
            soft = nn.functional.kl_div(nn.functional.log_softmax(logits / t, dim=1),
                                        nn.functional.log_softmax(targets.logits[idx] / t, dim=1),
                                        log_target=True, reduction="batchmean") * t * t
            loss = config.alpha * soft + (1 - config.alpha) * nn.functional.cross_entropy(logits, y)
            if projection is not None:
                loss = loss + config.feature_weight * nn.functional.mse_loss(projection(features[-1]),
                                                                             targets.features[idx])
            if not torch.isfinite(loss):
                raise RuntimeError(f"distillation loss became {loss.item()} at step {step}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(step + 1)
    finally:
        if hook is not None:
            hook.remove()
        student.eval()
    return losses
