"""Evaluate one plan: compress, export the artifact, measure that file.

Example:
    >>> import os, tempfile
    >>> from autocompress import DistillConfig, LayerPlan, Plan, load_task
    >>> task, out = load_task("digits"), tempfile.mkdtemp()
    >>> plan = Plan(layers={"stem.0": LayerPlan(prune=0.5), "fc": LayerPlan(bits=8)})
    >>> metrics = evaluate(task, plan, out_dir=out, config=DistillConfig(steps=0))
    >>> metrics.size_bytes == os.path.getsize(os.path.join(out, "model.onnx"))   # the file's own bytes
    True
    >>> metrics.fidelity, Plan.from_json(open(os.path.join(out, "plan.json")).read()) == plan
    ('steps=0,data=1,onnx-val', True)
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from autocompress.compressors.distill import DistillConfig
from autocompress.compressors.distill_checkpoint import checkpoint_problem
from autocompress.compressors.pipeline import Compressed, build, fine_tune
from autocompress.compressors.quantize import freeze
from autocompress import model_io
from autocompress.evaluators.export import export_onnx
from autocompress.evaluators.latency_profile import LatencyProfile
from autocompress.evaluators.measure import (MetricError, file_sha256, latency_ms, onnx_metric, onnx_session,
                                             params_and_macs, size_bytes)
from autocompress.metrics import Metrics
from autocompress.plan import Plan
from autocompress.budget import Budget
from autocompress.arguments import PATH, expect
from autocompress.task import Task, UsageError, one_line
from autocompress.artifact_files import ARTIFACT_NAME, CHECKPOINT_NAME, PLAN_NAME



def export_artifact(compressed: Compressed, example_inputs, path: str) -> nn.Module:
    """Write the ONNX artifact of a compressed model; returns the plain float model exported."""
    plain, specs = freeze(copy.deepcopy(compressed.model))
    export_onnx(plain, example_inputs, path, specs)
    return plain


def fidelity_label(config: DistillConfig) -> str:
    """How a number was made, e.g. 'steps=150,data=1,onnx-val' (full fidelity = all steps,
    all data, accuracy of the ONNX file on the whole validation split)."""
    return f"steps={config.steps},data={config.data_fraction:g},onnx-val"


LatencyMeter = Callable[[str, torch.Tensor], tuple[float, float]]


def local_latency(path: str, example_inputs: torch.Tensor) -> tuple[float, float]:
    """(median, IQR) latency of an ONNX file, measured in this process."""
    return latency_ms(onnx_session(path), example_inputs)


def latency_meter(profile: LatencyProfile) -> LatencyMeter:
    """The meter of a latency profile: ``local_latency`` for the default (1 thread, batch 1, CPU),
    else the profile's measurement with the task's example inputs."""
    if profile == LatencyProfile():
        return local_latency

    def measure(path: str, example_inputs: torch.Tensor) -> tuple[float, float]:
        measured = profile.measure(path, example=model_io.arrays(example_inputs))
        return measured["latency_ms"], measured["latency_spread_ms"]
    return measure


def with_extra_latencies(metrics: Metrics, path: str, example_inputs: torch.Tensor,
                         meters: dict[str, LatencyMeter]) -> Metrics:
    """``metrics`` with the file at ``path`` also measured by each named meter (a search's extra
    latency profiles: ``Metrics.latencies``, median ms by name)."""
    if not meters:
        return metrics
    return dataclasses.replace(metrics, latencies={name: meter(path, example_inputs)[0]
                                                   for name, meter in meters.items()})


def measure_artifact(task: Task, path: str, *, split: str = "val",
                     latency: LatencyMeter = local_latency) -> tuple[float, float, float]:
    """(metric on ``split``, median latency ms, latency IQR ms) of an ONNX file."""
    metric = onnx_metric(onnx_session(path), getattr(task, split), task.metric)
    median, spread = latency(path, task.example_inputs)
    return metric, median, spread


def evaluate(task: Task, plan: Plan, *, out_dir: str | os.PathLike, config: DistillConfig = DistillConfig(),
             latency: LatencyMeter = local_latency, on_step: Callable[[int], None] | None = None,
             limits: Budget | None = None, checkpoint: bool = False,
             continue_from: str | os.PathLike | None = None, device: torch.device | None = None) -> Metrics:
    """Compress ``task.teacher`` by ``plan``, write ``out_dir/model.onnx`` + ``plan.json``, measure.

    Structure first: the candidate is built, exported and measured for size and latency before
    any fine-tuning. When that breaks a hard size or latency limit in ``limits``, it is not
    fine-tuned: its metrics are those of the untuned file (``steps`` 0, fidelity ``steps=0``).
    ``latency`` measures the file (default: here); ``on_step`` hears fine-tuning progress.
    ``checkpoint``: keep the fine-tuning state (weights, optimizer, step) in
    ``out_dir/checkpoint.pt``; ``continue_from``: an earlier candidate's checkpoint of the same
    plan, whose fine-tuning this one continues up to ``config.steps`` instead of starting again
    (one that is missing or cannot be read: it fine-tunes from the start, and its notes say so).
    ``device``: where the fine-tuning runs (a trial's GPU); building, export and every
    measurement stay on the CPU.
    """
    expect("evaluate", "task", task, Task, how="a Task, e.g. autocompress.load_task('digits')")
    expect("evaluate", "plan", plan, Plan, how="an autocompress.Plan, e.g. Plan.from_json(open('plan.json').read())")
    expect("evaluate", "out_dir", out_dir, PATH, how="the folder for model.onnx and plan.json")
    expect("evaluate", "config", config, DistillConfig, how="an autocompress.DistillConfig, e.g. DistillConfig(steps=100)")
    expect("evaluate", "limits", limits, Budget, optional=True, how="an autocompress.Budget, e.g. Budget(max_size_bytes=1e5)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / PLAN_NAME).write_text(plan.to_json())
    path = str(out / ARTIFACT_NAME)
    built = build(task, plan)
    plain = export_artifact(built, task.example_inputs, path)
    limits = (limits or Budget()).structural()
    structure = {"size_bytes": size_bytes(path)}
    if limits.max_latency_ms is not None:  # the final file is measured anyway: only for the check
        structure["latency_ms"] = latency(path, task.example_inputs)[0]
    over = limits.violations(structure)
    if over:
        built.notes.append("not fine-tuned: over the budget's " + " and ".join(
            {"size_bytes": "size", "latency_ms": "latency"}[axis] for axis in over))
        return _measured(task, built, plain, path, config=dataclasses.replace(config, steps=0), latency=latency)
    if config.steps:
        state = str(out / CHECKPOINT_NAME) if checkpoint or continue_from else None
        if continue_from is not None and Path(continue_from).resolve() != Path(state).resolve():
            problem = checkpoint_problem(continue_from)
            if problem is None:
                shutil.copyfile(continue_from, state)
            else:  # a promotion whose rung-below state is gone or garbled: all its steps, said so
                built.notes.append(f"fine-tuned from the start, not continued: {problem}")
        fine_tune(task, built, config=config, on_step=on_step, checkpoint=state, device=device)
        plain = export_artifact(built, task.example_inputs, path)
    return _measured(task, built, plain, path, config=config, latency=latency)


def _measured(task: Task, built: Compressed, plain: nn.Module, path: str, *, config: DistillConfig,
              latency: LatencyMeter) -> Metrics:
    """The metrics of the exported file at ``path``, made from ``built`` (exported as ``plain``)."""
    metric, median, spread = measure_artifact(task, path, latency=latency)
    params, macs = params_and_macs(plain, task.example_inputs)
    return Metrics(accuracy=metric, size_bytes=size_bytes(path), latency_ms=median, params=params, macs=macs,
                   fidelity=fidelity_label(config), latency_spread_ms=spread, notes="; ".join(built.notes),
                   sha256=file_sha256(path), steps=config.steps)


def evaluate_teacher(task: Task, *, out_dir: str | os.PathLike, latency: LatencyMeter = local_latency) -> Metrics:
    """The teacher, exported (BatchNorm folded, as ONNX Runtime would run it) and measured the same way.
    A metric that fails on the teacher is the user's to fix (a UsageError); on a candidate, the
    same MetricError fails that candidate only."""
    try:
        return evaluate(task, Plan(), out_dir=out_dir, config=DistillConfig(steps=0), latency=latency)
    except torch.onnx.errors.OnnxExporterError as exc:
        raise unexportable(task, exc) from exc
    except MetricError as exc:
        raise UsageError(f"task {task.name!r}: on the teacher's validation outputs, {exc}; make Task.metric "
                         "return a finite number for logits (N, classes) and labels (N,), higher is better") from exc


def unexportable(task: Task, exc: Exception) -> UsageError:
    """The one line for a teacher that torch cannot export to ONNX (an operator ONNX lacks)."""
    return UsageError(f"task {task.name!r}: the teacher cannot be exported to ONNX ({type(exc).__name__}: "
                      f"{one_line(exc)}); write that part with operators ONNX has, or register an export for it "
                      "(torch.onnx.register_custom_op_symbolic)")


def check_teacher_exports(task: Task) -> None:
    """Export the teacher as the search will (to a temporary folder); a UsageError if torch cannot."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="autocompress-export-") as folder:
        try:
            export_artifact(build(task, Plan()), task.example_inputs, str(Path(folder) / ARTIFACT_NAME))
        except torch.onnx.errors.OnnxExporterError as exc:
            raise unexportable(task, exc) from exc

