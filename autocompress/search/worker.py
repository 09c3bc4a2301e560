"""What runs on a Ray worker: rebuild the task once per process, evaluate one plan per trial.

The driver sends one ``Job`` per search (``tune.with_parameters`` puts it in Ray's object
store once: the teacher's weights reach each worker once, not once per trial). A worker
rebuilds the task from its built-in name or ``module:function`` factory with those weights,
and keeps it for every later trial it runs (actors are reused).

Latency: every file (the teacher's too) is measured by the search's one ``LatencyActor``
(``latency_actor.py``), so measurements happen one at a time, with a fixed thread count. While it measures, the trials
and scan cells on the same node wait at their next pause point (``autocompress.pause``: a flag file in
/dev/shm), so a measurement does not share its core with their work. With ``--latency-resource`` the actor is
placed on the node carrying that resource (the real target device).

Example (what the search does for you):
    >>> job = Job(task_spec="digits", data_dir=None, task=None, teacher_state={},       # doctest: +SKIP
    ...           distill=DistillConfig(), out_dir="runs/x", threads=1, latency_actor=None)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ray
import torch

from autocompress.budget import Budget
from autocompress.compressors.distill import DistillConfig
from autocompress.compressors.pipeline import share_discovery
from autocompress.devices import CPU, current_trial_device, release_gpu_memory, trial_error
from autocompress.artifact_files import ARTIFACT_NAME
from autocompress.evaluators.evaluate import CHECKPOINT_NAME, evaluate, latency_meter, with_extra_latencies
from autocompress.evaluators.latency_profile import LatencyProfile
from autocompress import model_io
from autocompress.plan import Plan
from autocompress.pause import pause_at_points, pause_point
from autocompress.search.latency_actor import node_name, quiet_flag
from autocompress.search.rundir import ARTIFACTS
from autocompress.task import Task, load_task


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, shipped once per search."""

    task_spec: str | None  # built-in name or module:function; None = ship ``task`` itself
    data_dir: str | None
    task: Task | None
    teacher_state: dict[str, torch.Tensor]
    distill: DistillConfig
    out_dir: str
    threads: int
    run_id: str = "default"  # names the node-local flag that pauses trials and scan cells during measurements
    latency_actor: Any = None  # a LatencyActor handle, or None to measure in the trial
    budget: Budget | None = None  # plans over its size or latency limit are not fine-tuned
    latency_profile: LatencyProfile = field(default_factory=LatencyProfile)  # how every latency is measured
    latency_profiles: dict = field(default_factory=dict)  # extra profiles by name: each final file measured again
    checkpoints: bool = False  # keep each trial's fine-tuning state (a promotion continues from it)
    discovery: Any = None  # the driver's spaces.layers.Discovery of the teacher: workers do not redo it


_tasks: dict[tuple, Task] = {}


def worker_task(job: Job) -> Task:
    """The job's task, built once per worker process."""
    key = (job.task_spec, job.data_dir, id(job.teacher_state) if job.task_spec is None else None)
    if key not in _tasks:
        if job.task_spec is None:
            _tasks[key] = job.task
        else:
            _tasks[key] = load_task(job.task_spec, data_dir=job.data_dir, teacher_state=job.teacher_state)
        if job.discovery is not None:
            share_discovery(_tasks[key], job.discovery)
    return _tasks[key]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


PROGRESS_SECONDS = 2.0  # between progress reports during fine-tuning (what --trial-timeout acts on)


def remote_latency(actor, profile: LatencyProfile | None = None):
    """A latency meter that sends the file's bytes and the first row of the example inputs (as
    NumPy arrays: the actor imports no torch) to ``actor`` and waits for its answer."""
    def measure(path: str, example_inputs: model_io.Inputs) -> tuple[float, float]:
        example = model_io.arrays(model_io.rows(example_inputs, slice(0, 1)))
        with open(path, "rb") as f:
            return ray.get(actor.measure.remote(f.read(), example, profile))
    return measure


def job_latency(job: "Job", profile: LatencyProfile | None = None):
    """The latency meter of a trial or scan cell of ``job`` (under ``profile``, default the job's
    own): its actor's, else measured here."""
    profile = profile or job.latency_profile
    if job.latency_actor is not None:
        return remote_latency(job.latency_actor, profile)
    return latency_meter(profile)


def extra_meters(job: "Job") -> dict:
    """A meter for each extra latency profile of ``job``, by name."""
    return {name: job_latency(job, profile) for name, profile in job.latency_profiles.items()}


def _continued(job: Job, config: dict) -> Path | None:
    """The checkpoint of the earlier trial this one continues (the same plan one rung below,
    promoted); ``evaluate`` says so in the trial's notes if it is missing or cannot be read."""
    if "continue_from" not in config:
        return None
    return Path(job.out_dir) / ARTIFACTS / str(config["continue_from"]) / CHECKPOINT_NAME


def evaluate_trial(config: dict, job: Job) -> None:
    """The Ray Tune trainable: evaluate ``config['plan']`` and report its metrics.

    Errors of the candidate itself are reported as a result with ``error`` (stored as a
    failed trial with its reason; a CUDA error, e.g. out of memory, says what to change); a
    worker that dies is Tune's to retry. A trial Ray gave a GPU fine-tunes on it
    (``devices.trial_device``); everything else runs on the CPU.
    """
    from ray import tune

    _set_threads(job.threads)
    started, clock = now(), time.perf_counter()
    base = {"number": config["number"], "node": node_name(), "started_at": started}
    device = CPU
    try:
        device = current_trial_device()
        task = worker_task(job)
        plan = Plan.from_dict(config["plan"])
        distill = DistillConfig(**{**job.distill.__dict__, **config.get("distill", {})})
        latency = job_latency(job)
        pause_at_points(quiet_flag(job.run_id))
        last_report = [time.perf_counter()]

        def on_step(step: int) -> None:
            pause_point()
            if time.perf_counter() - last_report[0] >= PROGRESS_SECONDS:
                last_report[0] = time.perf_counter()
                tune.report({**base, "final": False, "step": step})

        out_dir = os.path.join(job.out_dir, ARTIFACTS, str(config["number"]))
        metrics = evaluate(task, plan, out_dir=out_dir, config=distill, latency=latency, on_step=on_step,
                           limits=job.budget, checkpoint=job.checkpoints, continue_from=_continued(job, config),
                           device=device)
        metrics = with_extra_latencies(metrics, os.path.join(out_dir, ARTIFACT_NAME), task.example_inputs,
                                       extra_meters(job))
        result = {"metrics_json": json.dumps(metrics.to_dict())}  # Tune flattens nested dicts
    except Exception as exc:  # the candidate failed, not the worker
        result = {"error": trial_error(exc)}
    release_gpu_memory(device)
    tune.report({**base, **result, "final": True, "finished_at": now(),
                 "duration_s": round(time.perf_counter() - clock, 3)})
