"""The best model under a budget, answered from stored results without re-running anything.

Only complete trials at the run's full fidelity (the top rung) are candidates (lower rungs never are).
Preferences: ``accurate`` (highest accuracy, ties by size then latency), ``smallest`` (size,
then accuracy, then latency), ``fastest`` (latency, then accuracy, then size).
``Run.export`` ships a candidate: the copy is measured again and checked against the record.

Example (``autocompress search`` writes run directories; to stay fast, this one is assembled
from the teacher and two plans of the digits task evaluated here, without fine-tuning):
    >>> import json, tempfile
    >>> from autocompress import DistillConfig, LayerPlan, Plan, evaluate, load_task
    >>> task, out, config = load_task("digits"), Path(tempfile.mkdtemp()) / "run", DistillConfig(steps=0)
    >>> teacher = evaluate(task, Plan(), out_dir=out / "teacher", config=config)
    >>> plans = [Plan(layers={"fc": LayerPlan(bits=8)}), Plan(layers={"fc": LayerPlan(bits=2)})]
    >>> rows = [{"number": n, "state": "COMPLETE", **evaluate(task, plan, out_dir=out / "artifacts" / str(n),
    ...          config=config).to_dict()} for n, plan in enumerate(plans)]
    >>> pd.DataFrame(rows).to_csv(out / "trials.csv", index=False)
    >>> _ = (out / "run.json").write_text(json.dumps({"task": {"name": "digits", "spec": "digits"},
    ...      "teacher": teacher.to_dict(), "settings": {"fidelity": teacher.fidelity}}))
    >>> run = load_run(out)
    >>> best = run.best(prefer="smallest")
    >>> best.number, best.plan == plans[1], best.artifact.stat().st_size == best.size_bytes
    (1, True, True)
    >>> run.best(max_size_bytes=1)
    Traceback (most recent call last):
    autocompress.search.best.NothingFeasible: no candidate meets the budget (size <= 1 B) among 2 complete trials
    >>> report = run.export(best, out.parent / "shipped")  # copied, measured again, checked; with a model card
    >>> report["measured"]["size_bytes"] == best.size_bytes
    True
    >>> sorted(p.name for p in (out.parent / "shipped").iterdir())
    ['MODEL_CARD.md', 'metrics.json', 'model.onnx', 'plan.json']
    >>> (out.parent / "shipped" / "MODEL_CARD.md").read_text().splitlines()[0]
    '# digits: trial 1, compressed by autocompress'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from autocompress.arguments import expect
from autocompress.artifact_files import ARTIFACT_NAME, PLAN_NAME
from autocompress.metrics import PROFILE_LATENCY, Metrics, latency_key
from autocompress.plan import Plan
from autocompress.search import rundir
from autocompress.budget import Budget
from autocompress.search.pareto import OBJECTIVES, pareto_front, under_profile
from autocompress.errors import UsageError

if TYPE_CHECKING:
    from autocompress.task import Task

PREFERENCES = {
    "accurate": (["accuracy", "size_bytes", "latency_ms"], [False, True, True]),
    "smallest": (["size_bytes", "accuracy", "latency_ms"], [True, False, True]),
    "fastest": (["latency_ms", "accuracy", "size_bytes"], [True, False, True]),
}
PREFERRED = {"accurate": "most accurate", "smallest": "smallest", "fastest": "fastest"}
TRIAL_COLUMNS = ("number", "state", "fidelity", *OBJECTIVES)
NEAREST = 3


class NothingFeasible(UsageError):
    """No stored candidate meets the budget; ``nearest`` holds the closest ones."""

    def __init__(self, message: str, nearest: pd.DataFrame):
        super().__init__(message)
        self.nearest = nearest


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A stored trial that may be shipped: its recorded metrics, its plan and its ONNX file.

    chosen: how it was chosen (written into MODEL_CARD.md when it is exported).
    """

    number: int
    metrics: Metrics
    plan: Plan
    artifact: Path
    chosen: str = ""

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
    def teacher_artifact(self) -> Path:
        """The teacher's ONNX file as the search measured it."""
        return self.path / rundir.TEACHER / ARTIFACT_NAME

    @property
    def fidelity(self) -> str:
        return self.info["settings"]["fidelity"]

    @property
    def candidates(self) -> pd.DataFrame:
        """Complete trials at full fidelity (the only ones any answer may use)."""
        return full_fidelity(self.trials, self.fidelity)

    @property
    def pareto(self) -> pd.DataFrame:
        return pareto_front(self.trials, fidelity=self.fidelity)

    def front(self, profile: str | None = None) -> pd.DataFrame:
        """The front under the search's extra latency profile ``profile`` (its ``latency_ms`` is
        that profile's; the run's own front when None)."""
        return pareto_front(self.trials, fidelity=self.fidelity, profile=profile)

    def best(self, *, max_size_bytes: int | None = None, max_latency_ms: float | None = None,
             min_accuracy: float | None = None, latency_profile: str | None = None, prefer: str = "accurate",
             budget: Budget | None = None) -> Candidate:
        """The preferred feasible candidate under the limits given as keywords, or as one ``budget``
        (not both); raises NothingFeasible (with the nearest candidates) when none meets them.
        ``latency_profile``: the extra profile ``max_latency_ms`` (and ``prefer='fastest'``) refers to."""
        expect("Run.best", "budget", budget, Budget, optional=True,
               how="an autocompress.Budget, e.g. Budget(max_size_bytes=100_000), or the limits as keywords")
        limits = {"max_size_bytes": max_size_bytes, "max_latency_ms": max_latency_ms, "min_accuracy": min_accuracy,
                  "latency_profile": latency_profile}
        given = [f"{name}=" for name, value in limits.items() if value is not None]
        if budget is not None and given:
            raise UsageError(f"Run.best got both budget= and {', '.join(given)}; give the limits one way: "
                             "either a Budget or the keywords")
        budget = budget or Budget(**limits)
        row = select(self.candidates, budget, prefer=prefer)
        chosen = f"the {PREFERRED[prefer]} of the run's full-fidelity candidates under: {budget.describe()}"
        return self._candidate(row, chosen=chosen)

    def candidate(self, number: int) -> Candidate:
        """Trial ``number``, which must be a complete trial at the run's full fidelity."""
        rows = self.candidates[self.candidates["number"] == number]
        if rows.empty:
            shown = ", ".join(str(int(n)) for n in self.candidates["number"][:20])
            raise UsageError(f"number={number}: not a complete full-fidelity trial of {self.path} (lower rungs and "
                             f"failed trials cannot be shipped); candidates: {shown or 'none'}")
        return self._candidate(rows.iloc[0], chosen=f"trial {number}, picked by hand")

    def _candidate(self, row: pd.Series, *, chosen: str) -> Candidate:
        number, source = int(row["number"]), row.get("duplicate_of")
        folder = self.path / rundir.ARTIFACTS / str(int(source) if pd.notna(source) else number)
        try:
            metrics = Metrics.from_dict({k: (v if pd.notna(v) else "") for k, v in row.items()
                                         if k in Metrics.__dataclass_fields__ or k.startswith(PROFILE_LATENCY)})
        except (TypeError, ValueError) as exc:
            raise _damaged(self.path / rundir.TRIALS_CSV, f"(trial {number}) holds a measurement that is missing or "
                                                          f"not a number ({_one_line(exc)})") from None
        plan = _read_plan(folder / PLAN_NAME, number)
        model = self.info.get("model")  # the model's names, in every run.json since they carried it
        unknown = plan.unknown_names(layers={*model["layers"], *model.get("groups", {})}, stages=model["stages"]) \
            if model else []
        if unknown:
            raise _damaged(folder / PLAN_NAME, f"(the plan of trial {number}) names {', '.join(unknown[:5])}, which the "
                                               "run's model does not have")
        return Candidate(number=number, metrics=metrics, plan=plan, artifact=folder / ARTIFACT_NAME, chosen=chosen)

    def export(self, candidate: Candidate | int, out_dir: str | Path, *, task: Task | None = None,
               data_dir: str | None = None) -> dict:
        """Ship ``candidate`` (or trial number) into ``out_dir``, a new or empty folder outside the
        run: model.onnx measured again (its size must equal the record), plan.json, metrics.json
        (recorded vs measured) and MODEL_CARD.md; nothing is left behind when a check fails. The
        task is rebuilt from run.json (with ``data_dir`` if given) unless ``task`` is passed."""
        from autocompress.evaluators.verify import export_candidate

        if not isinstance(candidate, Candidate):
            candidate = self.candidate(candidate)
        return export_candidate(self, candidate, out_dir, task=task, data_dir=data_dir)


def _damaged(path: Path, problem: str) -> UsageError:
    return UsageError(f"{path} {problem}; the run directory is damaged: restore it from a copy, or run the search again")


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def _read_plan(path: Path, number: int) -> Plan:
    try:
        return Plan.from_json(path.read_text())
    except FileNotFoundError:
        raise _damaged(path, f"(the plan of trial {number}) is missing") from None
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"(the plan of trial {number}) is not a plan ({_one_line(exc)})") from None


def load_run(path: str | Path) -> Run:
    """Read a run directory (run.json + trials.csv); a missing or damaged file is named in the error."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not a run directory (no such folder); give the folder a search wrote (its --out)")
    if not rundir.is_run_dir(path):
        raise UsageError(f"{path} is not a run directory (no {rundir.RUN_JSON}); "
                         "give the folder a search wrote (its --out)")
    return Run(path, _read_info(path / rundir.RUN_JSON), _read_trials(path / rundir.TRIALS_CSV))


def _read_info(path: Path) -> dict:
    info = rundir.read_run_json(path.parent)  # damaged or of a newer schema: one line
    if "fidelity" not in info["settings"]:
        raise _damaged(path, "lacks settings.fidelity")
    return info


def _read_trials(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise _damaged(path, f"(the table of trials) is missing although {rundir.RUN_JSON} is there")
    try:
        trials = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise _damaged(path, f"is not a table of trials ({_one_line(exc)})") from None
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise _damaged(path, f"is not a table of trials (no column {', '.join(missing)})")
    numbers = pd.to_numeric(trials["number"], errors="coerce")
    if numbers.isna().any() or (numbers % 1 != 0).any() or numbers.duplicated().any():
        raise _damaged(path, "is not a table of trials (its number column holds something other than distinct "
                             "whole numbers)")
    trials["number"] = numbers.astype(int)
    complete = trials[trials["state"] == "COMPLETE"]
    bad = [int(row["number"]) for _, row in complete.iterrows()
           if not rundir.measured(row["accuracy"], row["size_bytes"], row["latency_ms"])]
    if bad:
        raise _damaged(path, f"holds numbers no measurement gives for complete trial(s) "
                             f"{', '.join(map(str, bad[:10]))}")
    return trials


def select(candidates: pd.DataFrame, budget: Budget, *, prefer: str = "accurate") -> pd.Series:
    """The preferred row of ``candidates`` within ``budget``; a budget under an extra latency
    profile is answered from that profile's latencies (``under_profile``)."""
    if prefer not in PREFERENCES:
        raise UsageError(f"prefer={prefer!r}: choose one of {', '.join(PREFERENCES)}")
    if budget.latency_profile:
        view = under_profile(candidates, budget.latency_profile)
        row = select(view, replace(budget, latency_profile=None), prefer=prefer)
        return candidates.loc[row.name]
    if candidates.empty:
        raise NothingFeasible("no complete full-fidelity trials in this run yet", candidates)
    feasible = candidates[within(candidates, budget)]
    if feasible.empty:
        raise NothingFeasible(f"no candidate meets the budget ({budget.describe()}) among "
                              f"{len(candidates)} complete trials", nearest(candidates, budget))
    columns, ascending = PREFERENCES[prefer]
    return feasible.sort_values(columns, ascending=ascending, kind="stable").iloc[0]


def full_fidelity(trials: pd.DataFrame, fidelity: str) -> pd.DataFrame:
    """The complete trials at ``fidelity`` (a run's full one: the only candidates any answer uses)."""
    return trials[(trials["state"] == "COMPLETE") & (trials["fidelity"] == fidelity)]


def within(frame: pd.DataFrame, budget: Budget) -> pd.Series:
    """Which rows of ``frame`` meet ``budget``, a latency limit read under its profile.

    >>> t = pd.DataFrame({"size_bytes": [90, 200], "accuracy": [0.9, 0.9], "latency_ms": [5.0, 1.0],
    ...                   "latency_ms@server": [1.0, 5.0]})
    >>> within(t, Budget(max_latency_ms=2, latency_profile="server")).tolist()
    [True, False]
    """
    view = under_profile(frame, budget.latency_profile) if budget.latency_profile else frame
    return pd.Series([budget.feasible(row) for _, row in view.iterrows()], index=frame.index, dtype=bool)


def first_met(candidates: pd.DataFrame, budget: Budget) -> pd.Series | None:
    """The candidate that met ``budget`` first (by the time its trial finished); None if none has.

    >>> t = pd.DataFrame({"number": [0, 1, 2], "accuracy": [0.9, 0.8, 0.95], "size_bytes": [900, 90, 80],
    ...                   "latency_ms": [1.0] * 3, "finished_at": ["2026-01-01T00:00:09+00:00",
    ...                   "2026-01-01T00:00:05+00:00", "2026-01-01T00:00:07+00:00"]})
    >>> int(first_met(t, Budget(max_size_bytes=100))["number"]), first_met(t, Budget(max_size_bytes=10))
    (1, None)
    """
    feasible = candidates[within(candidates, budget)]
    if feasible.empty:
        return None
    finished = pd.to_datetime(feasible["finished_at"], utc=True, errors="coerce", format="ISO8601")
    return candidates.loc[finished.sort_values(kind="stable").index[0]]


def closest_miss(candidates: pd.DataFrame, budget: Budget) -> pd.Series | None:
    """The candidate that misses ``budget`` by the least: its misses, each relative to its limit,
    summed (None without candidates).

    >>> t = pd.DataFrame({"number": [0, 1, 2], "accuracy": [0.90, 0.91, 0.95], "size_bytes": [90, 80, 300],
    ...                   "latency_ms": [1.0] * 3})
    >>> int(closest_miss(t, Budget(max_size_bytes=100, min_accuracy=0.92))["number"])
    1
    """
    if candidates.empty:
        return None
    limits = {"size_bytes": budget.max_size_bytes, latency_key(budget.latency_profile): budget.max_latency_ms,
              "accuracy": budget.min_accuracy}
    shortfall = candidates.apply(lambda row: sum(miss / limits[axis] for axis, miss in budget.violations(row).items()),
                                 axis=1)
    return candidates.loc[shortfall.idxmin()]


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
