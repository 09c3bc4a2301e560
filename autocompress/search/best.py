"""The best model under a budget, answered from stored results without re-running anything.

Only complete trials at the run's full fidelity are candidates (screening results never are).
Preferences: ``accurate`` (highest accuracy, ties by size then latency), ``smallest`` (size,
then accuracy, then latency), ``fastest`` (latency, then accuracy, then size).

Example:
    >>> run = load_run("runs/digits")                                         # doctest: +SKIP
    >>> best = run.best(max_latency_ms=0.03, min_accuracy=0.98)               # doctest: +SKIP
    >>> best.number, best.accuracy, best.size_bytes                           # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from autocompress.metrics import Metrics
from autocompress.plan import Plan
from autocompress.search import rundir
from autocompress.search.budget import Budget
from autocompress.search.pareto import pareto_front
from autocompress.task import UsageError

PREFERENCES = {
    "accurate": (["accuracy", "size_bytes", "latency_ms"], [False, True, True]),
    "smallest": (["size_bytes", "accuracy", "latency_ms"], [True, False, True]),
    "fastest": (["latency_ms", "accuracy", "size_bytes"], [True, False, True]),
}
NEAREST = 3


class NothingFeasible(UsageError):
    """No stored candidate meets the budget; ``nearest`` holds the closest ones."""

    def __init__(self, message: str, nearest: pd.DataFrame):
        super().__init__(message)
        self.nearest = nearest


@dataclass(frozen=True)
class Candidate:
    number: int
    metrics: Metrics
    plan: Plan
    artifact: Path

    @property
    def accuracy(self) -> float:
        return self.metrics.accuracy

    @property
    def size_bytes(self) -> int:
        return self.metrics.size_bytes

    @property
    def latency_ms(self) -> float:
        return self.metrics.latency_ms


@dataclass(frozen=True)
class Run:
    """A run directory, read back: its settings, teacher and trials."""

    path: Path
    info: dict
    trials: pd.DataFrame

    @property
    def teacher(self) -> Metrics:
        return Metrics.from_dict(self.info["teacher"])

    @property
    def fidelity(self) -> str:
        return self.info["settings"]["fidelity"]

    @property
    def candidates(self) -> pd.DataFrame:
        """Complete trials at full fidelity (the only ones any answer may use)."""
        t = self.trials
        return t[(t["state"] == "COMPLETE") & (t["fidelity"] == self.fidelity)]

    @property
    def pareto(self) -> pd.DataFrame:
        return pareto_front(self.trials, fidelity=self.fidelity)

    def best(self, *, max_size_bytes: int | None = None, max_latency_ms: float | None = None,
             min_accuracy: float | None = None, prefer: str = "accurate", budget: Budget | None = None) -> Candidate:
        """The preferred feasible candidate; raises NothingFeasible (with the nearest) if none."""
        budget = budget or Budget(max_size_bytes=max_size_bytes, max_latency_ms=max_latency_ms,
                                  min_accuracy=min_accuracy)
        return self.candidate(int(select(self.candidates, budget, prefer=prefer)["number"]))

    def candidate(self, number: int) -> Candidate:
        rows = self.trials[self.trials["number"] == number]
        if rows.empty or rows.iloc[0]["state"] != "COMPLETE":
            raise UsageError(f"trial {number} is not a complete trial of {self.path}")
        row = rows.iloc[0]
        source = row.get("duplicate_of")
        folder = self.path / rundir.ARTIFACTS / str(int(source) if pd.notna(source) else number)
        metrics = Metrics.from_dict({k: (v if pd.notna(v) else "") for k, v in row.items()
                                     if k in Metrics.__dataclass_fields__})
        return Candidate(number, metrics, Plan.from_json((folder / "plan.json").read_text()), folder / "model.onnx")


def load_run(path: str | Path) -> Run:
    """Read a run directory (run.json + trials.csv)."""
    path = Path(path)
    if not rundir.is_run_dir(path) or not (path / rundir.TRIALS_CSV).exists():
        raise UsageError(f"{path} is not a run directory (no {rundir.RUN_JSON} and {rundir.TRIALS_CSV}); "
                         "give the --out of a search")
    return Run(path, rundir.read_run_json(path), pd.read_csv(path / rundir.TRIALS_CSV))


def select(candidates: pd.DataFrame, budget: Budget, *, prefer: str = "accurate") -> pd.Series:
    """The preferred row of ``candidates`` within ``budget``."""
    if prefer not in PREFERENCES:
        raise UsageError(f"--prefer {prefer!r}: choose one of {', '.join(PREFERENCES)}")
    if candidates.empty:
        raise NothingFeasible("no complete full-fidelity trials in this run yet", candidates)
    feasible = candidates[[budget.feasible(row) for _, row in candidates.iterrows()]]
    if feasible.empty:
        raise NothingFeasible(f"no candidate meets the budget ({budget.describe()}) among "
                              f"{len(candidates)} complete trials", nearest(candidates, budget))
    columns, ascending = PREFERENCES[prefer]
    return feasible.sort_values(columns, ascending=ascending, kind="stable").iloc[0]


def nearest(candidates: pd.DataFrame, budget: Budget, *, count: int = NEAREST) -> pd.DataFrame:
    """The closest few candidates on each violated axis, with by how much they miss."""
    rows = []
    for axis in ("size_bytes", "latency_ms", "accuracy"):
        misses = [(budget.violations(row).get(axis), idx) for idx, row in candidates.iterrows()]
        misses = sorted((m, idx) for m, idx in misses if m is not None)
        for miss, idx in misses[:count]:
            row = candidates.loc[idx, ["number", "accuracy", "size_bytes", "latency_ms"]].to_dict()
            rows.append({**row, "misses": axis, "by": miss,
                         "other_limits_missed": ", ".join(a for a in budget.violations(candidates.loc[idx])
                                                          if a != axis)})
    return pd.DataFrame(rows)
