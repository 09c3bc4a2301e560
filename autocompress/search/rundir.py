"""The run directory: one search = one directory.

study.db (the Optuna study, source of truth), run.json (task, space, teacher, versions,
machine, settings), trials.csv (every trial), pareto.csv (the front), teacher/model.onnx,
artifacts/<number>/model.onnx + plan.json.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> prepare_run_dir(d, resume=False) == d
    True
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import optuna
import pandas as pd

from autocompress.metrics import Metrics
from autocompress.search.pareto import OBJECTIVES, pareto_front
from autocompress.spaces.space import applied_params
from autocompress.task import UsageError

RUN_JSON, TRIALS_CSV, PARETO_CSV, STUDY_DB = "run.json", "trials.csv", "pareto.csv", "study.db"
ARTIFACTS, STUDY_NAME = "artifacts", "autocompress"
METRIC_COLUMNS = ["params", "macs", "fidelity", "level", "latency_spread_ms", "duration_s", "started_at",
                  "finished_at", "node", "duplicate_of", "error", "notes"]


def is_run_dir(path: Path) -> bool:
    return (path / RUN_JSON).is_file()


def prepare_run_dir(path: str | os.PathLike, *, resume: bool) -> Path:
    """Check ``--out``: a new or empty folder, or (with resume) an existing run."""
    path = Path(path)
    if resume:
        if not is_run_dir(path):
            raise UsageError(f"--resume: {path} is not a run directory (no {RUN_JSON}); "
                             "give the --out of an earlier search")
        return path
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if is_run_dir(path):
            raise UsageError(f"--out {path} already holds a run; add --resume to continue it, or choose a new --out")
        raise UsageError(f"--out {path} exists and is not a run directory; choose a new path or remove it")
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def read_run_json(path: Path) -> dict:
    return json.loads((path / RUN_JSON).read_text())


def trials_frame(study: optuna.Study, budget=None) -> pd.DataFrame:
    """One row per trial: number, state, objectives, feasible, metrics, fidelity, duration, error, and
    the knob values applied (a gated-off technique's knobs read as the teacher's)."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        metrics = trial.user_attrs.get("metrics", {})
        row = {"number": trial.number, "state": trial.state.name}
        row.update({name: metrics.get(name) for name in OBJECTIVES})
        row["feasible"] = bool(metrics) and (budget is None or budget.feasible(metrics))
        row.update({name: metrics.get(name, trial.user_attrs.get(name)) for name in METRIC_COLUMNS})
        row.update(dict(sorted(applied_params(trial.params, trial.distributions).items())))
        rows.append(row)
    columns = ["number", "state", *OBJECTIVES, "feasible", *METRIC_COLUMNS]
    return pd.DataFrame(rows, columns=columns + sorted({k for r in rows for k in r} - set(columns)))


def write_tables(study: optuna.Study, path: Path, *, fidelity: str, budget=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Refresh trials.csv and pareto.csv (full-fidelity front) from the study."""
    trials = trials_frame(study, budget)
    front = pareto_front(trials, fidelity=fidelity)
    for frame, name in ((trials, TRIALS_CSV), (front, PARETO_CSV)):
        tmp = path / (name + ".tmp")
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path / name)
    return trials, front


def teacher_metrics(run: dict) -> Metrics:
    return Metrics.from_dict(run["teacher"])
