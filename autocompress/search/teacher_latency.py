"""Where a search's latencies come from: the teacher measured once per run (its latency the median of six
measurements, five of them repeats that show how noisy the machine is), and the one Ray actor that measures every candidate's
latency (on the ``--latency-resource`` node if named), kept for the next search of this process.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from autocompress.artifact_files import ARTIFACT_NAME
from autocompress.evaluators.evaluate import evaluate_teacher, with_extra_latencies
from autocompress.evaluators.measure import LATENCY_THREADS
from autocompress.metrics import Metrics
from autocompress.search import rundir
from autocompress.task import Task, UsageError

NOISE_REPEATS = 5
ACTOR_REPLY_S = 10.0  # a kept latency actor that does not answer within this is replaced

# --latency-resource -> this process's LatencyActor: the next search of this process reuses it (one
# actor per latency resource, never one process per search); it ends with the process's Ray
_LATENCY_ACTORS: dict = {}


def measure_teacher(task: Task, *, out: Path, latency, where: str, progress: Callable[[str], None],
                    extra: dict | None = None) -> tuple[Metrics, dict, str]:
    """The teacher's file exported into ``out``/teacher and measured: (metrics, noise, where);
    ``extra``: a meter per extra latency profile, by name (``Metrics.latencies``)."""
    progress(f"measuring the teacher of {task.name!r} {where} (ONNX Runtime, batch 1, {LATENCY_THREADS} thread)")
    teacher = evaluate_teacher(task, out_dir=out / rundir.TEACHER, latency=latency)
    path = out / rundir.TEACHER / ARTIFACT_NAME
    noise = latency_noise(task, path, latency)
    # the teacher's latency: the middle of every measurement of it, its first one included (the first of
    # a process can run slow: measured 0.98 ms against 0.69-0.72 ms for the five after it, cifar10-resnet20)
    middle = float(np.median([teacher.latency_ms, *noise["medians_ms"]]))
    teacher = with_extra_latencies(dataclasses.replace(teacher, latency_ms=middle), str(path), task.example_inputs,
                                   extra or {})
    return teacher, noise, where


def latency_noise(task: Task, path: Path, latency) -> dict:
    """Repeat the teacher's latency measurement to show how noisy this machine is."""
    medians = sorted(latency(str(path), task.example_inputs)[0] for _ in range(NOISE_REPEATS))
    middle = medians[len(medians) // 2]
    return {"repeats": NOISE_REPEATS, "medians_ms": [round(m, 6) for m in medians],
            "spread_ms": round(medians[-1] - medians[0], 6),
            "relative_spread": round((medians[-1] - medians[0]) / middle, 4)}


def latency_actor(resource: str | None, run_id: str):
    """The one actor that measures every latency of this search (on the ``resource`` node if
    named): the one an earlier search of this process used, if it still answers."""
    import ray

    from autocompress.search.latency_actor import LatencyActor

    kept = _LATENCY_ACTORS.pop(resource, None)
    if kept is not None:
        try:
            ray.get(kept.for_run.remote(run_id), timeout=ACTOR_REPLY_S)
            _LATENCY_ACTORS[resource] = kept
            return kept
        except Exception:  # gone with an earlier Ray or its node, or stuck: start another
            pass
    if resource is None:
        actor = LatencyActor.remote(run_id)
    elif ray.cluster_resources().get(resource, 0) <= 0:
        raise UsageError(f"--latency-resource {resource}: no Ray node carries it; start the target node with "
                         f"ray start --address HEAD --resources '{{\"{resource}\": 1}}'")
    else:
        actor = LatencyActor.options(resources={resource: 0.001}).remote(run_id)
    _LATENCY_ACTORS[resource] = actor
    return actor
