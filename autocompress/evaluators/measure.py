"""Measurements on the artifact: file size, ONNX Runtime latency and accuracy, params and MACs.

Latency: batch 1, a fixed number of intra-op threads (1 by default), sequential execution,
the measuring thread pinned to one core, warm-up runs, then the median (and interquartile
range) of many timed runs.

Example:
    >>> import os, tempfile, torch
    >>> from torch import nn
    >>> from autocompress.evaluators.export import export_onnx
    >>> path = os.path.join(tempfile.mkdtemp(), "m.onnx")
    >>> export_onnx(nn.Linear(4, 2), torch.randn(1, 4), path)
    >>> median, spread = latency_ms(onnx_session(path), torch.randn(1, 4), runs=20)
    >>> median > 0 and size_bytes(path) == os.path.getsize(path)
    True
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from typing import Callable

import numpy as np
import onnxruntime as ort
import torch
import torch_pruning as tp
from torch import nn
from torch.utils.data import DataLoader, Dataset

from autocompress import model_io
from autocompress.evaluators.latency_profile import TIMED_RUNS, WARMUP_RUNS, session_options, timed_runs
from autocompress.pause import pause_point
from autocompress.task import one_line

LATENCY_THREADS = 1


def size_bytes(path: str) -> int:
    return os.path.getsize(path)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, in hex: what an export checks it ships."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_session(path: str, *, threads: int = LATENCY_THREADS) -> ort.InferenceSession:
    return ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])


def latency_ms(session: ort.InferenceSession, example_inputs: model_io.Inputs, *, warmup: int = WARMUP_RUNS,
               runs: int = TIMED_RUNS) -> tuple[float, float]:
    """(median, interquartile range) of ``runs`` batch-1 runs in milliseconds, the measuring
    thread pinned to one core (``latency_profile.timed_runs``)."""
    feed = model_io.feed(session, model_io.rows(example_inputs, slice(0, 1)))
    return timed_runs(session, feed, warmup=warmup, runs=runs, pin=True)


def onnx_logits(session: ort.InferenceSession, data: Dataset, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Run the artifact over a dataset: (logits, labels)."""
    outputs, labels = [], []
    for x, y in DataLoader(data, batch_size=batch_size):
        pause_point()
        outputs.append(session.run(None, model_io.feed(session, x))[0])
        labels.append(y.numpy())
    return np.concatenate(outputs), np.concatenate(labels)


class MetricError(ValueError):
    """The task's metric raised, or returned something that is not a finite number."""


def metric_value(metric: Callable, logits: np.ndarray, labels: np.ndarray) -> float:
    """``metric(logits, labels)`` as a float, or a MetricError naming the metric and what it did.

    >>> metric_value(lambda logits, labels: float("nan"), np.zeros((2, 3)), np.zeros(2))
    Traceback (most recent call last):
    ...
    autocompress.evaluators.measure.MetricError: the task's metric <lambda> returned nan, not a finite number
    """
    name = getattr(metric, "__name__", None) or type(metric).__name__
    try:
        value = metric(logits, labels)
    except Exception as exc:
        raise MetricError(f"the task's metric {name} raised {type(exc).__name__}: {one_line(exc)}") from exc
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MetricError(f"the task's metric {name} returned {type(value).__name__} {one_line(value)[:40]!r}, "
                          "not a number")
    number = float(value)
    if not math.isfinite(number):
        raise MetricError(f"the task's metric {name} returned {number}, not a finite number")
    return number


def onnx_metric(session: ort.InferenceSession, data: Dataset, metric: Callable) -> float:
    """The task's metric of the artifact's outputs on ``data`` (a MetricError if it has none)."""
    return metric_value(metric, *onnx_logits(session, data))


def predict(path: str, inputs) -> np.ndarray:
    """Run an exported model on a batch in one line: ``autocompress.predict("model.onnx", x)``."""
    session = onnx_session(path)
    if isinstance(inputs, dict) or (isinstance(inputs, tuple) and all(isinstance(t, torch.Tensor) for t in inputs)):
        return session.run(None, model_io.feed(session, inputs))[0]
    array = inputs.numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs, dtype=np.float32)
    return session.run(None, {session.get_inputs()[0].name: array})[0]


def params_and_macs(model: nn.Module, example_inputs: torch.Tensor) -> tuple[int, int]:
    """Parameters and multiply-accumulates of one batch-1 forward pass."""
    macs, params = tp.utils.count_ops_and_params(model, example_inputs)
    return int(params), int(macs)
