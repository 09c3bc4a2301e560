"""mnist-lenet5: MNIST and LeNet-5 as in Deep Compression (conv 20, conv 50, fc 500, fc 10).

Data: the original idx files (``--data-dir`` holding ``mnist/``), checked by SHA-256. Splits:
train = 55,000 of the official training images, validation = the other 5,000 (seeded,
stratified), test = the official 10,000 test images, never seen by a search. The teacher is
trained once and cached like every built-in teacher.

Example:
    >>> task = make_mnist_task(data_dir="../shared/data")                   # doctest: +SKIP
    >>> [task.num_examples(s) for s in ("train", "val", "test")]            # doctest: +SKIP
    [55000, 5000, 10000]
"""

from __future__ import annotations

import gzip

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from autocompress.task import Task
from autocompress.tasks.cache import cached_weights, stratified_split
from autocompress.tasks.data_files import require_files
from autocompress.tasks.training import train_classifier

FILES = {
    "train-images-idx3-ubyte.gz": "7ff28fd295f802eefc6d40e461175dfe4b969b1842b2abc8c6dc8c20711cf79f",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MEAN, STD = 0.1307, 0.3081
RECIPE = {
    "data": "MNIST idx (sha256-checked)", "val": 5000, "split_seed": 0, "normalize": [MEAN, STD],
    "model": "LeNet5(20,50,500)", "epochs": 8, "batch": 128, "lr": 2e-3, "seed": 0,
}


class LeNet5(nn.Module):
    """conv 5x5 20 -> maxpool -> conv 5x5 50 -> maxpool -> fc 800->500 -> fc 500->10 (ReLU between)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(50 * 4 * 4, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _idx(path, *, images: bool) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if images:
        count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
        return np.frombuffer(raw, np.uint8, offset=16).reshape(count, 1, rows, cols)
    return np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)


def mnist_splits(data_dir) -> dict[str, TensorDataset]:
    paths = require_files(data_dir, "mnist", FILES, task="mnist-lenet5")
    as_input = lambda a: torch.from_numpy(((a.astype(np.float32) / 255.0) - MEAN) / STD)  # noqa: E731
    x, y = _idx(paths["train-images-idx3-ubyte.gz"], images=True), _idx(paths["train-labels-idx1-ubyte.gz"], images=False)
    train, val = stratified_split("mnist", y, test_size=RECIPE["val"], seed=RECIPE["split_seed"])
    x_train, x_val, y_train, y_val = x[train], x[val], y[train], y[val]
    x_test, y_test = _idx(paths["t10k-images-idx3-ubyte.gz"], images=True), _idx(paths["t10k-labels-idx1-ubyte.gz"],
                                                                                 images=False)
    return {"train": TensorDataset(as_input(x_train), torch.from_numpy(y_train)),
            "val": TensorDataset(as_input(x_val), torch.from_numpy(y_val)),
            "test": TensorDataset(as_input(x_test), torch.from_numpy(y_test))}


def _seeded_model() -> LeNet5:
    torch.manual_seed(RECIPE["seed"])
    return LeNet5()


def make_mnist_task(data_dir=None) -> Task:
    """MNIST (idx files in --data-dir/mnist), LeNet-5 teacher as in Deep Compression, 10 classes."""
    splits = mnist_splits(data_dir)
    teacher = cached_weights(
        _seeded_model,
        train=lambda m: train_classifier(m, splits["train"], epochs=RECIPE["epochs"], batch=RECIPE["batch"],
                                         lr=RECIPE["lr"], seed=RECIPE["seed"]),
        recipe=RECIPE, name="mnist-lenet5",
    )
    return Task(name="mnist-lenet5", teacher=teacher, **splits, example_inputs=splits["val"].tensors[0][:1],
                description="MNIST (--data-dir), LeNet-5 teacher (conv 20, conv 50, fc 500, fc 10) as in Deep Compression",
                recipe=RECIPE)
