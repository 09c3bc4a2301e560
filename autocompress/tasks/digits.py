"""The embedded default task: scikit-learn's bundled 8x8 digits and a small residual CNN.

No files are needed. The split is fixed and seeded (60% train / 20% validation / 20% test,
stratified); the teacher is trained on first use and cached (see ``tasks/cache.py``).

Example:
    >>> task = make_digits_task()                                   # doctest: +SKIP
    >>> task.num_examples("train"), task.num_examples("val")        # doctest: +SKIP
    (1078, 359)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from autocompress.task import Task
from autocompress.tasks.cache import cached_arrays, cached_weights, recipe_key, stratified_split
from autocompress.tasks.training import train_classifier

RECIPE = {
    "data": "sklearn.load_digits/16.0", "split": [0.6, 0.2, 0.2], "split_seed": 0,
    "model": "DigitsResNet(32,64,blocks=2+2)", "epochs": 40, "batch": 64, "lr": 3e-3, "seed": 0,
}


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn plus the identity shortcut, then relu."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


class DigitsResNet(nn.Module):
    """stem 1->32 at 8x8, two residual blocks, stride-2 conv 32->64, two blocks, pool, linear."""

    def __init__(self, width: int = 32, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stage1 = nn.Sequential(BasicBlock(width), BasicBlock(width))
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(2 * width), nn.ReLU())
        self.stage2 = nn.Sequential(BasicBlock(2 * width), BasicBlock(2 * width))
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.fc(x.mean(dim=(2, 3)))


def _load_digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits  # once: later the cached arrays are read

    digits = load_digits()
    return {"x": (digits.images / 16.0).astype(np.float32)[:, None], "y": digits.target.astype(np.int64)}


def digits_splits(seed: int = 0) -> dict[str, TensorDataset]:
    """The fixed train/val/test split of the 1,797 digits, pixels scaled to [0, 1] (stratified:
    60% train, then the rest halved into validation and test)."""
    arrays = cached_arrays("digits", recipe_key({"data": RECIPE["data"]}), _load_digits)
    x, y = arrays["x"], arrays["y"]
    train, rest = stratified_split("digits", y, test_size=0.4, seed=seed)
    val, test = stratified_split("digits-rest", y[rest], test_size=0.5, seed=seed)
    val, test = rest[val], rest[test]
    as_set = lambda i: TensorDataset(torch.from_numpy(x[i]), torch.from_numpy(y[i]))  # noqa: E731
    return {"train": as_set(train), "val": as_set(val), "test": as_set(test)}


def _seeded_model() -> DigitsResNet:
    torch.manual_seed(RECIPE["seed"])  # the initial weights are part of the recipe
    return DigitsResNet()


def make_digits_task() -> Task:
    """scikit-learn's bundled 8x8 digits (embedded, no files), residual CNN teacher, 10 classes."""
    splits = digits_splits(RECIPE["split_seed"])
    teacher = cached_weights(
        _seeded_model,
        train=lambda m: train_classifier(m, splits["train"], epochs=RECIPE["epochs"], batch=RECIPE["batch"],
                                         lr=RECIPE["lr"], seed=RECIPE["seed"]),
        recipe=RECIPE, name="digits",
    )
    return Task(
        name="digits", teacher=teacher, **splits, example_inputs=splits["val"].tensors[0][:1],
        blocks=("stage1.0", "stage1.1", "stage2.0", "stage2.1"),
        description="scikit-learn 8x8 digits (embedded), residual CNN teacher, 10 classes",
        recipe=RECIPE,
    )
