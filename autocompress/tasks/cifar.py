"""cifar10-resnet20 and cifar10-resnet56: the CIFAR ResNets of He et al. (2016) on CIFAR-10 as JPEG.

Data: ``cifar10-jpeg/cifar10-jpeg-images.tar.gz`` under ``--data-dir`` (60,000 JPEGs), checked by
SHA-256 and decoded once into a cache (``$AUTOCOMPRESS_CACHE/data``, a plain ``.npz`` of uint8
arrays, loaded without pickle). Splits: train = 45,000 of the official training images,
validation = the other 5,000 (seeded, stratified), test = the official 10,000 test images.

Teacher: our model code (3 stages of n basic blocks, 16/32/64 channels, "option A" shortcuts
that subsample and zero-pad), loaded from the published checkpoint (``models/`` beside the
data folder, or ``$AUTOCOMPRESS_MODELS_DIR``) with ``weights_only=True``, then fine-tuned once
on the JPEG training split (the checkpoint was trained on the original images). The accuracy
on the test split before and after that fine-tuning is recorded in the task's recipe.

Example:
    >>> task = make_resnet20_task(data_dir="../shared/data")                # doctest: +SKIP
    >>> task.recipe["teacher_training"]["test_accuracy_before"]              # doctest: +SKIP
    0.81
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from autocompress.devices import training_device
from autocompress.task import Task, UsageError
from autocompress.tasks.cache import cached_arrays, cached_weights, stratified_split
from autocompress.tasks.data_files import require_files, sha256
from autocompress.tasks.training import split_accuracy

ARCHIVE = {"cifar10-jpeg-images.tar.gz": "0bfcb68717a0ecb0d51ed61034906a773d48d424d94b766a46d7d1c55702a4d9"}
CHECKPOINTS = {
    20: ("resnet20-12fca82f.th", "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"),
    56: ("resnet56-4bfd9763.th", "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367"),
}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MODELS_ENV = "AUTOCOMPRESS_MODELS_DIR"
# fine-tuning a pretrained ResNet at 2e-3 without warm-up wrecks it within 30 steps; with the warm-up,
# 1e-3 recovers the pruned + int8 recipe faster than 3e-4 (benchmarks/recipe.py: 0.737 vs 0.714 test
# accuracy after 150 steps, from 0.084 untuned)
DISTILL_LR = 1e-3


class BasicBlock(nn.Module):
    """conv3x3-bn-relu-conv3x3-bn plus the shortcut, then relu. Where the shape changes, the
    shortcut is "option A": subsample by 2 and zero-pad the new channels (no parameters)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (planes - in_planes) // 2 if stride != 1 or in_planes != planes else None

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.pad is None else nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return torch.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images: conv 3->16, three stages of n blocks (16, 32, 64 channels;
    the 2nd and 3rd halve the resolution), global average pool, linear 64->10."""

    def __init__(self, depth: int, num_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(*[BasicBlock(16, 16) for _ in range(n)])
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), *[BasicBlock(32, 32) for _ in range(n - 1)])
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2), *[BasicBlock(64, 64) for _ in range(n - 1)])
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(x.mean(dim=(2, 3)))


def _decode(archive: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    images = {"train": [], "test": []}
    labels = {"train": [], "test": []}
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)
        for member in members:
            split, label, _ = member.name.split("/")
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                images[split].append(np.asarray(image.convert("RGB"), dtype=np.uint8))
            labels[split].append(CLASSES.index(label))
    return {f"x_{s}": np.stack(images[s]) for s in images} | {f"y_{s}": np.array(labels[s], np.int64) for s in labels}


def decoded_cifar(data_dir, task: str = "cifar10-resnet20/56") -> dict[str, np.ndarray]:
    """The 60,000 images as uint8 arrays (decoded once, then read from the cache)."""
    archive = require_files(data_dir, "cifar10-jpeg", ARCHIVE, task=task)[next(iter(ARCHIVE))]
    return cached_arrays("cifar10-jpeg", sha256(archive)[:16], lambda: _decode(archive))


def cifar_splits(data_dir, *, val: int = 5000, seed: int = 0, task: str = "cifar10-resnet20/56"
                 ) -> dict[str, TensorDataset]:
    arrays = decoded_cifar(data_dir, task)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    as_input = lambda a: (torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0 - mean) / std  # noqa: E731
    train, held = stratified_split("cifar10", arrays["y_train"], test_size=val, seed=seed)
    x_train, x_val = arrays["x_train"][train], arrays["x_train"][held]
    y_train, y_val = arrays["y_train"][train], arrays["y_train"][held]
    return {"train": TensorDataset(as_input(x_train), torch.from_numpy(y_train)),
            "val": TensorDataset(as_input(x_val), torch.from_numpy(y_val)),
            "test": TensorDataset(as_input(arrays["x_test"]), torch.from_numpy(arrays["y_test"]))}


def checkpoint_path(data_dir, depth: int) -> Path:
    """The published checkpoint, in $AUTOCOMPRESS_MODELS_DIR or a models/ folder beside or in --data-dir."""
    name, digest = CHECKPOINTS[depth]
    roots = [os.environ.get(MODELS_ENV)] if os.environ.get(MODELS_ENV) else []
    if data_dir or os.environ.get("AUTOCOMPRESS_DATA_DIR"):
        root = Path(data_dir or os.environ["AUTOCOMPRESS_DATA_DIR"]).expanduser().resolve()
        roots += [root / "models", root.parent / "models", root.parent.parent / "models"]
    for folder in roots:
        if (Path(folder) / name).is_file():
            return require_files(folder, "models", {name: digest}, task=f"cifar10-resnet{depth}")[name]
    raise UsageError(f"task cifar10-resnet{depth}: checkpoint {name} not found; put it in a models/ folder beside "
                     f"the data folder (e.g. ../shared/models) or set {MODELS_ENV}")


def load_checkpoint(model: CifarResNet, path: Path) -> float:
    """Load the published weights (tensors only, no pickle); returns the checkpoint's own best_prec1."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict({k.removeprefix("module."): v for k, v in saved["state_dict"].items()})
    return float(saved.get("best_prec1", float("nan")))


def crop_and_flip(x: torch.Tensor, generator: torch.Generator, *, padding: int = 4) -> torch.Tensor:
    """Random crops of the zero-padded images at their own size, and horizontal flips (each
    image its own crop and coin); all randomness from ``generator``. The CIFAR tasks' training
    augmentation (``Task.augment``).

    >>> x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    >>> a, b = (crop_and_flip(x, torch.Generator().manual_seed(1)) for _ in range(2))
    >>> a.shape, bool((a == b).all())
    (torch.Size([2, 3, 8, 8]), True)
    """
    height, width = x.shape[-2:]
    padded = nn.functional.pad(x, (padding, padding, padding, padding))
    dx, dy = torch.randint(0, 2 * padding + 1, (2, len(x)), generator=generator)
    crops = torch.stack([padded[i, :, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(len(x))])
    flip = torch.rand(len(x), generator=generator) < 0.5
    crops[flip] = crops[flip].flip(3)
    return crops


def fine_tune(model: nn.Module, splits: dict, *, epochs: int, batch: int, lr: float, seed: int,
              device: torch.device | None = None) -> dict:
    """SGD (momentum 0.9, cosine schedule, weight decay 5e-4) with crop + flip augmentation (drawn
    on the CPU), on ``device`` (default: a GPU when torch sees one); returns the test accuracy
    before and after (measured on the CPU) and the training's wall time in seconds."""
    before = split_accuracy(model, splits["test"])
    device = device or training_device()
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = splits["train"].tensors
    steps = epochs * (len(x) // batch)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(len(x) // batch):
            idx = order[i * batch:(i + 1) * batch]
            opt.zero_grad()
            images, labels = crop_and_flip(x[idx], generator).to(device), y[idx].to(device)
            nn.functional.cross_entropy(model(images), labels).backward()
            opt.step()
            sched.step()
        print(f"autocompress: teacher epoch {epoch + 1}/{epochs}, {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)
    seconds = round(time.perf_counter() - start, 1)
    model.to("cpu").eval()
    return {"test_accuracy_before": before, "test_accuracy_after": split_accuracy(model, splits["test"]),
            "train_seconds": seconds,
            "note": "published checkpoint (trained on the original CIFAR-10), then fine-tuned on the JPEG train split"}


def _make_task(depth: int, data_dir, epochs: int) -> Task:
    from autocompress.tasks.cache import training_report

    name = f"cifar10-resnet{depth}"
    splits = cifar_splits(data_dir)
    checkpoint = checkpoint_path(data_dir, depth)
    recipe = {"data": "CIFAR-10 JPEG (sha256-checked)", "val": 5000, "split_seed": 0, "normalize": [MEAN, STD],
              "model": f"CifarResNet({depth}, option A)", "checkpoint": CHECKPOINTS[depth][1][:16],
              "fine_tune": {"epochs": epochs, "batch": 128, "lr": 0.01, "seed": 0, "augment": "crop4+flip"}}

    def build() -> CifarResNet:
        model = CifarResNet(depth)
        load_checkpoint(model, checkpoint)
        return model

    settings = {k: v for k, v in recipe["fine_tune"].items() if k != "augment"}
    teacher = cached_weights(build, train=lambda m: fine_tune(m, splits, **settings), recipe=recipe, name=name)
    n = (depth - 2) // 6
    blocks = tuple(f"layer{s}.{i}" for s in (1, 2, 3) for i in range(n))
    return Task(name=name, teacher=teacher, **splits, example_inputs=splits["val"].tensors[0][:1], blocks=blocks,
                description=f"CIFAR-10 JPEG (--data-dir), ResNet-{depth} from the published checkpoint, fine-tuned",
                recipe=recipe | {"teacher_training": training_report(name, recipe)}, distill_lr=DISTILL_LR,
                augment=crop_and_flip)


def make_resnet20_task(data_dir=None) -> Task:
    """CIFAR-10 (JPEG, in --data-dir), ResNet-20 teacher (published checkpoint, fine-tuned on JPEG)."""
    return _make_task(20, data_dir, epochs=3)


def make_resnet56_task(data_dir=None) -> Task:
    """CIFAR-10 (JPEG, in --data-dir), ResNet-56 teacher (published checkpoint, fine-tuned on JPEG)."""
    return _make_task(56, data_dir, epochs=1)
