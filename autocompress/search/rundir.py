"""The run directory: one search = one directory.

study.db (the Optuna study, source of truth), run.json (task, space, teacher, versions,
machine, settings), trials.csv (every trial), pareto.csv (the front), sensitivity.csv (each
knob value alone, measured before the first trial), teacher/model.onnx,
artifacts/<number>/model.onnx + plan.json.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> prepare_run_dir(d, resume=False) == d
    True
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import shutil
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from autocompress.metrics import PROFILE_LATENCY, Metrics
from autocompress.errors import UsageError

if TYPE_CHECKING:  # the tables' modules are imported where used: a Ray worker reads only the file names here
    import optuna
    import pandas as pd

RUN_JSON, TRIALS_CSV, PARETO_CSV, STUDY_DB = "run.json", "trials.csv", "pareto.csv", "study.db"
REPORT_HTML, SENSITIVITY_CSV = "report.html", "sensitivity.csv"
ARTIFACTS, TEACHER, STUDY_NAME, LOCK = "artifacts", "teacher", "autocompress", ".lock"
WRITE_TEST = ".write-test"  # made and removed when --out is checked
RUN_SCHEMA = 1  # run.json's layout; 0 = written before it carried a schema (readable, not resumable)
RUN_KEYS = ("teacher", "settings")  # what every reader needs; a resume also needs RESUME_KEYS
RESUME_KEYS = ("task", "study", "space")
INTERRUPTED = "interrupted: the search stopped while it ran"
METRIC_COLUMNS = ["params", "macs", "fidelity", "steps", "rung", "source", "latency_spread_ms", "duration_s", "started_at",
                  "finished_at", "node", "duplicate_of", "error", "notes", "sha256"]


def is_run_dir(path: Path) -> bool:
    return (path / RUN_JSON).is_file()


def out_exists(path: Path) -> bool:
    """Whether ``--out`` exists; a path the file system cannot take (a name too long) is one line."""
    try:
        return path.exists()
    except OSError as exc:
        raise UsageError(f"--out {str(path)[:80]}...: not a usable path ({exc.strerror or exc}); choose a shorter "
                         "one") from None


def never_recorded(path: Path) -> bool:
    """Whether ``path`` holds only what a search writes before its run.json (the lock, the
    teacher's file, the study): a search stopped (say, killed) before it recorded anything.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / TEACHER).mkdir(); (d / LOCK).write_text("1")
    1
    >>> never_recorded(d), never_recorded(d.parent)
    (True, False)
    """
    if not path.is_dir() or is_run_dir(path):
        return False
    names = {p.name for p in path.iterdir()} - {LOCK, WRITE_TEST}
    return bool(names) and all(name == TEACHER or name.startswith(STUDY_DB) for name in names)


STOPPED_UNRECORDED = ("the search in {path} stopped before it recorded anything (no " + RUN_JSON + "): nothing to "
                      "read or resume; run the same search command again, without --resume (it starts there afresh)")


def _clear_unrecorded(path: Path) -> None:
    """Remove what a search stopped before its run.json left in ``path`` (unless it still runs)."""
    with locked(path):
        for entry in path.iterdir():
            if entry.name == TEACHER:
                shutil.rmtree(entry)
            elif entry.name.startswith(STUDY_DB):
                entry.unlink()


def prepare_run_dir(path: str | os.PathLike, *, resume: bool) -> Path:
    """Check ``--out``: a new or empty folder, or (with resume) an existing run. A folder where a
    search was stopped before it recorded anything is taken again, as if empty."""
    path = Path(path)
    out_exists(path)
    if resume:
        if never_recorded(path):
            raise UsageError(STOPPED_UNRECORDED.format(path=path))
        if not is_run_dir(path):
            raise UsageError(f"--resume: {path} is not a run directory (no {RUN_JSON}); "
                             "give the --out of an earlier search")
        return path
    if never_recorded(path):
        _clear_unrecorded(path)
    if path.exists() and (not path.is_dir() or any(p.name != LOCK for p in path.iterdir())):
        if is_run_dir(path):
            raise UsageError(f"--out {path} already holds a run; add --resume to continue it, or choose a new --out")
        raise UsageError(f"--out {path} exists and is not an empty folder; choose a new path or remove it")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / WRITE_TEST
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot write there ({exc.strerror or exc}); choose a writable folder") from exc
    return path


@contextmanager
def locked(path: Path):
    """Hold the run directory's lock for the duration: a second search on it is refused.

    The lock (``flock`` on ``.lock``) dies with the process, so a driver killed with SIGKILL
    never blocks the resume that follows.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with locked(d):
    ...     with locked(d):
    ...         pass
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: another search is running in ... (pid ...); wait for it to end (or stop it), or use another --out
    """
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UsageError(f"another search is running in {path} (pid {holder}); wait for it to end (or stop it), "
                         "or use another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield path
    finally:
        os.close(fd)  # closing releases the lock


def versions() -> dict[str, str]:
    names = ["torch", "torch-pruning", "onnx", "onnxruntime", "optuna", "numpy", "scikit-learn", "autocompress"]
    found = {"python": sys.version.split()[0]}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> dict[str, object]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "node": platform.node()}


def new_run_info(*, task, space, settings, execution, workers: int, trials: int, storage: str | None, out: Path,
                 teacher_measured: tuple, task_spec: str | None, data_dir: str | None, command: str) -> dict:
    """What run.json holds for a new search: the task, the space and the model's layers, the
    teacher as measured (with its latency noise and where), the settings, versions and machine."""
    import time
    from datetime import datetime, timezone

    from autocompress.evaluators.evaluate import fidelity_label
    from autocompress.search.pareto import OBJECTIVES
    from autocompress.search.storage import redact

    teacher, noise, where = teacher_measured
    study_name = STUDY_NAME if storage is None else f"{STUDY_NAME}-{out.resolve().name}-{int(time.time())}"
    discovery = space.discovery
    return {
        "schema": RUN_SCHEMA,
        "task": {"name": task.name, "spec": task_spec or task.name, "data_dir": data_dir, "recipe": task.recipe,
                 "train": task.num_examples("train"), "val": task.num_examples("val"),
                 "test": task.num_examples("test")},
        "space": space.summary(),
        "model": {"layers": [layer.name for layer in discovery.layers],
                  "stages": {stage: list(blocks) for stage, blocks in discovery.stages.items()},
                  "groups": {group.name: list(group.members) for group in discovery.groups},
                  "channels": {group.name: group.channels for group in discovery.groups}},
        "teacher": teacher.to_dict(),
        "latency_noise": noise,
        "objectives": OBJECTIVES,
        "study": {"name": study_name, "storage": STUDY_DB if storage is None else redact(storage)},
        "settings": {**settings.to_dict(), "trials": trials, "fidelity": fidelity_label(settings.distill),
                     "execution": {**execution.to_dict(), "workers": workers},
                     "latency": {**settings.latency.describe(), "where": where},
                     "latency_profiles": {name: {**p.describe(), "where": where}
                                          for name, p in settings.latency_profiles.items()}},
        "versions": versions(),
        "machine": machine(),
        "command": command,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def resume_command(*, task_spec: str, out: str | os.PathLike, trials: int, storage: str | None = None,
                   data_dir: str | None = None) -> str:
    """The one command that continues the search in ``out``, quoted for a shell (with the task's
    ``--data-dir`` where it had one); a database URL's password is shown as PASSWORD (never printed).

    >>> print(resume_command(task_spec="digits", out="runs/my run", trials=40))
    autocompress search --task digits --out 'runs/my run' --trials 40 --resume
    >>> print(resume_command(task_spec="digits", out="r", trials=4, storage="postgresql://al:s3cret@db/s"))
    autocompress search --task digits --out r --trials 4 --storage postgresql://al:PASSWORD@db/s --resume
    >>> print(resume_command(task_spec="cifar10-resnet20", out="r", trials=4, data_dir="/data/shared"))
    autocompress search --task cifar10-resnet20 --data-dir /data/shared --out r --trials 4 --resume
    """
    import shlex

    from autocompress.search.storage import redact

    shown = ["--storage", redact(storage).replace("***", "PASSWORD")] if storage else []
    data = ["--data-dir", str(data_dir)] if data_dir else []
    return shlex.join(["autocompress", "search", "--task", task_spec, *data, "--out", str(out), "--trials", str(trials),
                       *shown, "--resume"])


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def measured(accuracy, size, latency) -> bool:
    """Whether three numbers could come from a measurement: the task's metric is any finite
    number (accuracy, or a user's metric such as negative mean squared error).

    >>> measured(0.9, 1000, 0.5), measured(float("nan"), 1000, 0.5), measured(-3.2, 1000, 0.5)
    (True, False, True)
    """
    try:
        accuracy, size, latency = float(accuracy), float(size), float(latency)
    except (TypeError, ValueError):
        return False
    return math.isfinite(accuracy) and size > 0 and latency > 0 and math.isfinite(size) and math.isfinite(latency)


def read_run_json(path: Path, *, resume: bool = False) -> dict:
    """run.json of a run directory, checked: a damaged file or an incompatible schema is one
    UsageError naming the fix, never a misread. ``resume`` also refuses runs from before the
    schema (their settings cannot be restored exactly)."""
    file = Path(path) / RUN_JSON
    try:
        run = json.loads(file.read_text())
    except FileNotFoundError:
        if never_recorded(Path(path)):
            raise UsageError(STOPPED_UNRECORDED.format(path=path)) from None
        raise UsageError(f"{path} is not a run directory (no {RUN_JSON}); give the --out of a search") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{file} is damaged ({type(exc).__name__}: {str(exc)[:120]}); restore it from a backup, "
                         "or start a new --out") from None
    needed = RUN_KEYS + (RESUME_KEYS if resume else ())
    missing = [key for key in needed if not isinstance(run, dict) or key not in run]
    if missing:
        raise UsageError(f"{file} is damaged (no {', '.join(missing)}); restore it from a backup, or start a new --out")
    if not all(isinstance(run[key], dict) for key in needed if key != "space"):
        raise UsageError(f"{file} is damaged (its {', '.join(needed)} are not all objects); restore it from a "
                         "backup, or start a new --out")
    schema = run.get("schema", 0)
    if not isinstance(schema, int) or schema > RUN_SCHEMA:
        raise UsageError(f"{file} was written by a newer autocompress (schema {schema}; this one reads up to "
                         f"{RUN_SCHEMA}); upgrade autocompress to read it")
    teacher = run["teacher"]
    if not measured(teacher.get("accuracy"), teacher.get("size_bytes"), teacher.get("latency_ms")):
        raise UsageError(f"{file} holds teacher metrics that no measurement gives (a finite metric, size and latency "
                         "above 0); the run directory is damaged: restore it from a copy, or run the search again")
    if resume and schema < RUN_SCHEMA:
        raise UsageError(f"--resume: {path} was written by an older autocompress (schema {schema}) whose settings "
                         "cannot be restored exactly; start a new --out (best and report still read it)")
    return run


def trials_frame(study: optuna.Study, budget=None) -> pd.DataFrame:
    """One row per trial: number, state, objectives, feasible, metrics, fidelity, duration, error, and
    the knob values applied (a gated-off technique's knobs read as the teacher's)."""
    import pandas as pd

    from autocompress.search.pareto import OBJECTIVES
    from autocompress.search.trial_record import STORED_FIELDS, TrialRecord
    from autocompress.spaces.space import applied_params

    rows = []
    for trial in study.get_trials(deepcopy=False):
        saved = TrialRecord.of(trial)
        metrics = saved.metrics or {}
        row = {"number": trial.number, "state": saved.state}
        row.update({name: metrics.get(name) for name in OBJECTIVES})
        row.update({key: value for key, value in metrics.items() if key.startswith(PROFILE_LATENCY)})
        row["feasible"] = bool(metrics) and (budget is None or budget.feasible(metrics))
        row.update({name: metrics.get(name, getattr(saved, name) if name in STORED_FIELDS else None)
                    for name in METRIC_COLUMNS})
        if saved.state == "FAIL" and not row["error"]:
            row["error"] = INTERRUPTED  # its driver died while it ran
        row.update(dict(sorted(applied_params(trial.params, trial.distributions, saved.plan).items())))
        rows.append(row)
    profiles = sorted({k for r in rows for k in r if k.startswith(PROFILE_LATENCY)})  # latency_ms@NAME
    columns = ["number", "state", *OBJECTIVES, *profiles, "feasible", *METRIC_COLUMNS]
    return pd.DataFrame(rows, columns=columns + sorted({k for r in rows for k in r} - set(columns)))


def write_tables(study: optuna.Study, path: Path, *, fidelity: str, budget=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Refresh trials.csv and pareto.csv (full-fidelity front) from the study."""
    from autocompress.search.pareto import pareto_front

    trials = trials_frame(study, budget)
    front = pareto_front(trials, fidelity=fidelity)
    for frame, name in ((trials, TRIALS_CSV), (front, PARETO_CSV)):
        tmp = path / (name + ".tmp")
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path / name)
    return trials, front


def teacher_metrics(run: dict) -> Metrics:
    return Metrics.from_dict(run["teacher"])
