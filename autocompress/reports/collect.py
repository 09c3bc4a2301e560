"""What the report shows, read from a run directory: every trial with its plan, the front,
the hypervolume as the search went on, and the facts of the run.

Everything here is plain data (lists, dicts, DataFrames); figures and HTML are built from it.

Example:
    >>> from autocompress.search.best import load_run
    >>> run = load_run("runs/digits")                                        # doctest: +SKIP
    >>> data = collect(run)                                                  # doctest: +SKIP
    >>> data.trials[["number", "on_front", "summary"]].head()                # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from autocompress.artifact_files import PLAN_NAME
from autocompress.plan import Plan
from autocompress.reports.layer_plan import channels_from_notes
from autocompress.search import rundir
from autocompress.search.best import Run, within
from autocompress.budget import Budget
from autocompress.search.pareto import OBJECTIVES, dominated, normalized_hypervolume, pareto_mask
from autocompress.search.sensitivity_table import read_table
from autocompress.spaces.space import KERNELS_KNOB, KNOB_PREFIXES, plan_from_params


@dataclass(frozen=True)
class ReportData:
    """trials: every trial, plus on_front (full-fidelity Pareto candidate), full (at the run's
    fidelity) and summary (the plan in a few words). plans: trial number -> Plan, for complete
    trials. layers: layer names in model order; stages: droppable blocks per stage; groups:
    pruning group -> member layers; channels: a group's channel count, where the trials' notes
    tell it. progress: one row per complete full-fidelity trial in the order they finished, with
    the hypervolume of the front so far. sensitivity: the run's sensitivity scan
    (``search.sensitivity``), or None when it has none."""

    run: Run
    trials: pd.DataFrame
    plans: dict[int, Plan]
    layers: list[str]
    stages: dict[str, list[str]]
    groups: dict[str, list[str]]
    channels: dict[str, int]
    progress: pd.DataFrame
    budget: Budget
    sensitivity: pd.DataFrame | None = None


def collect(run: Run) -> ReportData:
    trials = run.trials.copy()
    complete = trials["state"] == "COMPLETE"
    trials["full"] = complete & (trials["fidelity"] == run.fidelity)
    full = trials[trials["full"]].dropna(subset=list(OBJECTIVES))
    trials["on_front"] = False
    if len(full):
        trials.loc[full.index[pareto_mask(full)], "on_front"] = True
    layers, stages, groups = _model(run)
    plans = {int(row["number"]): _plan(run, row, layers, stages) for _, row in trials[complete].iterrows()}
    trials["summary"] = [plans[int(n)].summary() if int(n) in plans else "" for n in trials["number"]]
    notes = trials["notes"] if "notes" in trials else []
    budget = Budget(**run.info["settings"].get("budget", {}))
    return ReportData(run=run, trials=trials, plans=plans, layers=layers, stages=stages, groups=groups,
                      channels={**channels_from_notes(notes, groups), **run.info.get("model", {}).get("channels", {})},
                      progress=hypervolume_progress(trials, run.info["teacher"], budget=budget),
                      budget=budget, sensitivity=read_table(run.path))


def _model(run: Run) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """Layer names in model order, the student's droppable blocks per stage and the pruning
    groups' members. Runs made before run.json recorded them: the layers from the parameter
    names (alphabetically), and each pruning parameter's layer as a group of its own."""
    model = run.info.get("model") or {}
    columns = run.trials.columns
    prune_knobs = {c.removeprefix("prune/"): [c.removeprefix("prune/")] for c in columns if c.startswith("prune/")}
    if model.get("groups") is not None:
        groups = {k: list(v) for k, v in model["groups"].items()}
    else:
        groups = prune_knobs
    if model:
        return list(model["layers"]), {k: list(v) for k, v in model["stages"].items()}, groups
    knobs = [c for c in columns if c.startswith(("prune/", "bits/", "rank/")) and c != KERNELS_KNOB]
    stages = [c.removeprefix("arch/depth/") for c in columns if c.startswith("arch/depth/")]
    return sorted({c.partition("/")[2] for c in knobs}), {s: [] for s in stages}, groups


def _plan(run: Run, row: pd.Series, layers: list[str], stages: dict) -> Plan:
    """The plan the artifact was built from (plan.json), or, without an artifact, the one its
    parameters describe."""
    source = row.get("duplicate_of")
    number = int(source) if pd.notna(source) else int(row["number"])
    stored = run.path / rundir.ARTIFACTS / str(number) / PLAN_NAME
    if stored.is_file():
        return Plan.from_json(stored.read_text())
    params = {k: v for k, v in row.items() if k.startswith(KNOB_PREFIXES) and pd.notna(v)}
    return plan_from_params(params, layers=layers, stages=list(stages),
                            importance=run.info["settings"].get("importance", "l1"))


def hypervolume_progress(trials: pd.DataFrame, teacher: dict, *, budget: Budget | None = None) -> pd.DataFrame:
    """Normalized hypervolume of the full-fidelity front after each full-fidelity trial, in the
    order trials finished; ``finished`` counts every trial finished by then (any fidelity or
    state) and ``elapsed_s`` the seconds since the first trial started; ``within_budget`` the best
    accuracy within ``budget`` so far (NaN until a trial meets it).

    >>> t = pd.DataFrame({"number": [0, 1], "state": ["COMPLETE"] * 2, "full": [True] * 2,
    ...                   "accuracy": [0.99, 1.0], "size_bytes": [50, 10], "latency_ms": [0.5, 0.5],
    ...                   "started_at": ["2026-01-01T00:00:00+00:00"] * 2,
    ...                   "finished_at": ["2026-01-01T00:00:02+00:00", "2026-01-01T00:00:05+00:00"]})
    >>> hypervolume_progress(t, {"accuracy": 1.0, "size_bytes": 100, "latency_ms": 1.0})[["finished", "hypervolume"]].values.tolist()
    [[1.0, 0.01], [2.0, 0.0225]]
    >>> hypervolume_progress(t, {"accuracy": 1.0, "size_bytes": 100, "latency_ms": 1.0},
    ...                      budget=Budget(max_size_bytes=20))["within_budget"].tolist()
    [nan, 1.0]
    """
    finished_at = pd.to_datetime(trials["finished_at"], utc=True, errors="coerce", format="ISO8601")
    order = trials.assign(_end=finished_at).sort_values(["_end", "number"], kind="stable", na_position="last")
    order["finished"] = np.arange(1, len(order) + 1, dtype=float)
    start = pd.to_datetime(trials["started_at"], utc=True, errors="coerce", format="ISO8601").min()
    done = order[order["full"]].dropna(subset=list(OBJECTIVES)).reset_index(drop=True)
    front, volume, volumes = [], 0.0, []  # positions in done of the front so far
    for i in range(len(done)):
        if not dominated(done.iloc[i], done.iloc[front]):  # the front changes
            candidates = done.iloc[front + [i]]
            front = [p for p, keep in zip(front + [i], pareto_mask(candidates)) if keep]
            volume = normalized_hypervolume(done.iloc[front], teacher)
        volumes.append(volume)
    elapsed = (done["_end"] - start).dt.total_seconds() if pd.notna(start) else np.nan
    return pd.DataFrame({"number": done["number"].astype(int).to_numpy(), "finished": done["finished"].to_numpy(),
                         "elapsed_s": np.asarray(elapsed, float) * np.ones(len(done)), "hypervolume": volumes,
                         "within_budget": _best_within(done, budget)})


def _best_within(done: pd.DataFrame, budget: Budget | None) -> np.ndarray:
    """The best accuracy within ``budget`` among ``done`` up to each row (NaN before the first)."""
    if budget is None or budget.is_empty or done.empty:
        return np.full(len(done), np.nan)
    accuracy = np.where(within(done, budget), done["accuracy"], np.nan)
    return pd.Series(accuracy, dtype=float).cummax().ffill().to_numpy()


def _rungs_fact(settings: dict) -> str:
    """How the run's rungs were set (successive halving), or nothing for one rung."""
    if settings.get("min_steps"):
        return f"; successive halving from {settings['min_steps']} steps, eta {settings.get('eta', 3)}"
    return f"; screening {settings['screen_steps']} steps" if settings.get("screen_steps") else ""


def run_facts(run: Run, *, trials: pd.DataFrame) -> list[tuple[str, str]]:
    """The facts of the run as (label, text) pairs, in the order the report lists them."""
    info, teacher = run.info, run.teacher
    task, settings, latency = info["task"], info["settings"], info["settings"].get("latency", {})
    sessions = info.get("sessions", [])
    states = trials["state"].value_counts().to_dict()
    noise = info.get("latency_noise", {})
    return [
        ("task", f"{task['name']} (spec {task.get('spec', task['name'])}; train {task.get('train')}, "
                 f"validation {task.get('val')}, test {task.get('test')} examples)"),
        ("teacher", f"accuracy {teacher.accuracy:.4f}, {teacher.size_bytes:,} B, {teacher.latency_ms:.4f} ms"),
        ("fidelity", f"{run.fidelity}" + _rungs_fact(settings)),
        ("trials", f"{len(trials)} ({', '.join(f'{n} {s.lower()}' for s, n in sorted(states.items()))}); "
                   f"requested {settings.get('trials')}; sampler {settings.get('sampler')}, seed {settings.get('seed')}"),
        ("budget", Budget(**settings.get("budget", {})).describe()),
        ("latency measured", f"{latency.get('runtime', '?')}, {latency.get('threads', '?')} thread(s), batch "
                             f"{latency.get('batch', '?')}, {latency.get('warmup', '?')} warm-up + "
                             f"{latency.get('runs', '?')} runs, {latency.get('statistic', 'median')}"
                             f"{', pinned core' if latency.get('pinned_core') else ''}; {latency.get('where', '')}"),
        ("latency noise", f"teacher measured {noise.get('repeats', '?')} times: spread "
                          f"{noise.get('relative_spread', float('nan')) * 100:.1f}%" if noise else "not recorded"),
        ("workers", ", ".join(f"{s.get('workers')} for {s.get('wall_s')} s" for s in sessions) or "-"),
        ("started", str(info.get("started_at", "-"))),
        ("finished", str(info.get("finished_at", "still running (or stopped without finishing)"))),
        ("duration", f"{sum(s.get('wall_s', 0) for s in sessions):.0f} s of search in {len(sessions)} session(s)"),
        ("machine", ", ".join(f"{k} {v}" for k, v in info.get("machine", {}).items())),
        ("versions", ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())),
        ("command", info.get("command") or "-"),
        ("study", f"{info['study']['name']} in {info['study']['storage']}"),
    ]
