"""A synthetic stored run of any size, for measuring the report at scale (no training needed).

The layers, knobs and teacher are those of the digits task; each trial's size, latency and
accuracy follow from its knobs by a simple cost model plus noise, so the front, the
hypervolume curve and the importances look like a real search's. 5% of trials fail.

    python -c "from synthetic_run import write_synthetic_run; write_synthetic_run('runs/synthetic', trials=5000)"
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

STAGES = {"stage1": ["stage1.0", "stage1.1"], "stage2": ["stage2.0", "stage2.1"]}
LAYERS = ["stem.0", "stage1.0.conv1", "stage1.0.conv2", "stage1.1.conv1", "stage1.1.conv2", "down.0",
          "stage2.0.conv1", "stage2.0.conv2", "stage2.1.conv1", "stage2.1.conv2", "fc"]
GROUPS = ["stem.0", "stage1.0.conv1", "stage1.1.conv1", "down.0", "stage2.0.conv1", "stage2.1.conv1"]
TEACHER = {"accuracy": 0.9972, "size_bytes": 820736, "latency_ms": 0.055, "params": 204170, "macs": 5051018,
           "fidelity": "steps=300,data=1,onnx-val", "latency_spread_ms": 0.0006, "notes": ""}


def _trials(count: int, rng: np.random.Generator, start: datetime) -> pd.DataFrame:
    rows, clock = [], [start, start]
    for number in range(count):
        params = {"arch/width": rng.choice([0.5, 0.75, 1.0]),
                  **{f"arch/depth/{s}": int(rng.integers(0, 3)) for s in STAGES},
                  **{f"bits/{name}": int(rng.choice([32, 8, 4, 2], p=[0.2, 0.4, 0.25, 0.15])) for name in LAYERS},
                  **{f"prune/{g}": float(rng.choice(np.arange(0, 0.76, 0.125))) for g in GROUPS},
                  **{f"rank/{name}": float(rng.choice([1.0, 0.5, 0.25])) for name in LAYERS if name != "stem.0"}}
        bits = np.array([params[f"bits/{n}"] for n in LAYERS], float)
        keep = np.mean([1 - params[f"prune/{g}"] for g in GROUPS]) * params["arch/width"]
        depth = (sum(params[f"arch/depth/{s}"] for s in STAGES) + 1) / 5
        size = TEACHER["size_bytes"] * keep ** 2 * depth * np.mean(bits) / 32 + 3000
        latency = TEACHER["latency_ms"] * (0.3 + 0.7 * keep * depth) * (0.6 if np.all(bits == 8) else 1.0)
        damage = 0.6 * np.sum(bits == 2) / len(bits) + 0.1 * np.sum(bits == 4) / len(bits) + 0.05 * (1 - keep) ** 2
        accuracy = float(np.clip(TEACHER["accuracy"] - damage + rng.normal(0, 0.005), 0.05, 1.0))
        screen = number % 3 != 2  # two screens for every full evaluation, as multi-fidelity runs look
        duration = float(rng.uniform(0.5, 1.5) if screen else rng.uniform(2.5, 4.5))
        worker = number % 2
        started = clock[worker]
        clock[worker] = started + timedelta(seconds=duration + 0.1)
        failed = rng.random() < 0.05
        rows.append({
            "number": number, "state": "FAIL" if failed else "COMPLETE",
            "accuracy": None if failed else accuracy, "size_bytes": None if failed else int(size),
            "latency_ms": None if failed else round(float(latency * rng.normal(1, 0.02)), 6),
            "feasible": (not failed) and size <= 100_000 and accuracy >= 0.98,
            "params": None, "macs": None,
            "fidelity": "steps=60,data=1,onnx-val" if screen else TEACHER["fidelity"],
            "rung": 0 if screen else 1, "steps": 60 if screen else 300, "latency_spread_ms": 0.0005, "duration_s": round(duration, 3),
            "started_at": started.isoformat(timespec="milliseconds"),
            "finished_at": clock[worker].isoformat(timespec="milliseconds"), "node": "synthetic",
            "duplicate_of": None, "error": "RuntimeError: synthetic failure while fine-tuning" if failed else None,
            "notes": None, **params})
    return pd.DataFrame(rows)


def write_synthetic_run(path: str | Path, *, trials: int, seed: int = 0) -> Path:
    """Write run.json and trials.csv of a synthetic run with ``trials`` trials into ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 1, 22, 0, tzinfo=timezone.utc)
    frame = _trials(trials, rng, start)
    end = max(pd.to_datetime(frame["finished_at"], format="ISO8601"))
    run = {
        "task": {"name": "digits-synthetic", "spec": "digits", "data_dir": None, "train": 1078, "val": 359, "test": 360},
        "model": {"layers": LAYERS, "stages": STAGES},
        "teacher": TEACHER,
        "latency_noise": {"repeats": 5, "relative_spread": 0.02},
        "study": {"name": "autocompress", "storage": "study.db"},
        "settings": {"sampler": "tpe", "seed": seed, "trials": trials, "budget": {"max_size_bytes": 100000,
                     "max_latency_ms": None, "min_accuracy": 0.98}, "min_steps": 60, "eta": 3,
                     "fidelity": TEACHER["fidelity"], "importance": "l1",
                     "latency": {"runtime": "onnxruntime CPUExecutionProvider", "threads": 1, "batch": 1,
                                 "warmup": 20, "runs": 300, "statistic": "median", "pinned_core": True,
                                 "where": "synthetic"}},
        "machine": {"cpus": 2, "node": "synthetic"}, "versions": {"autocompress": "synthetic"},
        "command": f"synthetic run of {trials} trials (benchmarks/synthetic_run.py)",
        "started_at": start.isoformat(timespec="seconds"), "finished_at": end.isoformat(timespec="seconds"),
        "sessions": [{"wall_s": round((end - start).total_seconds(), 2), "workers": 2, "interrupted": 0}],
    }
    (path / "run.json").write_text(json.dumps(run, indent=2))
    frame.to_csv(path / "trials.csv", index=False)
    return path
