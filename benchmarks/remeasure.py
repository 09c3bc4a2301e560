"""Final fronts measured again, side by side: the numbers a benchmark's table may quote.

Numbers stored by runs made at different times on a shared machine are not comparable (load
changes between them). After every search of a benchmark, the teacher's file and each front
candidate's exported ONNX file are loaded into ONE process and timed in interleaved rounds
(``side_by_side``); their accuracy is that of the same file on the TEST split, which no search
looked at. Size is the file's bytes.

    >>> import os, tempfile, torch
    >>> from torch import nn
    >>> from autocompress.evaluators.export import export_onnx
    >>> folder = tempfile.mkdtemp()
    >>> paths = {n: os.path.join(folder, f"{n}.onnx") for n in ("wide", "narrow")}
    >>> export_onnx(nn.Linear(64, 64), torch.randn(1, 64), paths["wide"])
    >>> export_onnx(nn.Linear(64, 2), torch.randn(1, 64), paths["narrow"])
    >>> sorted(side_by_side(paths, torch.randn(1, 64), rounds=2, runs=10))
    ['narrow', 'wide']
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROUNDS, RUNS = 15, 100


def side_by_side(paths: dict[str, str], example, *, rounds: int = ROUNDS, runs: int = RUNS) -> dict[str, float]:
    """Median over interleaved rounds of each file's median latency (ms), measured in this process
    (``latency_ms``: batch 1, 1 thread, pinned)."""
    from autocompress.evaluators.measure import latency_ms, onnx_session

    sessions = {name: onnx_session(path) for name, path in paths.items()}
    medians = {name: [] for name in paths}
    for _ in range(rounds):
        for name, session in sessions.items():
            medians[name].append(latency_ms(session, example, warmup=5, runs=runs)[0])
    return {name: float(np.median(values)) for name, values in medians.items()}


def front_entry(*, seed: int, trial: int, size: int, latency: float, test_accuracy: float, teacher: dict) -> dict:
    """One re-measured candidate, relative to the teacher measured with it (ratios: larger is better).

    >>> front_entry(seed=0, trial=3, size=100, latency=0.5, test_accuracy=0.95,
    ...             teacher={"size_bytes": 400, "latency_ms": 1.0, "test_accuracy": 0.96})
    {'seed': 0, 'trial': 3, 'size_x': 4.0, 'latency_x': 2.0, 'test_accuracy': 0.95, 'drop_pt': 1.0, 'size_bytes': 100, 'latency_ms': 0.5}
    """
    return {"seed": seed, "trial": trial, "size_x": round(teacher["size_bytes"] / size, 4),
            "latency_x": round(teacher["latency_ms"] / latency, 4), "test_accuracy": round(test_accuracy, 6),
            "drop_pt": round(100 * (teacher["test_accuracy"] - test_accuracy), 4), "size_bytes": int(size),
            "latency_ms": round(latency, 6)}


def remeasure(task, teacher_file: str | Path, candidates: dict[tuple, str | Path], *, rounds: int = ROUNDS,
              runs: int = RUNS) -> tuple[dict, dict[tuple, dict]]:
    """Teacher and candidates measured side by side. ``candidates``: ``(strategy, seed, trial) ->
    model.onnx``. Returns (the teacher's test accuracy, size and latency; per candidate key its
    ``front_entry``)."""
    from autocompress.evaluators.measure import onnx_metric, onnx_session

    paths = {"teacher": str(teacher_file), **{"/".join(map(str, key)): str(path) for key, path in candidates.items()}}
    latency = side_by_side(paths, task.example_inputs, rounds=rounds, runs=runs)
    test = {name: onnx_metric(onnx_session(path), task.test, task.metric) for name, path in paths.items()}
    teacher = {"test_accuracy": test["teacher"], "size_bytes": os.path.getsize(paths["teacher"]),
               "latency_ms": latency["teacher"]}
    entries = {}
    for key in candidates:
        name = "/".join(map(str, key))
        entries[key] = front_entry(seed=key[1], trial=key[2], size=os.path.getsize(paths[name]),
                                   latency=latency[name], test_accuracy=test[name], teacher=teacher)
    return teacher, entries
