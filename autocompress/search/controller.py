"""The search controller: one Optuna study over the joint space, trials run on Ray workers.

Each trial: the sampler proposes a plan, a Ray worker compresses, fine-tunes, exports and
measures it, and the study stores accuracy, size_bytes and latency_ms (plus every metric as a
user attribute) the moment it finishes. A candidate that fails is stored as failed with its
reason and the search goes on; Ctrl-C stores the running trials as failed (interrupted: a
resumed search runs them again) and keeps the rest.

Example:
    >>> from autocompress import load_task
    >>> result = search(load_task("digits"), trials=3, out="runs/demo")     # doctest: +SKIP
    >>> result.pareto[["number", "accuracy", "size_bytes", "latency_ms"]]    # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import optuna
import pandas as pd

from autocompress.compressors.distill import DistillConfig
from autocompress.compressors.pipeline import task_context, with_task_lr
from autocompress.evaluators.evaluate import evaluate_teacher, fidelity_label, local_latency
from autocompress.evaluators.measure import LATENCY_THREADS
from autocompress.metrics import Metrics
from autocompress.plan import Plan
from autocompress.search import rundir
from autocompress.search.budget import Budget
from autocompress.search.pareto import OBJECTIVES
from autocompress.spaces.space import TECHNIQUES, SearchSpace
from autocompress.task import Task, UsageError

SAMPLERS = ("tpe", "nsga2", "random")
NOISE_REPEATS = 5
REPORT_EVERY_S = 300.0  # report.html is refreshed at most this often during a search, and at its end


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    teacher: Metrics
    trials: pd.DataFrame
    pareto: pd.DataFrame
    finished: bool = True  # False when stopped (Ctrl-C) before reaching the requested trials

    def best(self, **budget_and_preference):
        """The best stored candidate under a budget, e.g. ``result.best(max_latency_ms=2.0)``;
        keywords as ``Run.best``: max_size_bytes, max_latency_ms, min_accuracy, prefer."""
        from autocompress.search.best import load_run

        return load_run(self.run_dir).best(**budget_and_preference)


def startup_trials(trials: int) -> int:
    """Exploratory trials before TPE models the results."""
    return max(3, min(10, trials // 4))


def make_sampler(name: str, *, seed: int | None, trials: int) -> optuna.samplers.BaseSampler:
    """tpe: multi-objective TPE after a few random trials; nsga2: NSGA-II with a population sized
    to give several generations; random: uniform random sampling."""
    if name not in SAMPLERS:
        raise UsageError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(trials), multivariate=True)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 4)))
    return optuna.samplers.RandomSampler(seed=seed)


def _progress_line(done: int, total: int, number: int, metrics: Metrics | None, teacher: Metrics,
                   seconds: float, plan: Plan | None, error: str = "", level: str = "") -> str:
    head = f"[{done:>{len(str(total))}}/{total}] trial {number:<3}" + (f" {level:<6}" if level else "")
    if metrics is None:
        return f"{head} FAILED  {seconds:5.1f}s  {error}"
    return (f"{head} acc {metrics.accuracy:.4f} ({(metrics.accuracy - teacher.accuracy) * 100:+.1f} pt)  "
            f"size {metrics.size_bytes / 1024:7.1f} KB ({teacher.size_bytes / metrics.size_bytes:4.1f}x)  "
            f"latency {metrics.latency_ms:.4f} ms ({teacher.latency_ms / metrics.latency_ms:4.2f}x)  "
            f"{seconds:5.1f}s  {plan.summary() if plan else ''}")


@dataclass(frozen=True, kw_only=True)
class Execution:
    """Where and how trials run.

    workers: trials at once. address: an existing Ray cluster (``ray start --head``), or None
    for a local Ray. cpus_per_trial / gpus_per_trial: resources of one trial (torch and ONNX
    Runtime threads follow cpus_per_trial). trial_timeout_s: a trial still fine-tuning after
    this is stopped and stored as failed. retries: how often Ray Tune re-runs a trial whose
    worker died. latency_resource: a custom Ray resource naming the node where every latency
    is measured, one at a time. time_budget_s: stop the search after this long (trials still
    running are stored as interrupted; a resume runs them again).
    """

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # one trial per CPU
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    trial_timeout_s: float | None = None
    retries: int = 1
    latency_resource: str | None = None
    time_budget_s: float | None = None

    def __post_init__(self):
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise UsageError(f"--time-budget must be positive, got {self.time_budget_s}")
        if self.trial_timeout_s is not None and self.trial_timeout_s <= 0:
            raise UsageError(f"--trial-timeout must be positive, got {self.trial_timeout_s}")
        if self.gpus_per_trial < 0 or self.retries < 0:
            raise UsageError("--gpus-per-trial and retries must be 0 or more")


def _latency_actor(resource: str | None, run_id: str):
    """The one actor that measures every latency of this search (on the ``resource`` node if named)."""
    import ray

    from autocompress.search.worker import LatencyActor

    if resource is None:
        return LatencyActor.remote(run_id)
    if ray.cluster_resources().get(resource, 0) <= 0:
        raise UsageError(f"--latency-resource {resource}: no Ray node carries it; start the target node with "
                         f"ray start --address HEAD --resources '{{\"{resource}\": 1}}'")
    return LatencyActor.options(resources={resource: 0.001}).remote(run_id)


def _measure_teacher(task: Task, out: Path, latency, progress, *, where: str) -> tuple[Metrics, dict, str]:
    progress(f"measuring the teacher of {task.name!r} {where} (ONNX Runtime, batch 1, {LATENCY_THREADS} thread)")
    teacher = evaluate_teacher(task, out_dir=out / "teacher", latency=latency)
    return teacher, _latency_noise(task, out / "teacher" / "model.onnx", latency), where


def _latency_noise(task: Task, path: Path, latency) -> dict:
    """Repeat the teacher's latency measurement to show how noisy this machine is."""
    medians = sorted(latency(str(path), task.example_inputs)[0] for _ in range(NOISE_REPEATS))
    middle = medians[len(medians) // 2]
    return {"repeats": NOISE_REPEATS, "medians_ms": [round(m, 6) for m in medians],
            "spread_ms": round(medians[-1] - medians[0], 6),
            "relative_spread": round((medians[-1] - medians[0]) / middle, 4)}


def _write_report(out: Path, progress) -> None:
    """Refresh report.html; a report that cannot be written never costs the search anything."""
    from autocompress.reports import write_report

    try:
        write_report(out)
    except Exception as exc:  # noqa: BLE001 - the results are stored; only the page is missing
        progress(f"warning: report.html not refreshed ({type(exc).__name__}: {str(exc)[:200]}); "
                 f"write it later with: autocompress report {out}")


def search(task: Task, *, trials: int = 40, sampler: str = "tpe", seed: int | None = 0,
           out: str | Path = "runs/latest", resume: bool = False, config: DistillConfig = DistillConfig(),
           execution: Execution = Execution(), screen_steps: int | None = None, storage: str | None = None,
           warm_start: bool = True, importance: str = "l1", techniques: tuple[str, ...] = tuple(TECHNIQUES),
           task_spec: str | None = None,
           data_dir: str | None = None, budget: Budget = Budget(), command: str = "",
           progress: Callable[[str], None] = print) -> SearchResult:
    """Search the joint space of ``task`` until ``trials`` trials have finished; results land in ``out``.

    Trials run on Ray (``execution``). ``budget`` limits become Optuna constraints (samplers
    steer toward feasible plans) and the ``feasible`` column. ``screen_steps`` turns on
    multi-fidelity: new plans are fine-tuned for that many steps, and those that could still
    reach the full-fidelity front are promoted to a full evaluation (``config.steps``). ``techniques``
    limits the space to some knob families (prune, quant, lowrank, student); by default all are
    searched jointly. With ``resume=True`` the study in ``out`` continues: every
    stored trial is kept, trials that were running when it stopped are stored as failed
    (interrupted) and run again.
    """
    from autocompress.search.storage import open_storage

    if not isinstance(trials, int) or trials < 1:
        raise UsageError(f"--trials must be at least 1, got {trials}")
    if screen_steps is not None and not 0 < screen_steps < config.steps:
        raise UsageError(f"--screen-steps must be between 1 and --steps - 1 ({config.steps - 1}), got {screen_steps}")
    make_sampler(sampler, seed=seed, trials=trials)  # validate before any work
    data_dir = str(Path(data_dir).expanduser().resolve()) if data_dir else None  # workers run elsewhere
    rdb = open_storage(storage) if storage else None
    fresh = not Path(out).exists()
    out = rundir.prepare_run_dir(out, resume=resume)
    try:
        return _search(task, out=out, rdb=rdb, trials=trials, sampler=sampler, seed=seed,
                       resume=resume, config=config, execution=execution, screen_steps=screen_steps,
                       storage=storage, warm_start=warm_start, importance=importance, techniques=techniques,
                       task_spec=task_spec,
                       data_dir=data_dir, budget=budget, command=command, progress=progress)
    except UsageError:
        if fresh and not rundir.is_run_dir(out):  # refused before anything was stored: leave no half folder
            shutil.rmtree(out, ignore_errors=True)
        raise


def _search(task, *, out, rdb, trials, sampler, seed, resume, config, execution, screen_steps, storage,
            warm_start, importance, techniques, task_spec, data_dir, budget, command, progress) -> SearchResult:
    import ray

    from autocompress.search.ray_runner import cap_workers, run_trials, start_ray
    from autocompress.search.searcher import Screening, StudySearcher, requeue_interrupted, seen_plans
    from autocompress.search.storage import redact, sqlite_url
    from autocompress.search.worker import Job, remote_latency

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = with_task_lr(config, task)  # the learning rate actually used, as run.json records it
    if resume:
        run = rundir.read_run_json(out)
        techniques = tuple(run["settings"].get("techniques", TECHNIQUES))
    try:
        space = SearchSpace(task_context(task).discovery, importance=importance, techniques=tuple(techniques))
    except ValueError as exc:
        raise UsageError(f"--techniques: {exc}") from exc
    if resume:
        if run["task"]["name"] != task.name or run["space"] != space.summary():
            differs = "task" if run["task"]["name"] != task.name else "search space"
            raise UsageError(f"--resume: {out} holds a search of task {run['task']['name']!r} whose {differs} differs "
                             "from this one; resume with the same --task (and options), or start a new --out")
        config = DistillConfig(**run["settings"]["distill"])
        screen_steps = run["settings"].get("screen_steps")
        budget = Budget(**run["settings"].get("budget", {}))
        study_name = run["study"]["name"]
    else:
        study_name = rundir.STUDY_NAME if rdb is None else f"{rundir.STUDY_NAME}-{out.resolve().name}-{int(time.time())}"
    teacher_latency = None
    if execution.latency_resource is None and not resume:  # measure the teacher while the machine is quiet
        teacher_latency = _measure_teacher(task, out, local_latency, progress, where="here (before Ray starts)")
    progress(start_ray(address=execution.address, workers=execution.workers,
                       cpus_per_trial=execution.cpus_per_trial))
    workers, warning = cap_workers(execution.workers, available_cpus=ray.cluster_resources().get("CPU", 1),
                                   cpus_per_trial=execution.cpus_per_trial)
    if warning:
        progress(f"warning: {warning}")
    gpus = ray.cluster_resources().get("GPU", 0)
    if execution.gpus_per_trial > gpus:
        raise UsageError(f"--gpus-per-trial {execution.gpus_per_trial:g}: the Ray cluster has {gpus:g} GPUs, so no "
                         "trial could ever start; use 0 here, or join a cluster with GPUs (--address)")
    run_id = f"{os.getpid()}-{int(time.time() * 1000)}"
    actor = _latency_actor(execution.latency_resource, run_id)
    latency = remote_latency(actor)
    if resume:
        teacher = rundir.teacher_metrics(run)
    else:
        if teacher_latency is None:
            teacher_latency = _measure_teacher(task, out, latency, progress, where=(
                f"on node {ray.get(actor.node.remote())} ({execution.latency_resource})"))
        teacher, noise, where = teacher_latency
        run = {
            "task": {"name": task.name, "spec": task_spec or task.name, "data_dir": data_dir, "recipe": task.recipe,
                     "train": task.num_examples("train"), "val": task.num_examples("val"),
                     "test": task.num_examples("test")},
            "space": space.summary(),
            "model": {"layers": [layer.name for layer in space.discovery.layers],
                      "stages": {stage: list(blocks) for stage, blocks in space.discovery.stages.items()},
                      "groups": {group.name: list(group.members) for group in space.discovery.groups}},
            "teacher": teacher.to_dict(),
            "latency_noise": noise,
            "objectives": OBJECTIVES,
            "study": {"name": study_name, "storage": redact(storage) if storage else "study.db"},
            "settings": {"sampler": sampler, "seed": seed, "trials": trials, "warm_start": warm_start,
                         "techniques": list(space.techniques),
                         "importance": importance, "budget": budget.to_dict(), "distill": config.__dict__,
                         "screen_steps": screen_steps,
                         "fidelity": fidelity_label(config),
                         "execution": {**execution.__dict__, "workers": workers},
                         "latency": {"runtime": "onnxruntime CPUExecutionProvider", "threads": LATENCY_THREADS,
                                     "batch": 1, "warmup": 20, "runs": 300, "statistic": "median", "pinned_core": True,
                                     "where": where}},
            "versions": rundir.versions(),
            "machine": rundir.machine(),
            "command": command,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        rundir.write_json(out / rundir.RUN_JSON, run)
    fidelity = fidelity_label(config)
    progress(f"teacher: accuracy {teacher.accuracy:.4f}, {teacher.size_bytes / 1024:.1f} KB, "
             f"{teacher.latency_ms:.4f} ms; {len(space.param_names())} search parameters; {workers} worker(s)")
    study = optuna.create_study(study_name=study_name, storage=rdb or sqlite_url(out),
                                directions=list(OBJECTIVES.values()),
                                sampler=make_sampler(sampler, seed=seed, trials=trials), load_if_exists=True)
    first = [(plan, False) for plan in space.warm_start_plans()[: max(0, trials // 4)]] \
        if warm_start and not study.trials else []
    if sampler == "tpe" and not study.trials:  # TPE's exploration: one technique at a time, then mixes
        first += [(plan, False) for plan in space.startup_plans(startup_trials(trials), seed=seed)]
    rerun = requeue_interrupted(study)
    if rerun:
        progress(f"resuming: {len(rerun)} trial(s) that were running when the search stopped are stored as failed "
                 "(interrupted) and will run again")
    clock = time.perf_counter()
    last_report = [clock]

    def on_finished(frozen: optuna.trial.FrozenTrial) -> None:
        metrics = Metrics.from_dict(frozen.user_attrs["metrics"]) if "metrics" in frozen.user_attrs else None
        plan = Plan.from_dict(frozen.user_attrs["plan"]) if "plan" in frozen.user_attrs else None
        progress(_progress_line(searcher.finished, trials, frozen.number, metrics, teacher,
                                frozen.user_attrs.get("duration_s", 0.0), plan, frozen.user_attrs.get("error", ""),
                                frozen.user_attrs.get("level", "")))
        rundir.write_tables(study, out, fidelity=fidelity, budget=budget)
        if time.perf_counter() - last_report[0] >= REPORT_EVERY_S:
            _write_report(out, progress)
            last_report[0] = time.perf_counter()

    screening = Screening(steps=screen_steps, full_steps=config.steps) if screen_steps else None
    searcher = StudySearcher(study=study, space=space, total=trials, seen=seen_plans(study), on_finished=on_finished,
                             screening=screening, timeout_s=execution.trial_timeout_s, retries=execution.retries,
                             budget=budget)
    searcher.queue += rerun + first
    job = Job(task_spec=task_spec, data_dir=data_dir, task=None if task_spec else task,
              teacher_state=task.teacher.state_dict(), distill=config, out_dir=str(out.resolve()),
              threads=max(1, int(execution.cpus_per_trial)), run_id=run_id, latency_actor=actor)
    try:
        run_trials(searcher=searcher, job=job, workers=workers, cpus_per_trial=execution.cpus_per_trial,
                   gpus_per_trial=execution.gpus_per_trial, timeout_s=execution.trial_timeout_s,
                   retries=execution.retries, time_budget_s=execution.time_budget_s, storage=out)
    except KeyboardInterrupt:
        searcher.interrupt_running("interrupted by the user (Ctrl-C)")
        rundir.write_tables(study, out, fidelity=fidelity, budget=budget)
        _write_report(out, progress)
        progress(f"stopped: {searcher.finished} trials stored in {out}; continue with: autocompress search "
                 f"--task {run['task']['spec']} --out {out} --trials {trials} --resume")
        raise
    interrupted = searcher.interrupt_running("interrupted: the search stopped while it ran")
    trial_table, front = rundir.write_tables(study, out, fidelity=fidelity, budget=budget)
    out_of_time = execution.time_budget_s is not None and time.perf_counter() - clock >= execution.time_budget_s
    if out_of_time:
        progress(f"time budget of {execution.time_budget_s:g} s spent after {searcher.finished} trials")
    elif searcher.finished < trials:
        progress(f"stopped after {searcher.finished} of {trials} trials (all stored in {out}); continue with: "
                 f"autocompress search --task {run['task']['spec']} --out {out} --trials {trials} --resume")
    run = rundir.read_run_json(out)
    run["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run["settings"]["trials"] = trials
    run.setdefault("sessions", []).append({"wall_s": round(time.perf_counter() - clock, 2), "workers": workers,
                                           "interrupted": interrupted})
    rundir.write_json(out / rundir.RUN_JSON, run)
    _write_report(out, progress)
    return SearchResult(out, teacher, trial_table, front, finished=searcher.finished >= trials or out_of_time)


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


__all__ = ["SAMPLERS", "Execution", "SearchResult", "front_table", "make_sampler", "search"]
