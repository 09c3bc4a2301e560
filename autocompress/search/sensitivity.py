"""The sensitivity scan: every knob value of the search space applied alone, measured like a trial.

For each layer's bit-width and rank, each pruning group's ratio and each student knob (depth
per stage, width), and each of its values other than the teacher's, a one-knob plan is built
(and one plan with every layer int8: whether int8 kernels pay on this model at all; and the
same on float kernels, ``Plan.kernels``)
(calibration included), fine-tuned for ``steps`` steps (default 0: calibration only), exported
and measured by ``evaluators.evaluate`` (the trials' own path): accuracy on the first
``samples`` validation examples (a fixed subset), size of the file, latency of the file. The
teacher is one more row, measured the same way at the same time, and every row carries its
deltas to it: what a predictor of a plan's accuracy, size and latency combines (issue 14).

A search runs the scan on its Ray workers before its first trial and stores it as
``sensitivity.csv`` in the run directory; a resumed search reuses the stored rows and only
computes those missing (a scan stopped half way). A cell that fails is stored with its error.

Example (a tiny model, in this process):
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import TensorDataset
    >>> from autocompress import Task
    >>> from autocompress.compressors.pipeline import task_context
    >>> from autocompress.spaces.space import SearchSpace
    >>> data = TensorDataset(torch.randn(64, 8), torch.arange(64) % 3)
    >>> task = Task(name="toy", teacher=nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)),
    ...             train=data, val=data, test=data, example_inputs=data.tensors[0][:1])
    >>> space = SearchSpace(task_context(task).discovery, techniques=("quant",))
    >>> [cell.label for cell in scan_cells(space)]
    ['teacher', 'bits/*=8', 'bits/*float=8', 'bits/0=8', 'bits/0=4', 'bits/0=2', 'bits/2=8', 'bits/2=4', 'bits/2=2']
    >>> table = scan_in_process(task, space, samples=32)
    >>> len(table), table.loc[0, "knob"], float(table.loc[0, "accuracy_delta"]), int(table["samples"].max())
    (9, 'teacher', 0.0, 32)
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
import pandas as pd
from torch.utils.data import Subset

from autocompress.compressors.distill import DistillConfig
from autocompress.devices import trial_error
from autocompress.evaluators.evaluate import LatencyMeter, evaluate, local_latency
from autocompress.plan import Plan
from autocompress.search.rundir import SENSITIVITY_CSV
from autocompress.spaces.space import GATE_PREFIX, KERNELS_KNOB, SearchSpace, teacher_value
from autocompress.task import Task, UsageError, one_line

# the table's columns, file and text live in sensitivity_table (no torch: reports read it); named here too
from autocompress.search.sensitivity_table import (COLUMNS, EVERY_LAYER_INT8, EVERY_LAYER_INT8_FLOAT,  # noqa: F401
                                                   TEACHER, WHOLE_MODEL, read_table, whole_model_speeds,
                                                   with_deltas, write_table)

SAMPLES = 512  # the fixed validation subset: its first SAMPLES examples (all of a smaller split)
SCAN_SHARE = 1 / 5  # of a search's --time-budget: no scan batch starts after it (the trials need the rest)
BATCH_CELLS = 4  # cells go to the workers this many at a time, in scan order (a deadline cuts the last ones)
KIND_ORDER = ("bits", "prune", "arch", "rank")  # among cells of the same weight count


@dataclass(frozen=True)
class Cell:
    """One knob at one value, every other knob at the teacher's (knob ``teacher``: no change)."""

    knob: str
    value: float | int | None = None

    @property
    def label(self) -> str:
        return TEACHER if self.knob == TEACHER else f"{self.knob}={self.value:g}"

    @property
    def key(self) -> tuple[str, float | None]:
        return self.knob, None if self.value is None else round(float(self.value), 6)


def _values(dist: optuna.distributions.BaseDistribution) -> list:
    choices = getattr(dist, "choices", None)
    if choices is not None:
        return list(choices)
    step = dist.step or 1
    count = int(round((dist.high - dist.low) / step)) + 1
    return [type(dist.low)(round(dist.low + i * step, 6)) for i in range(count)]


def _bit_knobs(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    return {name: dist for name, dist in space.distributions().items()
            if name.startswith("bits/") and 8 in _values(dist)}


def scan_cells(space: SearchSpace) -> list[Cell]:
    """The teacher, every layer int8 at once (where the space has bit-widths: whether int8 kernels
    pay on this model at all, which no one layer alone shows) on int8 kernels and, where the space
    offers the choice, on float kernels; then every knob of ``space`` (gates and the kernels
    knob, which alone changes nothing, aside) at each of its non-teacher values, the knobs of the
    most weights first (``knob_weights``): a scan cut short by its deadline misses the cells that
    move the fewest bytes."""
    cells = [Cell(TEACHER)]
    if _bit_knobs(space):
        cells += [Cell(EVERY_LAYER_INT8, 8)] + ([Cell(EVERY_LAYER_INT8_FLOAT, 8)] if KERNELS_KNOB in
                                                 space.distributions() else [])
    knobs = [(name, dist) for name, dist in space.distributions().items()
             if not name.startswith(GATE_PREFIX) and name != KERNELS_KNOB]
    knobs.sort(key=lambda item: (-knob_weights(space, item[0]), KIND_ORDER.index(item[0].partition("/")[0]),
                                 item[0]))
    for name, dist in knobs:
        teacher = teacher_value(name, dist)
        cells += [Cell(name, value) for value in _values(dist) if value != teacher]
    return cells


def knob_weights(space: SearchSpace, knob: str) -> int:
    """How many of the teacher's weights ``knob`` acts on: its layer's (``bits/``, ``rank/``), its
    group's members' (``prune/``), the blocks' of a stage (``arch/depth/``), every layer's (``arch/width``).

    >>> import torch
    >>> from torch import nn
    >>> from autocompress.spaces.layers import discover
    >>> space = SearchSpace(discover(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), torch.randn(1, 8)))
    >>> knob_weights(space, "bits/0"), knob_weights(space, "prune/0"), knob_weights(space, "arch/width")
    (128, 128, 176)
    """
    layers = space.discovery.layers
    kind, _, target = knob.partition("/")
    if kind in ("bits", "rank"):
        names = [target]
    elif kind == "prune":
        names = next(group.members for group in space.discovery.groups if group.name == target)
    elif knob.startswith("arch/depth/"):
        blocks = space.discovery.stages[knob.removeprefix("arch/depth/")]
        names = [layer.name for layer in layers if any(layer.name.startswith(f"{block}.") for block in blocks)]
    else:
        names = [layer.name for layer in layers]
    return sum(math.prod(layer.shape) for layer in layers if layer.name in names)


def cell_plan(space: SearchSpace, cell: Cell) -> Plan:
    """The plan of one cell: its knob set, its technique's gate on, everything else the teacher's."""
    if cell.knob == TEACHER:
        return Plan(importance=space.importance)
    if cell.knob == EVERY_LAYER_INT8:
        return space.plan_from_params(dict.fromkeys(_bit_knobs(space), cell.value))
    if cell.knob == EVERY_LAYER_INT8_FLOAT:
        return space.plan_from_params({**dict.fromkeys(_bit_knobs(space), cell.value), KERNELS_KNOB: "float"})
    return space.plan_from_params({cell.knob: cell.value})


def subset_task(task: Task, samples: int) -> Task:
    """``task`` whose validation split is its first ``samples`` examples (the scan's fixed subset)."""
    if task.num_examples("val") <= samples:
        return task
    return dataclasses.replace(task, val=Subset(task.val, range(samples)))


def evaluate_cell(task: Task, space: SearchSpace, cell: Cell, *, config: DistillConfig,
                  latency: LatencyMeter = local_latency, on_step: Callable[[int], None] | None = None,
                  device=None) -> dict:
    """One row of the scan (no deltas yet): ``task`` already cut to the subset; a failure is
    the row's ``error``, never an exception."""
    kind, _, target = cell.knob.partition("/")
    if cell.knob == TEACHER:  # the reference is the teacher as it is, never a fine-tuned copy of it
        config = dataclasses.replace(config, steps=0)
    row = {"knob": cell.knob, "kind": kind, "target": target, "value": cell.value,
           "samples": task.num_examples("val"), "steps": config.steps}
    clock = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="autocompress-sensitivity-") as out:
            metrics = evaluate(task, cell_plan(space, cell), out_dir=out, config=config, latency=latency,
                               on_step=on_step, device=device)
        row.update(accuracy=metrics.accuracy, size_bytes=metrics.size_bytes, latency_ms=metrics.latency_ms,
                   latency_spread_ms=metrics.latency_spread_ms, sha256=metrics.sha256)
    except Exception as exc:  # the cell failed, not the scan
        row["error"] = one_line(trial_error(exc))[:1000]
    row["duration_s"] = round(time.perf_counter() - clock, 3)
    return row


def evaluate_cells(task: Task, space: SearchSpace, cells: list[Cell], *, samples: int, config: DistillConfig,
                   latency: LatencyMeter = local_latency, on_step=None, device=None) -> list[dict]:
    """The rows of ``cells``; ``device``: where their fine-tuning steps run (None: the CPU)."""
    subset = subset_task(task, samples)
    return [evaluate_cell(subset, space, cell, config=config, latency=latency, on_step=on_step, device=device)
            for cell in cells]


def _stored_keys(table: pd.DataFrame | None) -> set:
    if table is None:
        return set()
    return {Cell(k, None if isinstance(v, float) and math.isnan(v) else v).key
            for k, v in zip(table["knob"], table["value"])}


def _order(table: pd.DataFrame, cells: list[Cell]) -> pd.DataFrame:
    rank = {cell.key: i for i, cell in enumerate(cells)}
    keys = [Cell(k, None if pd.isna(v) else v).key for k, v in zip(table["knob"], table["value"])]
    return table.assign(_rank=[rank.get(key, len(rank)) for key in keys]).sort_values("_rank", kind="stable") \
        .drop(columns="_rank").reset_index(drop=True)


def scan_in_process(task: Task, space: SearchSpace, *, samples: int = SAMPLES, config: DistillConfig | None = None,
                    progress: Callable[[str], None] = lambda line: None) -> pd.DataFrame:
    """The whole scan here, one cell after another (``autocompress inspect --sensitivity``); the
    teacher's cell first: one that cannot be measured (its metric raises, say) is one
    UsageError, before any other cell runs."""
    config = config or DistillConfig(steps=0)
    cells = scan_cells(space)
    progress(f"sensitivity scan: {len(cells)} cells in this process ({samples} validation samples, "
             f"{config.steps} fine-tuning steps each)")
    teacher = evaluate_cells(task, space, cells[:1], samples=samples, config=config)
    if isinstance(teacher[0].get("error"), str):
        raise UsageError(f"the teacher of {task.name!r} cannot be measured, so no cell can be compared with it: "
                         f"{teacher[0]['error'][:300]}")
    return with_deltas(teacher + evaluate_cells(task, space, cells[1:], samples=samples, config=config))


def scan_for_run(*, job, space: SearchSpace, out: Path, steps: int, workers: int, cpus_per_trial: float,
                 gpus_per_trial: float, samples: int = SAMPLES, time_limit_s: float | None = None,
                 progress: Callable[[str], None] = print) -> pd.DataFrame:
    """The scan of a search: the cells ``out/sensitivity.csv`` does not hold yet, run on the
    Ray workers (``job``: the search's worker job, its latency actor included), the table
    rewritten as each batch of cells comes back. No batch starts after ``time_limit_s``: the
    cells left are missing from the table (the predictor treats them as unknown), and a resumed
    search measures them."""
    cells = scan_cells(space)
    stored = read_table(out)
    missing = [cell for cell in cells if cell.key not in _stored_keys(stored)]
    if not missing:
        progress(f"sensitivity scan: {len(cells)} cells reused from {SENSITIVITY_CSV}")
        return stored
    workers, cpus_per_trial = scan_slots(workers, cpus_per_trial, gpus_per_trial)
    job = dataclasses.replace(job, threads=max(1, int(cpus_per_trial)))
    progress(f"sensitivity scan: {len(missing)} of {len(cells)} cells (each knob value alone; first {samples} "
             f"validation samples, {steps} fine-tuning steps), {workers} batch(es) at a time")
    clock = time.perf_counter()
    rows = [] if stored is None else stored.to_dict("records")

    def arrived(batch: list[dict]) -> None:
        rows.extend(batch)
        write_table(out, _order(with_deltas(rows), cells))

    deadline = None if time_limit_s is None else clock + time_limit_s
    done = _run_on_ray(job=job, space=space, batches=_batches(missing), samples=samples, steps=steps,
                       workers=workers, resources={"num_cpus": cpus_per_trial, "num_gpus": gpus_per_trial},
                       on_batch=arrived, deadline=deadline)
    table = read_table(out)
    failed = int(table["error"].notna().sum())
    left = "" if done == len(missing) else \
        f" ({len(missing) - done} left unmeasured: no batch starts after {time_limit_s:.0f} s, its share of the " \
        "time budget; --resume measures them)"
    progress(f"sensitivity scan: {done} cells in {time.perf_counter() - clock:.1f} s" + left
             + (f" ({failed} failed: their errors are in {SENSITIVITY_CSV})" if failed else "")
             + f"; stored in {out / SENSITIVITY_CSV}")
    return table


def scan_slots(workers: int, cpus_per_trial: float, gpus_per_trial: float) -> tuple[int, float]:
    """(batches at once, CPUs each) of the scan, given the search's trial slots. Without GPUs
    every CPU of the trials runs a batch of its own: a cell's work is mostly single-threaded
    (profiled on digits: torch's convolutions are 14% of it; building, exporting and measuring
    the plan are the rest). A GPU slot stays whole.

    >>> scan_slots(1, 2.0, 0.0), scan_slots(2, 1.0, 0.0), scan_slots(1, 4.0, 0.5), scan_slots(2, 3.0, 0.0)
    ((2, 1.0), (2, 1.0), (1, 4.0), (6, 1.0))
    """
    if gpus_per_trial or cpus_per_trial < 2:
        return workers, cpus_per_trial
    return int(workers * cpus_per_trial), 1.0


def _batches(cells: list[Cell]) -> list[list[Cell]]:
    """``cells`` in their order, ``BATCH_CELLS`` at a time (the teacher's first).

    >>> [len(batch) for batch in _batches([Cell(TEACHER)] * 10)]
    [4, 4, 2]
    """
    return [cells[i:i + BATCH_CELLS] for i in range(0, len(cells), BATCH_CELLS)]


def _scan_batch(job, space: SearchSpace, cells: list[Cell], samples: int, steps: int) -> list[dict]:
    """On a Ray worker: evaluate ``cells`` as the search's trials are evaluated (the worker's
    task, threads, GPU share and latency actor; its work pauses while a latency is measured)."""
    from autocompress.devices import current_trial_device, release_gpu_memory
    from autocompress.pause import pause_at_points, pause_point
    from autocompress.search.latency_actor import quiet_flag
    from autocompress.search.worker import _set_threads, job_latency, worker_task

    _set_threads(job.threads)
    pause_at_points(quiet_flag(job.run_id))
    latency = job_latency(job)
    config = dataclasses.replace(job.distill, steps=steps)
    device = current_trial_device()
    try:
        return evaluate_cells(worker_task(job), space, cells, samples=samples, config=config, latency=latency,
                              on_step=lambda step: pause_point(), device=device)
    finally:
        release_gpu_memory(device)


def _run_on_ray(*, job, space: SearchSpace, batches: list[list[Cell]], samples: int, steps: int, workers: int,
                resources: dict, on_batch: Callable[[list[dict]], None], deadline: float | None = None) -> int:
    """Each batch as one Ray task, ``workers`` of them at once, none started after ``deadline``
    (a ``time.perf_counter()`` value; the first ``workers`` always start); a task that dies fails
    its cells, not the scan. Ctrl-C cancels what has not come back. Returns the cells stored."""
    import ray

    remote = ray.remote(_scan_batch).options(**resources, max_retries=0)
    job_ref, space_ref = ray.put(job), ray.put(space)
    waiting, pending, started, stored = list(batches), {}, 0, 0
    try:
        while waiting or pending:
            if deadline is not None and started >= workers and time.perf_counter() >= deadline:
                waiting = []
            while waiting and len(pending) < workers:
                batch = waiting.pop(0)
                pending[remote.remote(job_ref, space_ref, batch, samples, steps)] = batch
                started += 1
            if not pending:
                break
            done, _ = ray.wait(list(pending), num_returns=1)
            batch = pending.pop(done[0])
            try:
                rows = ray.get(done[0])
            except Exception as exc:  # the worker died (or could not rebuild the task)
                if _stopped_by_the_user(exc):  # Ctrl-C reached the worker first: a resume measures them
                    continue
                reason = one_line(f"{type(exc).__name__}: {exc}")[:1000]
                rows = [{"knob": c.knob, "kind": c.knob.partition("/")[0], "target": c.knob.partition("/")[2],
                         "value": c.value, "samples": samples, "steps": steps, "error": reason} for c in batch]
            on_batch(rows)
            stored += len(batch)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    return stored


def _stopped_by_the_user(exc: Exception) -> bool:
    """Whether a scan task failed because Ctrl-C stopped it (its worker got the SIGINT too)."""
    import ray

    if isinstance(exc, ray.exceptions.TaskCancelledError) or isinstance(getattr(exc, "cause", None), KeyboardInterrupt):
        return True
    return "KeyboardInterrupt" in (str(exc).splitlines() or [""])[0]


__all__ = ["COLUMNS", "Cell", "WHOLE_MODEL", "whole_model_speeds", "SAMPLES", "cell_plan", "evaluate_cell", "knob_weights",
           "read_table", "scan_cells",
           "scan_for_run", "scan_in_process", "with_deltas"]
