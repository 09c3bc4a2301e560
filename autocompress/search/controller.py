"""The search controller: one Optuna study over the joint space, trials run on Ray workers.

Each trial: the sampler proposes a plan, a Ray worker compresses, fine-tunes, exports and
measures it, and the study stores accuracy, size_bytes and latency_ms (plus every metric as a
user attribute) the moment it finishes. A candidate that fails is stored as failed with its
reason and the search goes on; Ctrl-C stores the running trials as failed (interrupted: a
resumed search runs them again) and keeps the rest.

A search goes through four steps, each below: open the run (a new one, or the stored one to
resume, with its settings and its study), the first trials to queue, running them, finishing.

Example (two candidates of the built-in digits task, real Ray, without the sensitivity scan):
    >>> import tempfile
    >>> from autocompress import DistillConfig, SearchSettings, load_task
    >>> out = tempfile.mkdtemp() + "/run"
    >>> settings = SearchSettings(distill=DistillConfig(steps=20), warm_start=False, sensitivity=False)
    >>> result = search(load_task("digits"), settings=settings, trials=2, out=out, progress=lambda line: None)
    >>> len(result.trials), result.finished
    (2, True)
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import optuna
import pandas as pd
import torch

from autocompress.arguments import PATH, expect, expect_callable
from autocompress.compressors.pipeline import task_context, with_task_lr
from autocompress.devices import check_amp_placement
from autocompress.evaluators.evaluate import fidelity_label, latency_meter
from autocompress.metrics import Metrics
from autocompress.search import rundir
from autocompress.search.best import first_met, full_fidelity
from autocompress.search.pareto import OBJECTIVES
from autocompress.search.proposals import Predictor
from autocompress.search.samplers import make_sampler
from autocompress.search.settings import Execution, SearchSettings, SettingError
from autocompress.search.teacher_latency import latency_actor, measure_teacher
from autocompress.search.text_tables import budget_met_line, budget_missed_line, progress_line
from autocompress.spaces.space import SearchSpace
from autocompress.task import Task, UsageError, check_teacher_runs

CHECKPOINT_EVERY_S = 300.0  # on_checkpoint (the CLI: refresh report.html) at most this often, and at the end


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    teacher: Metrics
    trials: pd.DataFrame
    pareto: pd.DataFrame
    finished: bool = True  # False when stopped (Ctrl-C) before reaching the requested trials

    def best(self, **budget_and_preference):
        """The best stored candidate under a budget, e.g. ``result.best(max_latency_ms=2.0)``;
        keywords as ``Run.best``: max_size_bytes, max_latency_ms, min_accuracy, latency_profile, prefer."""
        from autocompress.search.best import load_run

        return load_run(self.run_dir).best(**budget_and_preference)


@dataclass
class _Session:
    """One search session: what the four steps share."""

    task: Task
    out: Path
    settings: SearchSettings
    execution: Execution
    trials: int
    storage: str | None
    run: dict
    space: SearchSpace
    progress: Callable[[str], None]
    resume: bool
    teacher: Metrics | None = None
    study: optuna.Study | None = None
    workers: int = 1
    run_id: str = ""  # names the node-local flag that pauses trials and scan cells while a latency is measured
    actor: object = None  # the LatencyActor


def search(task: Task, *, settings: SearchSettings | None = None, trials: int = 40, out: str | Path = "runs/latest",
           resume: bool = False, execution: Execution | None = None, storage: str | None = None,
           task_spec: str | None = None, data_dir: str | None = None, command: str = "",
           progress: Callable[[str], None] = print,
           on_checkpoint: Callable[[Path], None] | None = None) -> SearchResult:
    """Search the joint space of ``task`` until ``trials`` trials have finished; results land in ``out``.

    ``settings`` (a SearchSettings) is everything that shapes the results; run.json stores
    it. With ``resume=True`` the stored search in ``out`` continues with its stored settings
    (``settings`` None) and its stored study: every stored trial is kept, interrupted ones run
    again; settings or a ``storage`` that differ from the stored ones are refused.
    ``execution`` says where trials run (Ray). ``storage`` is a database URL for the study
    (default: study.db in ``out``). ``on_checkpoint(out)`` is called every few minutes, on
    Ctrl-C and at the end, after the tables are written (the CLI refreshes report.html there).
    Only one search runs in a directory at a time.
    """
    _check_search_arguments(task, settings=settings, execution=execution, out=out, resume=resume, storage=storage,
                            progress=progress, on_checkpoint=on_checkpoint)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise SettingError("trials", f"must be at least 1, got {trials!r}")
    check_teacher_runs(task)  # a Task made in Python: its teacher runs, takes batches, holds finite weights
    execution = execution or Execution()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data_dir = str(Path(data_dir).expanduser().resolve()) if data_dir else None  # workers run elsewhere
    out = Path(out)
    fresh = not rundir.out_exists(out)
    out = rundir.prepare_run_dir(out, resume=resume)
    with rundir.locked(out):
        try:
            session = _open(task, out=out, settings=settings, execution=execution, trials=trials,
                            storage=storage, resume=resume, task_spec=task_spec, data_dir=data_dir,
                            command=command, progress=progress)
        except BaseException:
            if fresh and not rundir.is_run_dir(out):  # refused before anything was stored: no half folder
                shutil.rmtree(out, ignore_errors=True)
            raise
        return _run(session, on_checkpoint=on_checkpoint, task_spec=task_spec, data_dir=data_dir)


def _check_search_arguments(task, *, settings, execution, out, resume, storage, progress, on_checkpoint) -> None:
    """The types search() takes, each refused in one line naming its keyword."""
    expect("search", "task", task, Task, how="a Task, e.g. autocompress.load_task('digits')")
    expect("search", "settings", settings, SearchSettings, optional=True,
           how="autocompress.SearchSettings(...), e.g. SearchSettings(distill=DistillConfig(steps=100))")
    expect("search", "execution", execution, Execution, optional=True, how="autocompress.Execution(workers=2)")
    expect("search", "out", out, PATH, how="the run folder's path, e.g. out='runs/first'")
    expect("search", "resume", resume, bool, how="True or False")
    expect("search", "storage", storage, str, optional=True, how="a database URL, e.g. 'postgresql://host/db'")
    expect_callable("search", "progress", progress, how="a function of one line, e.g. progress=print")
    expect_callable("search", "on_checkpoint", on_checkpoint, optional=True, how="a function of the run folder")


def _open(task: Task, *, out: Path, settings, execution, trials, storage, resume, task_spec, data_dir, command,
          progress) -> _Session:
    """Step 1: the run's settings and study (stored ones when resuming), the teacher, Ray."""
    from autocompress.search.storage import check_resume_storage, check_study_file, open_storage

    stored = rundir.read_run_json(out, resume=True) if resume else None
    if stored is not None:
        check_resume_storage(stored, storage)
        if storage is None:  # its study.db, checked before SQLite could make a new one in its place
            check_study_file(out)
    rdb = open_storage(storage) if storage else None
    if stored is not None:
        settings = _resumed_settings(stored, settings, task)
    else:
        settings = settings or SearchSettings()
        settings = replace(settings, distill=with_task_lr(settings.distill, task))  # the lr actually used
    check_amp_placement(settings.distill.amp, execution.gpus_per_trial)  # before anything costly runs
    space = _space(task, settings)
    if stored is not None and stored["space"] != space.summary():
        raise UsageError(f"--resume: the search space of {task.name!r} differs from the one stored in {out} "
                         "(another model or autocompress version?); start a new --out")
    session = _Session(task=task, out=out, settings=settings, execution=execution, trials=trials, storage=storage,
                       run=stored or {}, space=space, progress=progress, resume=resume)
    _start(session, rdb=rdb, task_spec=task_spec, data_dir=data_dir, command=command)
    return session


def _resumed_settings(stored: dict, given: SearchSettings | None, task: Task) -> SearchSettings:
    if stored["task"]["name"] != task.name:
        raise UsageError(f"--resume: the run holds a search of task {stored['task']['name']!r}, not {task.name!r}; "
                         "resume with the same --task, or start a new --out")
    settings = SearchSettings.from_dict(stored["settings"])
    for name, (asked, kept) in (given.differences(settings) if given else {}).items():
        if not (name == "distill.lr" and asked is None):  # None: the task's, settled when the run started
            raise SettingError(name, f"{asked!r} differs from this run's stored value {kept!r}; resume without it "
                                     "(the run keeps its settings), or start a new --out")
    return settings


def _space(task: Task, settings: SearchSettings) -> SearchSpace:
    discovery = task_context(task).discovery  # a model that cannot be searched says why itself
    try:
        return SearchSpace(discovery, importance=settings.importance, techniques=settings.techniques)
    except ValueError as exc:
        raise SettingError("techniques", str(exc)) from exc


def _start(session: _Session, *, rdb, task_spec, data_dir, command) -> None:
    """Measure the teacher (a fresh run), start Ray and the latency actor, open the study."""
    import ray

    from autocompress.search.ray_runner import cap_workers, check_address, largest_node_cpus, start_ray

    execution, progress = session.execution, session.progress
    if execution.address:  # a wrong --address is said before the teacher is measured
        check_address(execution.address)
    local_teacher = None
    if execution.latency_resource is None and not session.resume:  # measure while the machine is quiet
        extra = {name: latency_meter(p) for name, p in session.settings.latency_profiles.items()}
        local_teacher = measure_teacher(session.task, out=session.out, latency=latency_meter(session.settings.latency),
                                        where="here (before Ray starts)", progress=progress, extra=extra)
    progress(start_ray(address=execution.address, workers=execution.workers, cpus_per_trial=execution.cpus_per_trial))
    session.workers, warning = cap_workers(execution.workers, available_cpus=ray.cluster_resources().get("CPU", 1),
                                           cpus_per_trial=execution.cpus_per_trial,
                                           largest_node_cpus=largest_node_cpus())
    if warning:
        progress(f"warning: {warning}")
    gpus = ray.cluster_resources().get("GPU", 0)
    if execution.gpus_per_trial > gpus:
        raise UsageError(f"--gpus-per-trial {execution.gpus_per_trial:g}: the Ray cluster has {gpus:g} GPUs, so no "
                         "trial could ever start; use 0 here, or join a cluster with GPUs (--address)")
    if execution.gpus_per_trial > 0 and execution.address is None and not torch.cuda.is_available():
        raise UsageError(f"--gpus-per-trial {execution.gpus_per_trial:g}: Ray sees {gpus:g} GPU(s) here but torch "
                         f"{torch.__version__} has no CUDA (a CPU-only build); install a CUDA build of torch, or use "
                         "--gpus-per-trial 0")
    session.run_id = f"{os.getpid()}-{int(time.time() * 1000)}"
    session.actor = latency_actor(execution.latency_resource, session.run_id)
    if session.resume:
        session.teacher = rundir.teacher_metrics(session.run)
    else:
        from autocompress.search.worker import remote_latency

        teacher = local_teacher or measure_teacher(  # (the actor's node asked only here: it may still be starting)
            session.task, out=session.out, latency=remote_latency(session.actor, session.settings.latency),
            progress=progress, extra={name: remote_latency(session.actor, p)
                                      for name, p in session.settings.latency_profiles.items()},
            where=f"on node {ray.get(session.actor.node.remote())} ({execution.latency_resource})")
        session.run = rundir.new_run_info(
            task=session.task, space=session.space, settings=session.settings, execution=execution,
            workers=session.workers, trials=session.trials, storage=session.storage, out=session.out,
            teacher_measured=teacher, task_spec=task_spec, data_dir=data_dir, command=command)
        session.teacher = rundir.teacher_metrics(session.run)
    session.study = _open_study(session, rdb)
    if not session.resume:
        rundir.write_json(session.out / rundir.RUN_JSON, session.run)  # only once the study exists
    progress(f"teacher: accuracy {session.teacher.accuracy:.4f}, {session.teacher.size_bytes / 1024:.1f} KB, "
             f"{session.teacher.latency_ms:.4f} ms; {len(session.space.param_names())} search parameters; "
             f"{session.workers} worker(s)")


def _open_study(session: _Session, rdb) -> optuna.Study:
    """The run's study: created for a new run; for a resume, the stored one or a refusal (never
    a new empty study that would re-run trial 0 and overwrite its artifacts)."""
    from autocompress.search.storage import sqlite_url

    settings, name = session.settings, session.run["study"]["name"]
    sampler = make_sampler(settings.sampler, seed=settings.seed, trials=session.trials)
    storage = rdb or sqlite_url(session.out)
    try:
        if session.resume:
            return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        return optuna.create_study(study_name=name, storage=storage, directions=list(OBJECTIVES.values()),
                                   sampler=sampler)
    except KeyError:
        raise UsageError(f"--resume: the study {name!r} of {session.out} is not in its storage "
                         f"({session.run['study']['storage']}); give the --storage the run used") from None
    except Exception as exc:  # a damaged study.db, a database that went away
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot open the study of {session.out} ({reason}); if study.db is damaged restore it "
                         "from a backup, or start a new --out") from exc


def _run(session: _Session, *, on_checkpoint, task_spec, data_dir) -> SearchResult:
    """Step 3: run the trials on Ray until enough have finished, Ctrl-C, or the time budget."""
    from autocompress.search.first_trials import WARM_START, first_trials, startup_plans, warm_starts_on
    from autocompress.search.proposers import ProposerOptions, turns
    from autocompress.search.ray_runner import run_trials
    from autocompress.search.searcher import StudySearcher, queue_first
    from autocompress.search.trial_record import seen_plans
    from autocompress.search.worker import Job

    settings, execution, out = session.settings, session.execution, session.out
    queue = first_trials(study=session.study, space=session.space, settings=settings, trials=session.trials,
                         progress=session.progress)
    clock = time.perf_counter()
    checkpoint = _Checkpoint(session, on_checkpoint)
    rungs = settings.rungs()
    startup = startup_plans(study=session.study, space=session.space, settings=settings, trials=session.trials,
                            warm_starts=sum(source == WARM_START for _, _, source in queue))
    searcher = StudySearcher(study=session.study, space=session.space, total=session.trials,
                             seen=seen_plans(session.study, rungs.top), on_finished=checkpoint.trial_finished,
                             rungs=rungs, timeout_s=execution.trial_timeout_s, retries=execution.retries,
                             budget=settings.budget, teacher=session.teacher.to_dict(),
                             turns=turns(ProposerOptions(settings=settings, scan=None, startup=startup)))
    checkpoint.searcher = searcher
    checkpoint.tables()  # trials.csv exists from the start: best and report can read a run before its first trial
    queue_first(searcher, queue)
    job = Job(task_spec=task_spec, data_dir=data_dir, task=None if task_spec else session.task,
              teacher_state=session.task.teacher.state_dict(), distill=settings.distill, out_dir=str(out.resolve()),
              threads=max(1, int(execution.cpus_per_trial)), run_id=session.run_id, latency_actor=session.actor,
              latency_profile=settings.latency, latency_profiles=settings.latency_profiles,
              budget=settings.budget, checkpoints=rungs.top > 0, discovery=task_context(session.task).discovery)
    try:
        if settings.sensitivity:  # before the first trial; a resume reuses what sensitivity.csv holds
            from autocompress.search.sensitivity import SCAN_SHARE, scan_for_run

            limit_s = None if execution.time_budget_s is None else SCAN_SHARE * execution.time_budget_s
            table = scan_for_run(job=job, space=session.space, out=out, steps=settings.sensitivity_steps,
                                 workers=session.workers, cpus_per_trial=execution.cpus_per_trial,
                                 gpus_per_trial=execution.gpus_per_trial, time_limit_s=limit_s,
                                 progress=session.progress)
            scanned = Predictor.from_scan(table, session.teacher.to_dict())  # immutable: refits make new ones
            warm_starts_on(searcher, scanned.kernels)
            searcher.turns = turns(ProposerOptions(settings=settings, scan=scanned, startup=startup))
            uses_scan = settings.proposals or (settings.guide and settings.local_search)
            searcher.fit_predictor = scanned if uses_scan else None
        budget_s = execution.time_budget_s  # it covers the scan too: a search stops when its time is spent
        left_s = None if budget_s is None else max(1.0, budget_s - (time.perf_counter() - clock))
        run_trials(searcher=searcher, job=job, workers=session.workers, cpus_per_trial=execution.cpus_per_trial,
                   gpus_per_trial=execution.gpus_per_trial, timeout_s=execution.trial_timeout_s,
                   retries=execution.retries, time_budget_s=left_s, storage=out)
    except KeyboardInterrupt:  # in the scan or the trials: _finish says how to continue
        searcher.interrupt_running("interrupted by the user (Ctrl-C)")
        _finish(session, searcher, clock, checkpoint)
        raise
    return _finish(session, searcher, clock, checkpoint)


def _resume_command(session: _Session) -> str:
    return rundir.resume_command(task_spec=session.run["task"]["spec"], out=session.out, trials=session.trials,
                                 data_dir=session.run["task"].get("data_dir"), storage=session.storage)


class _Checkpoint:
    """After each finished trial: a progress line and the tables; every few minutes (and at the
    end) the caller's ``on_checkpoint``."""

    def __init__(self, session: _Session, on_checkpoint):
        self.session, self.on_checkpoint, self.searcher = session, on_checkpoint, None
        self.last = time.perf_counter()
        budget = session.settings.budget  # met in an earlier session of this run: not said again
        self.budget_met = budget.is_empty or (
            session.resume and self._first_met(rundir.trials_frame(session.study, budget)) is not None)

    def tables(self):
        s = self.session
        return rundir.write_tables(s.study, s.out, fidelity=fidelity_label(s.settings.distill), budget=s.settings.budget)

    def trial_finished(self, frozen: optuna.trial.FrozenTrial) -> None:
        s = self.session
        s.progress(progress_line(self.searcher.finished, s.trials, frozen, s.teacher,
                                  rungs=len(self.searcher.scheduler.rungs.steps), batch=s.settings.latency.batch))
        trials, _ = self.tables()
        met = None if self.budget_met else self._first_met(trials)
        if met is not None:  # said once, when it happens
            self.budget_met = True
            s.progress(budget_met_line(met, s.settings.budget, s.teacher, started_at=s.run.get("started_at")))
        if time.perf_counter() - self.last >= CHECKPOINT_EVERY_S:
            self.call()

    def _first_met(self, trials: pd.DataFrame) -> pd.Series | None:
        """The full-fidelity trial that met the search's budget first (``best.first_met``)."""
        full = full_fidelity(trials, fidelity_label(self.session.settings.distill))
        return first_met(full, self.session.settings.budget)

    def call(self) -> None:
        self.last = time.perf_counter()
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.session.out)


def _finish(session: _Session, searcher, clock: float, checkpoint: _Checkpoint) -> SearchResult:
    """Step 4: store what still runs as interrupted, write the tables, record the session."""
    from autocompress.search.searcher import DUPLICATES_IN_A_ROW

    interrupted = searcher.interrupt_running(rundir.INTERRUPTED)
    trial_table, front = checkpoint.tables()
    budget_s = session.execution.time_budget_s
    out_of_time = budget_s is not None and time.perf_counter() - clock >= budget_s
    if out_of_time:
        session.progress(f"time budget of {budget_s:g} s spent after {searcher.finished} trials"
                         + (f"; {interrupted} interrupted trial(s) run again with: {_resume_command(session)}"
                            if interrupted else ""))
    elif searcher.exhausted:
        session.progress(f"stopped after {searcher.finished} of {session.trials} trials: the last "
                         f"{DUPLICATES_IN_A_ROW} plans proposed had all run before (the search space holds few "
                         "plans; search more --techniques, or ask for fewer --trials)")
    elif searcher.finished < session.trials:
        session.progress(f"stopped after {searcher.finished} of {session.trials} trials (all stored in "
                         f"{session.out}); continue with: {_resume_command(session)}")
    if not checkpoint.budget_met:  # how close it came, at any number of steps
        complete = trial_table[trial_table["state"] == "COMPLETE"]
        session.progress(budget_missed_line(complete, session.settings.budget, session.teacher))
    run = session.run  # what run.json holds (written at the start, or read for the resume)
    run["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run["settings"]["trials"] = session.trials
    run.setdefault("sessions", []).append({"wall_s": round(time.perf_counter() - clock, 2), "workers": session.workers,
                                           "interrupted": interrupted, "trials": searcher.finished})
    rundir.write_json(session.out / rundir.RUN_JSON, run)
    checkpoint.call()
    return SearchResult(session.out, session.teacher, trial_table, front,
                        finished=searcher.finished >= session.trials or out_of_time or searcher.exhausted)


__all__ = ["Execution", "SearchResult", "SearchSettings", "search"]
