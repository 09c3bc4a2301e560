"""Verified export: ship a stored candidate only after measuring the shipped copy again.

The target must be a new or empty folder outside the run directory. Everything is written
into a hidden folder beside it, which becomes the target only when every check passed: a
refused or failed export leaves nothing behind. Size comes from the copied file and must
equal the recorded size (a file's bytes are deterministic: a difference means the artifact
changed after it was measured). Latency comes from ONNX Runtime here (same settings as the
search; the teacher is measured again too, so the speed-up can be compared even when the
machine differs). Accuracy comes from the validation split (as recorded) and from the
held-out test split, which the search never saw: selection on validation makes the
validation number optimistic, the test number is the honest one.

Example (an int8 plan of the digits task, evaluated here, stands for a stored candidate):
    >>> import dataclasses, tempfile
    >>> from autocompress import DistillConfig, LayerPlan, Plan, evaluate, load_task
    >>> task, folder = load_task("digits"), Path(tempfile.mkdtemp())
    >>> plan = Plan(layers={"fc": LayerPlan(bits=8)})
    >>> recorded = evaluate(task, plan, out_dir=folder / "trial", config=DistillConfig(steps=0))
    >>> with staged_folder(folder / "shipped", run_dir=folder / "run") as staging:
    ...     measured = ship_artifact(task, folder / "trial" / "model.onnx", staging, recorded=recorded)
    >>> measured["size_bytes"] == recorded.size_bytes, measured["accuracy_val"] == recorded.accuracy
    (True, True)
    >>> [p.name for p in (folder / "shipped").iterdir()]
    ['model.onnx']
    >>> with staged_folder(folder / "shipped", run_dir=folder / "run") as staging:  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    autocompress.errors.UsageError: export target .../shipped is not empty; give a new or empty folder ...
    >>> wrong = dataclasses.replace(recorded, size_bytes=recorded.size_bytes + 1)
    >>> with staged_folder(folder / "again", run_dir=folder / "run") as staging:  # doctest: +ELLIPSIS
    ...     ship_artifact(task, folder / "trial" / "model.onnx", staging, recorded=wrong)
    Traceback (most recent call last):
    autocompress.errors.UsageError: .../model.onnx holds ... B but ... B were recorded: ...
    >>> (folder / "again").exists()                         # a refused export leaves nothing behind
    False
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from autocompress.evaluators.evaluate import (ARTIFACT_NAME, PLAN_NAME, LatencyMeter, latency_meter, local_latency,
                                              measure_artifact)
from autocompress.evaluators.latency_profile import LatencyProfile
from autocompress.evaluators.measure import file_sha256, onnx_metric, onnx_session, size_bytes
from autocompress.metrics import Metrics
from autocompress.evaluators.model_card import model_card
from autocompress.task import Task, UsageError, load_task

LATENCY_TOLERANCE = 0.10  # relative difference always treated as noise, on top of the run's own spread
METRICS_JSON, MODEL_CARD = "metrics.json", "MODEL_CARD.md"
DAMAGED = "the run directory is damaged: restore it from a copy, or run the search again"


def latency_verdict(recorded_ms: float, measured_ms: float, relative_noise: float) -> tuple[bool, str]:
    """(within noise?, sentence). Beyond max(3x the run's spread, 10%) counts as different.

    >>> latency_verdict(1.0, 1.05, 0.01)[0], latency_verdict(1.0, 1.5, 0.01)[0]
    (True, False)
    """
    allowed = max(3 * relative_noise, LATENCY_TOLERANCE)
    change = measured_ms / recorded_ms - 1
    if abs(change) <= allowed:
        return True, f"latency {measured_ms:.4f} ms vs {recorded_ms:.4f} ms recorded ({change:+.1%}): within noise"
    return False, (f"latency {measured_ms:.4f} ms vs {recorded_ms:.4f} ms recorded ({change:+.1%}) differs beyond "
                   f"the noise recorded for the run (+/-{allowed:.0%}): a different machine, or a busy one?")


def check_target(target: str | Path, *, run_dir: str | Path) -> Path:
    """``target`` as a Path, if it may receive an export: new or empty, and outside ``run_dir``."""
    target, run = Path(target), Path(run_dir).resolve()
    if target.resolve() == run or run in target.resolve().parents:
        raise UsageError(f"export target {target} is inside the run directory {run_dir}; export to a folder "
                         "outside it (the run's own files are never overwritten)")
    if target.exists() and not target.is_dir():
        raise UsageError(f"export target {target} is a file; give a new or empty folder")
    if target.is_dir() and any(target.iterdir()):
        raise UsageError(f"export target {target} is not empty; give a new or empty folder (nothing in it is "
                         "overwritten)")
    return target


@contextmanager
def staged_folder(target: str | Path, *, run_dir: str | Path) -> Iterator[Path]:
    """A hidden folder beside ``target`` to write into; it becomes ``target`` only when the block
    finishes without an error, and is removed otherwise (a write that fails, say on a full disk,
    is one UsageError)."""
    target = check_target(target, run_dir=run_dir).resolve()  # "." or "x/.." get a real name and parent
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.partial"
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"export target {target} cannot be created ({exc.strerror}); give a folder you can "
                         "write to") from None
    try:
        yield staging
        try:
            os.replace(staging, target)  # an empty folder is replaced; a folder filled meanwhile is not
        except OSError as exc:
            raise UsageError(f"export target {target} could not be written ({exc.strerror}); give a new or "
                             "empty folder") from None
    except OSError as exc:  # writing the staged files: a full disk, a file system gone read-only
        shutil.rmtree(staging, ignore_errors=True)
        raise UsageError(f"export target {target} could not be written ({exc.strerror or exc}); free space there "
                         "or give another folder (nothing was written)") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _session(path: Path, source: Path):
    try:
        return onnx_session(str(path))
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's load errors are plain Exceptions
        message = " ".join(str(exc).split())[:200]
        raise UsageError(f"{source} is not a model ONNX Runtime can load ({message}); {DAMAGED}") from None


def ship_artifact(task: Task, source: str | Path, folder: str | Path, *, recorded: Metrics,
                  latency: LatencyMeter = local_latency) -> dict:
    """Copy ``source`` to ``folder``/model.onnx and measure the copy (its latency with ``latency``,
    the run's profile); its size must be ``recorded``'s."""
    source, shipped = Path(source), Path(folder) / ARTIFACT_NAME
    if not source.is_file():
        raise UsageError(f"{source} is missing; {DAMAGED}")
    shutil.copyfile(source, shipped)
    size = size_bytes(str(shipped))
    if size != recorded.size_bytes:
        raise UsageError(f"{source} holds {size:,} B but {recorded.size_bytes:,} B were recorded: the file changed "
                         f"after it was measured; {DAMAGED}")
    if recorded.sha256 and file_sha256(shipped) != recorded.sha256:
        raise UsageError(f"{source} is not the file that was measured (its SHA-256 differs from the one recorded, "
                         f"though its size is the same): the file changed after it was measured; {DAMAGED}")
    session = _session(shipped, source)
    val, median, spread = measure_artifact(task, str(shipped), split="val", latency=latency)
    return {"accuracy_val": val, "accuracy_test": onnx_metric(session, task.test, task.metric), "size_bytes": size,
            "latency_ms": median, "latency_iqr_ms": spread}


def run_latency(run) -> LatencyMeter:
    """The latency meter of the profile ``run`` was searched under (runs before profiles: the default)."""
    return latency_meter(LatencyProfile.from_dict((run.info.get("settings") or {}).get("latency") or {}))


def _teacher_now(task: Task, path: Path, latency: LatencyMeter) -> tuple[float, float]:
    """(test accuracy, latency ms) of the run's teacher file, measured here."""
    if not path.is_file():
        raise UsageError(f"{path} (the teacher, measured again for the comparison) is missing; {DAMAGED}")
    return onnx_metric(_session(path, path), task.test, task.metric), latency(str(path), task.example_inputs)[0]


def run_task(run, *, task: Task | None = None, data_dir: str | None = None) -> Task:
    """``task`` if it is the run's task, else the run's task rebuilt from run.json."""
    recorded = run.info.get("task") or {}
    if task is not None:
        if data_dir is not None:
            raise UsageError("give task= or data_dir=, not both (data_dir= only helps rebuild the run's task)")
        if task.name != recorded.get("name"):
            raise UsageError(f"task={task.name!r} is not the task of {run.path} ({recorded.get('name')!r}); pass "
                             "that task, or none to rebuild it from run.json")
        return task
    if not recorded.get("spec"):
        raise UsageError(f"{run.path} does not record how to load its task (task.spec in run.json); pass task=")
    return load_task(recorded["spec"], data_dir=data_dir or recorded.get("data_dir"))


def export_candidate(run, candidate, out_dir: str | Path, *, task: Task | None = None,
                     data_dir: str | None = None) -> dict:
    """Write model.onnx (checked), plan.json, metrics.json (recorded vs measured) and MODEL_CARD.md
    into ``out_dir``, all or nothing; returns what metrics.json holds."""
    check_target(out_dir, run_dir=run.path)  # refuse before the task is loaded
    task = run_task(run, task=task, data_dir=data_dir)
    with staged_folder(out_dir, run_dir=run.path) as staging:
        latency = run_latency(run)
        measured = ship_artifact(task, candidate.artifact, staging, recorded=candidate.metrics, latency=latency)
        (staging / PLAN_NAME).write_text(candidate.plan.to_json())
        teacher_test, teacher_latency = _teacher_now(task, run.teacher_artifact, latency)
        teacher = run.teacher
        noise = run.info.get("latency_noise", {}).get("relative_spread", 0.0)
        ok, sentence = latency_verdict(candidate.latency_ms, measured["latency_ms"], noise)
        report = {
            "trial": candidate.number,
            "recorded": {"accuracy_val": candidate.accuracy, "size_bytes": candidate.size_bytes,
                         "latency_ms": candidate.latency_ms},
            "measured": measured,
            "teacher": {"accuracy": teacher.accuracy, "size_bytes": teacher.size_bytes,
                        "latency_ms": teacher.latency_ms, "accuracy_test": teacher_test,
                        "latency_ms_now": teacher_latency},
            "speedup": {"recorded": teacher.latency_ms / candidate.latency_ms,
                        "now": teacher_latency / measured["latency_ms"]},
            "latency_within_noise": ok,
            "latency_note": sentence,
            "fidelity": candidate.metrics.fidelity,
            "chosen": candidate.chosen,
            "plan": candidate.plan.to_dict(),
        }
        (staging / METRICS_JSON).write_text(json.dumps(report, indent=2) + "\n")
        (staging / MODEL_CARD).write_text(model_card(run.info, report))
    return report
