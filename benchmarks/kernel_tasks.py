"""Stand-ins for built-in tasks whose trained teacher is not cached, for latency benchmarks only.

Same architecture as the built-in teacher, weights that need no training run: the published
CIFAR ResNet-20/56 checkpoint (not fine-tuned on the JPEG images), a seeded untrained LeNet-5 or
sst2 TextEncoder. Calibration data: real SST-2 sentences; random images for the CNNs (the
speed of int8 kernels does not depend on the values). Their metrics mean nothing; their
latencies are those of the real architectures. Loaded as user tasks
(``kernel_tasks:resnet20_stand_in``) so the code at ``main`` can export them too.
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from autocompress.task import Task


def _images(shape, count: int = 256) -> dict:
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn((count,) + shape, generator=generator), torch.randint(0, 10, (count,)))
    return {"train": data, "val": data, "test": data}


def _resnet(depth: int, data_dir) -> Task:
    from autocompress.tasks.cifar import CifarResNet, checkpoint_path, load_checkpoint

    model = CifarResNet(depth)
    load_checkpoint(model, checkpoint_path(data_dir, depth))
    splits = _images((3, 32, 32))
    n = (depth - 2) // 6
    return Task(name=f"cifar10-resnet{depth}-stand-in", teacher=model.eval(), **splits,
                example_inputs=splits["val"].tensors[0][:1],
                blocks=tuple(f"layer{s}.{i}" for s in (1, 2, 3) for i in range(n)))


def resnet20_stand_in(data_dir=None) -> Task:
    return _resnet(20, data_dir)


def resnet56_stand_in(data_dir=None) -> Task:
    return _resnet(56, data_dir)


def lenet5_stand_in(data_dir=None) -> Task:
    from autocompress.tasks.mnist import LeNet5

    torch.manual_seed(0)
    splits = _images((1, 28, 28))
    return Task(name="mnist-lenet5-stand-in", teacher=LeNet5().eval(), **splits,
                example_inputs=splits["val"].tensors[0][:1])


def sst2_stand_in(data_dir=None) -> Task:
    from autocompress.tasks.sst2 import _seeded_model, sst2_splits

    splits = sst2_splits(data_dir)
    teacher = _seeded_model().eval()
    return Task(name="sst2-transformer-stand-in", teacher=teacher, **splits,
                example_inputs=splits["val"].tensors[0][:1],
                blocks=tuple(f"layers.{i}" for i in range(len(teacher.layers))))


STAND_INS = {"cifar10-resnet20": "kernel_tasks:resnet20_stand_in", "cifar10-resnet56": "kernel_tasks:resnet56_stand_in", "mnist-lenet5": "kernel_tasks:lenet5_stand_in",
             "sst2-transformer": "kernel_tasks:sst2_stand_in"}
