"""Training a built-in teacher once (the result is cached by ``tasks/cache.py``), on the first
GPU torch sees, else on the CPU (``devices.training_device``)."""

from __future__ import annotations

import sys
import time

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from autocompress import model_io
from autocompress.devices import training_device


def train_classifier(model: nn.Module, data: Dataset, *, epochs: int, batch: int, lr: float, seed: int,
                     device: torch.device | None = None) -> None:
    """Plain supervised training with AdamW and a cosine schedule (used for the teacher), on
    ``device`` (default: a GPU when torch sees one); the model ends on the CPU, in eval mode."""
    device = device or training_device()
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, generator=generator)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        total = 0.0
        for x, y in loader:
            x, y = model_io.to(x, device), y.to(device)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model_io.forward(model, x), y)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        print(f"autocompress: teacher epoch {epoch + 1}/{epochs}: mean loss {total / len(loader):.4f}, "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    model.to("cpu").eval()


@torch.no_grad()
def split_accuracy(model: nn.Module, data: TensorDataset | model_io.Examples, *, batch: int = 256) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on a split of tensor or structured inputs.

    >>> data = TensorDataset(torch.eye(4), torch.tensor([0, 1, 2, 0]))
    >>> split_accuracy(nn.Identity(), data)
    0.75
    """
    model.eval()
    inputs, labels = (data.tensors if isinstance(data, TensorDataset) else (data.inputs, data.labels))
    correct = sum(int((model_io.forward(model, model_io.rows(inputs, slice(i, i + batch))).argmax(1)
                       == labels[i:i + batch]).sum()) for i in range(0, len(labels), batch))
    return correct / len(labels)
