"""The search controller: one Optuna study over the joint space, trials evaluated in turn.

Each trial: the sampler proposes a plan, ``evaluate`` compresses, fine-tunes, exports and
measures it, and the study stores accuracy, size_bytes and latency_ms (plus every metric as a
user attribute) the moment it finishes. A candidate that fails is stored as failed with its
reason and the search goes on; Ctrl-C stores the running trial as failed and keeps the rest.

Example:
    >>> from autocompress import load_task
    >>> result = search(load_task("digits"), trials=3, out="runs/demo")     # doctest: +SKIP
    >>> result.pareto[["number", "accuracy", "size_bytes", "latency_ms"]]    # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import optuna
import pandas as pd

from autocompress.compressors.distill import DistillConfig
from autocompress.compressors.pipeline import task_context
from autocompress.evaluators.evaluate import evaluate, evaluate_teacher, fidelity_label
from autocompress.evaluators.measure import LATENCY_THREADS
from autocompress.metrics import Metrics
from autocompress.plan import Plan
from autocompress.search import rundir
from autocompress.search.pareto import OBJECTIVES
from autocompress.spaces.space import SearchSpace
from autocompress.task import Task, UsageError

SAMPLERS = ("tpe", "nsga2", "random")


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    teacher: Metrics
    trials: pd.DataFrame
    pareto: pd.DataFrame


def make_sampler(name: str, *, seed: int | None, trials: int) -> optuna.samplers.BaseSampler:
    """tpe: multi-objective TPE after a few random trials; nsga2: NSGA-II with a population sized
    to give several generations; random: uniform random sampling."""
    if name not in SAMPLERS:
        raise UsageError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(3, min(10, trials // 4)),
                                              multivariate=True)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 4)))
    return optuna.samplers.RandomSampler(seed=seed)


def _progress_line(done: int, total: int, number: int, metrics: Metrics | None, teacher: Metrics,
                   seconds: float, plan: Plan | None, error: str = "") -> str:
    head = f"[{done:>{len(str(total))}}/{total}] trial {number:<3}"
    if metrics is None:
        return f"{head} FAILED  {seconds:5.1f}s  {error}"
    return (f"{head} acc {metrics.accuracy:.4f} ({(metrics.accuracy - teacher.accuracy) * 100:+.1f} pt)  "
            f"size {metrics.size_bytes / 1024:7.1f} KB ({teacher.size_bytes / metrics.size_bytes:4.1f}x)  "
            f"latency {metrics.latency_ms:.4f} ms ({teacher.latency_ms / metrics.latency_ms:4.2f}x)  "
            f"{seconds:5.1f}s  {plan.summary() if plan else ''}")


def _completed_plans(study: optuna.Study) -> dict[Plan, optuna.trial.FrozenTrial]:
    return {Plan.from_dict(t.user_attrs["plan"]): t for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE and "plan" in t.user_attrs}


def _run_one(study, space, task, out, config, seen, teacher) -> tuple[optuna.trial.FrozenTrial, Plan | None]:
    trial = study.ask()
    start = time.perf_counter()
    plan = None
    try:
        plan = space.suggest(trial)
        trial.set_user_attr("plan", plan.to_dict())
        if plan in seen:  # the same candidate again: reuse its measurements
            original = seen[plan]
            metrics = Metrics.from_dict(original.user_attrs["metrics"])
            trial.set_user_attr("duplicate_of", original.number)
        else:
            metrics = evaluate(task, plan, out_dir=out / rundir.ARTIFACTS / str(trial.number), config=config)
        trial.set_user_attr("metrics", metrics.to_dict())
        trial.set_user_attr("duration_s", round(time.perf_counter() - start, 3))
        study.tell(trial, [metrics.accuracy, metrics.size_bytes, metrics.latency_ms])
    except KeyboardInterrupt:
        trial.set_user_attr("error", "interrupted by the user (Ctrl-C)")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    except Exception as exc:  # a bad candidate must not stop the search
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}".strip()[:1000])
        trial.set_user_attr("duration_s", round(time.perf_counter() - start, 3))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    frozen = next(t for t in reversed(study.get_trials(deepcopy=False)) if t.number == trial.number)
    if frozen.state == optuna.trial.TrialState.COMPLETE and plan is not None:
        seen.setdefault(plan, frozen)
    return frozen, plan


def search(task: Task, *, trials: int = 40, sampler: str = "tpe", seed: int | None = 0,
           out: str | Path = "runs/latest", resume: bool = False, config: DistillConfig = DistillConfig(),
           warm_start: bool = True, importance: str = "l1", task_spec: str | None = None, command: str = "",
           progress: Callable[[str], None] = print) -> SearchResult:
    """Search the joint space of ``task`` for ``trials`` trials; results land in ``out``.

    With ``resume=True`` the study in ``out`` continues until it holds ``trials`` finished
    trials (complete or failed); everything stored before is kept.
    """
    if not isinstance(trials, int) or trials < 1:
        raise UsageError(f"--trials must be a positive whole number, got {trials}")
    make_sampler(sampler, seed=seed, trials=trials)  # validate before any work
    out = rundir.prepare_run_dir(out, resume=resume)
    space = SearchSpace(task_context(task).discovery, importance=importance)
    fidelity = fidelity_label(config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if resume:
        run = rundir.read_run_json(out)
        if run["task"]["name"] != task.name or run["space"] != space.summary():
            raise UsageError(f"--resume: {out} was a search of task {run['task']['name']!r} with another search "
                             "space; resume it with the same --task, or start a new --out")
        teacher = rundir.teacher_metrics(run)
        config = DistillConfig(**run["settings"]["distill"])
        fidelity = fidelity_label(config)
    else:
        progress(f"measuring the teacher of {task.name!r} (ONNX Runtime, batch 1, {LATENCY_THREADS} thread)")
        teacher = evaluate_teacher(task, out_dir=out / "teacher")
        run = {
            "task": {"name": task.name, "spec": task_spec or task.name, "recipe": task.recipe,
                     "train": task.num_examples("train"), "val": task.num_examples("val"),
                     "test": task.num_examples("test")},
            "space": space.summary(),
            "teacher": teacher.to_dict(),
            "objectives": OBJECTIVES,
            "settings": {"sampler": sampler, "seed": seed, "trials": trials, "warm_start": warm_start, "importance": importance,
                         "distill": config.__dict__, "fidelity": fidelity,
                         "latency": {"runtime": "onnxruntime CPUExecutionProvider", "threads": LATENCY_THREADS,
                                     "batch": 1, "warmup": 20, "runs": 300, "statistic": "median"}},
            "versions": rundir.versions(),
            "machine": rundir.machine(),
            "command": command,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        rundir.write_json(out / rundir.RUN_JSON, run)
    progress(f"teacher: accuracy {teacher.accuracy:.4f}, {teacher.size_bytes / 1024:.1f} KB, "
             f"{teacher.latency_ms:.4f} ms; {len(space.param_names())} search parameters")
    study = optuna.create_study(study_name=rundir.STUDY_NAME, storage=rundir.storage_url(out),
                                directions=list(OBJECTIVES.values()),
                                sampler=make_sampler(sampler, seed=seed, trials=trials), load_if_exists=True)
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    if not finished and warm_start:
        for plan in space.warm_start_plans()[: max(0, trials // 4)]:
            study.enqueue_trial(space.params_from_plan(plan), skip_if_exists=True)
    seen = _completed_plans(study)
    done = len(finished)
    try:
        while done < trials:
            start = time.perf_counter()
            frozen, plan = _run_one(study, space, task, out, config, seen, teacher)
            done += 1
            metrics = Metrics.from_dict(frozen.user_attrs["metrics"]) if "metrics" in frozen.user_attrs else None
            progress(_progress_line(done, trials, frozen.number, metrics, teacher, time.perf_counter() - start,
                                    plan, frozen.user_attrs.get("error", "")))
            rundir.write_tables(study, out, fidelity=fidelity)
    except KeyboardInterrupt:
        rundir.write_tables(study, out, fidelity=fidelity)
        progress(f"stopped: {done} trials stored in {out}; continue with: autocompress search "
                 f"--task {run['task']['spec']} --out {out} --trials {trials} --resume")
        raise
    trial_table, front = rundir.write_tables(study, out, fidelity=fidelity)
    run = rundir.read_run_json(out)
    run["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run["settings"]["trials"] = trials
    rundir.write_json(out / rundir.RUN_JSON, run)
    return SearchResult(out, teacher, trial_table, front)


def front_table(front: pd.DataFrame, teacher: Metrics) -> str:
    """The Pareto front as text, with ratios against the teacher."""
    if front.empty:
        return "no complete trials at full fidelity yet"
    table = pd.DataFrame({
        "trial": front["number"],
        "accuracy": front["accuracy"].map("{:.4f}".format),
        "vs teacher": ((front["accuracy"] - teacher.accuracy) * 100).map("{:+.1f} pt".format),
        "size": (front["size_bytes"] / 1024).map("{:.1f} KB".format),
        "smaller": (teacher.size_bytes / front["size_bytes"]).map("{:.1f}x".format),
        "latency": front["latency_ms"].map("{:.4f} ms".format),
        "faster": (teacher.latency_ms / front["latency_ms"]).map("{:.2f}x".format),
    })
    return table.to_string(index=False)


__all__ = ["SAMPLERS", "SearchResult", "front_table", "make_sampler", "search"]
