"""A Ray Tune Searcher backed by the Optuna study: Tune schedules, the study decides and stores.

``suggest`` asks the study for the next plan (duplicates of a finished plan are answered
from the study at once); with local search (``mutations``) every other new plan is instead a
neighbour of a plan on the measured front (with the scan's predictor as ``guide``: of several
neighbours, the one it expects to add most), and with a predictor (``proposals``) one in turn is
its choice; the start-up plans (``startup``) come first on the sampler's turns; ``on_trial_complete`` tells the study the outcome the moment a trial
ends, so a driver that dies loses nothing finished. With several rungs (successive halving,
``rungs.Rungs``) every new plan starts on rung 0, and each result may promote plans to the
next rung: a promotion is its own trial, continuing the fine-tuning of the plan's trial one
rung below from its checkpoint. Every trial stores its ``rung``; the study is the whole state,
so a resumed search knows every rung.

Example (the controller builds it; here on a tiny space, with an in-memory study):
    >>> import torch
    >>> from torch import nn
    >>> from autocompress.spaces.layers import discover
    >>> space = SearchSpace(discover(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), torch.randn(1, 4)))
    >>> study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    >>> searcher = StudySearcher(study=study, space=space, total=2, on_finished=print, seen={}, rungs=Rungs((100,)))
    >>> config = searcher.suggest("t0")
    >>> config["number"], Plan.from_dict(config["plan"]) == searcher.running["t0"][1]
    (0, True)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Callable

import optuna
import pandas as pd
from ray.tune.search import Searcher

from autocompress.budget import Budget
from autocompress.metrics import Metrics
from autocompress.plan import Plan
from autocompress.search.mutations import guided_mutation, mutation, parents
from autocompress.search.proposals import FIT_MIN_TRIALS, Predictor, propose
from autocompress.search.rungs import Rungs, promotion_floor
from autocompress.spaces.space import SearchSpace

State = optuna.trial.TrialState
DUPLICATES_IN_A_ROW = 100  # proposals that all repeat earlier plans: the space holds no new one
PROPOSALS_CONSIDERED = 200  # plans along the predicted front looked through for one not tried
WARM_START = "warm start"  # the source of the known recipes tried first
FITTED = "warm start, fitted to the budget"  # a recipe over the size or latency budget, pruned further


def rung_of(trial: optuna.trial.FrozenTrial, rungs: Rungs) -> int:
    """The rung a trial ran on (runs made before rungs existed: "screen" was rung 0, and a
    full-fidelity trial is on the top rung)."""
    if "rung" in trial.user_attrs:
        return int(trial.user_attrs["rung"])
    return 0 if trial.user_attrs.get("level") == "screen" else rungs.top


def was_interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    """Stopped by Ctrl-C, --time-budget or the driver's death, not by its own fault (a trial's
    own failure always stores its ``error``; a driver that died left it without one)."""
    return trial.state == State.FAIL and (bool(trial.user_attrs.get("interrupted")) or "error" not in trial.user_attrs)


def counts_toward_total(trial: optuna.trial.FrozenTrial) -> bool:
    """Finished trials count, except those stopped by an interruption (they are re-run) and
    duplicates (answered from the earlier trial of the same plan)."""
    return trial.state.is_finished() and not was_interrupted(trial) and "duplicate_of" not in trial.user_attrs


class StudySearcher(Searcher):
    def __init__(self, *, study: optuna.Study, space: SearchSpace, total: int, seen: dict[Plan, optuna.trial.FrozenTrial],
                 on_finished: Callable[[optuna.trial.FrozenTrial], None], rungs: Rungs,
                 timeout_s: float | None = None, retries: int = 1, budget: Budget | None = None,
                 predictor: Predictor | None = None, mutations: random.Random | None = None,
                 guide: Predictor | None = None,
                 teacher: dict | None = None):
        super().__init__(metric="accuracy", mode="max")
        self.study, self.space, self.total, self.seen = study, space, total, seen
        self.on_finished, self.rungs, self.timeout_s, self.retries = on_finished, rungs, timeout_s, retries
        self.budget = budget or Budget()
        self.running: dict[str, tuple[optuna.Trial, Plan, int]] = {}
        self.queue: list[tuple[Plan, int]] = []  # plans to run next (warm start, re-runs, promotions): (plan, rung)
        self.startup: list[Plan] = []  # TPE's start-up plans (``SearchSpace.startup_plans``), on the sampler's turns
        self.promoted: set[tuple[Plan, int]] = {
            (Plan.from_dict(t.user_attrs["plan"]), rung_of(t, rungs)) for t in study.get_trials(deepcopy=False)
            if "plan" in t.user_attrs and rung_of(t, rungs) > 0}
        self.finished = sum(counts_toward_total(t) for t in study.get_trials(deepcopy=False))
        self.repeats = 0  # duplicates proposed since the last new plan
        self.exhausted = False  # DUPLICATES_IN_A_ROW proposals in a row were duplicates
        self.sources: dict[tuple[Plan, int], str] = {}  # where queued plans come from (warm start, ...)
        self.predictor = predictor  # with one: the predictor, then the sampler, propose new plans in turn
        self.new_plans = 0
        self.mutations = mutations  # with a generator: local search proposes every other sampler's plan
        self.guide = guide  # with the scan's predictor: local search runs the neighbour it expects to add most
        self.teacher = teacher  # the teacher's metrics: the front's points worth mutating are near it

    def __getstate__(self) -> dict:
        """Ray Tune pickles its searcher into the run directory (tune/): keep the study, whose
        storage URL may hold a password, and everything else out of it. Nothing restores from
        that pickle: the study is the state."""
        return {"total": self.total}

    def suggest(self, trial_id: str):
        while not self.exhausted and self.finished + len(self.running) < self.total:
            rung, source = 0, "sampler"
            if not self.queue:
                self.new_plans += 1
                source, proposal = self._propose()
                if proposal is not None:
                    self.queue.append((proposal, 0))
            if self.queue:  # enqueued right before ask, so ask returns exactly this plan
                plan, rung = self.queue.pop(0)
                source = "promotion" if rung else self.sources.pop((plan, rung), source)
                self.study.enqueue_trial(self.space.params_from_plan(plan))
            trial = self.study.ask(fixed_distributions=self.space.distributions())
            plan = self.space.plan_from_params(trial.params)
            trial.set_user_attr("plan", plan.to_dict())
            trial.set_user_attr("rung", rung)
            trial.set_user_attr("source", source)
            previous = self.seen.get((plan, rung))
            if previous is not None:
                self._answer_duplicate(trial, previous)
                continue
            self.repeats = 0
            self.running[trial_id] = (trial, plan, rung)
            return self._config(trial, plan, rung)
        return Searcher.FINISHED if not self.running else None

    def _config(self, trial: optuna.Trial, plan: Plan, rung: int) -> dict:
        """What the worker needs: the plan, and with rungs its steps and the trial it continues."""
        config = {"number": trial.number, "plan": plan.to_dict()}
        if self.rungs.top:
            config["distill"] = {"steps": self.rungs.steps[rung]}
            below = self.seen.get((plan, rung - 1)) if rung else None
            if below is not None:  # a promotion continues the fine-tuning of the rung below
                config["continue_from"] = below.number
        return config

    def _propose(self) -> tuple[str, Plan | None]:
        """The next new plan and where it comes from (None: the sampler asks the study). The
        start-up plans take the sampler's turns, and any turn whose proposer has nothing yet (local
        search before the first result), so local search begins as soon as the front has a point."""
        proposer = self._proposer()
        proposal = {"predictor": self._proposal, "mutation": self._mutation}.get(proposer, lambda: None)()
        if proposal is None and self.startup:
            return "startup", self.startup.pop(0)
        return (proposer, proposal) if proposal is not None else ("sampler", None)

    def _proposer(self) -> str:
        """Who proposes the next new plan: the predictor (with one), the sampler and local search
        (with it) take turns, in that order; one that has nothing falls back to the sampler."""
        cycle = ["predictor"] * (self.predictor is not None) + ["sampler"] + ["mutation"] * (self.mutations is not None)
        return cycle[(self.new_plans - 1) % len(cycle)]

    def _mutation(self) -> Plan | None:
        """Local search (``mutations``): a plan one or two knob steps from a plan on the top rung's
        measured front (of the plans within the budget, when any is), not tried yet."""
        top = [(plan, frozen) for (plan, rung), frozen in self.seen.items() if rung == self.rungs.top]
        feasible = [(plan, frozen) for plan, frozen in top if self.budget.feasible(frozen.user_attrs["metrics"])]
        top = feasible or top  # under a budget: neighbours of the plans within it
        if not top or self.teacher is None:
            return None
        frame = pd.DataFrame([frozen.user_attrs["metrics"] for _, frozen in top])
        weights = parents(frame, self.teacher)
        chosen = [(top[i][1].params, top[i][0]) for i in weights.index]
        tried = self._tried().__contains__
        if self.guide is None:
            return mutation(chosen, space=self.space, tried=tried, rng=self.mutations, weights=weights.tolist())
        self.guide = self._refit(self.guide)
        return guided_mutation(chosen, measured=[frame.loc[i].to_dict() for i in weights.index], space=self.space,
                               tried=tried, rng=self.mutations, predictor=self.guide, weights=weights.tolist())

    def _refit(self, predictor: Predictor) -> Predictor:
        """The predictor refit on the finished trials of the highest rung with enough of them."""
        by_rung: dict[int, list] = {}
        for (plan, rung), frozen in self.seen.items():
            by_rung.setdefault(rung, []).append((frozen.params, frozen.user_attrs["metrics"]))
        enough = [r for r, rows in by_rung.items() if len(rows) >= FIT_MIN_TRIALS]
        return predictor.refit(by_rung[max(enough)]) if enough else predictor

    def _tried(self) -> set[Plan]:
        """Plans finished on any rung or running now (new plans are made only when the queue is empty)."""
        return {plan for plan, _ in self.seen} | {plan for _, plan, _ in self.running.values()}

    def _proposal(self) -> Plan | None:
        """The predictor's next plan (``proposals``): refit on the finished trials of the highest
        rung with enough of them; of the plans along its predicted front not tried yet, the one
        predicted to add most hypervolume to the top rung's front (``Predictor.choose``)."""
        if self.predictor is None:
            return None
        self.predictor = self._refit(self.predictor)
        front = pd.DataFrame([f.user_attrs["metrics"] for (_, rung), f in self.seen.items() if rung == self.rungs.top])
        return propose(self.predictor, space=self.space, tried=self._tried(), front=front,
                       count=PROPOSALS_CONSIDERED)

    def _answer_duplicate(self, trial: optuna.Trial, previous: optuna.trial.FrozenTrial) -> None:
        """The same applied plan at the same fidelity ran before: store its numbers under this
        trial too (the sampler learns it), marked ``duplicate_of``; it does not count toward the
        total and never joins the front. Too many in a row: the space is exhausted."""
        trial.set_user_attr("metrics", previous.user_attrs["metrics"])
        trial.set_user_attr("duplicate_of", previous.number)
        frozen = self._tell_complete(trial, Metrics.from_dict(previous.user_attrs["metrics"]))
        self.repeats += 1
        self.exhausted = self.repeats >= DUPLICATES_IN_A_ROW
        self.on_finished(frozen)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.running:
            return
        trial, plan, rung = self.running.pop(trial_id)
        result = result or {}
        for key in ("node", "started_at", "finished_at", "duration_s"):
            if key in result:
                trial.set_user_attr(key, result[key])
        if error:
            reason = (f"the worker running this trial died or raised outside the candidate "
                      f"(Ray Tune retried it {self.retries} time(s))")
        elif not result.get("final"):  # stopped by Tune before its final report
            reason = f"timed out: still running after {self.timeout_s:g} s (--trial-timeout)"
        else:
            reason = result.get("error")
        metrics = None
        if not reason:
            try:
                metrics = Metrics.from_dict(json.loads(result["metrics_json"]))
            except (KeyError, TypeError, ValueError) as exc:
                reason = f"the trial reported no usable metrics ({type(exc).__name__}: {exc})"
        if reason:
            trial.set_user_attr("error", reason)
            frozen = self.study.tell(trial, state=State.FAIL)
        else:
            trial.set_user_attr("metrics", metrics.to_dict())
            frozen = self._tell_complete(trial, metrics)
        self._finish(frozen, plan, rung)

    def _tell_complete(self, trial: optuna.Trial, metrics: Metrics) -> optuna.trial.FrozenTrial:
        """Store the objectives, and the budget as constraints (<= 0 feasible) for the sampler."""
        for axis, value in self.budget.constraints(metrics.to_dict()).items():
            trial.set_constraint(axis, value)
        return self.study.tell(trial, [metrics.accuracy, metrics.size_bytes, metrics.latency_ms])

    def _finish(self, frozen: optuna.trial.FrozenTrial, plan: Plan, rung: int) -> None:
        self.finished += 1
        if frozen.state == State.COMPLETE:
            self.seen.setdefault((plan, rung), frozen)
            if rung == 0:
                self._fit_to_budget(frozen, plan)
            if rung < self.rungs.top:
                self._queue_promotions()
        self.on_finished(frozen)

    def _fit_to_budget(self, frozen: optuna.trial.FrozenTrial, plan: Plan) -> None:
        """A warm-start recipe over the size or latency budget runs again next, pruned one step
        further (``SearchSpace.pruned_further``: with the scan, its widest groups first), until it
        fits: under a tight budget every recipe would otherwise be wasted. A try still over the
        budget is measured, never fine-tuned (seconds)."""
        if frozen.user_attrs.get("source") not in (WARM_START, FITTED):
            return
        if self.budget.structural().feasible(frozen.user_attrs["metrics"]):
            return
        scan = self.guide or self.predictor  # with the scan: the widest groups are pruned first
        smaller = self.space.pruned_further(plan, weights=scan.group_bytes() if scan else None)
        if smaller is not None and smaller not in self._tried():
            self.queue.insert(0, (smaller, 0))
            self.sources[(smaller, 0)] = FITTED

    def _queue_promotions(self) -> None:
        """Put the plans due to go up a rung (``Rungs.promotions``) at the head of the queue."""
        results: dict[int, list[dict]] = {}
        for (plan, rung), frozen in self.seen.items():
            if rung < self.rungs.top:
                metrics = frozen.user_attrs["metrics"]
                results.setdefault(rung, []).append(
                    {"plan": plan, **metrics, "feasible": self.budget.structural().feasible(metrics)})
        frames = {rung: pd.DataFrame(rows) for rung, rows in results.items()}
        floor = None if self.teacher is None else promotion_floor(self.teacher["accuracy"])
        chosen = self.rungs.promotions(frames, promoted=self.promoted, min_accuracy=floor)
        self.promoted.update(chosen)
        self.queue[:0] = chosen

    def interrupt_running(self, reason: str) -> int:
        """Store every trial still running as failed and interrupted (resume re-runs them)."""
        for trial, _, _ in self.running.values():
            trial.set_user_attr("error", reason)
            trial.set_user_attr("interrupted", True)
            self.study.tell(trial, state=State.FAIL)
        count = len(self.running)
        self.running.clear()
        return count

    def save(self, checkpoint_path: str) -> None:  # the study is the state; nothing else to save
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass


def seen_plans(study: optuna.Study, rungs: Rungs) -> dict[tuple[Plan, int], optuna.trial.FrozenTrial]:
    """Completed plans by (plan, rung), first trial first, for answering duplicates and promoting.

    Duplicates are left out: they are answers, not results."""
    seen = {}
    for t in study.get_trials(deepcopy=False, states=(State.COMPLETE,)):
        if "plan" in t.user_attrs and "duplicate_of" not in t.user_attrs:
            seen.setdefault((Plan.from_dict(t.user_attrs["plan"]), rung_of(t, rungs)), t)
    return seen


def requeue_interrupted(study: optuna.Study, rungs: Rungs) -> list[tuple[Plan, int]]:
    """Before a resumed search: trials left RUNNING by a driver that died are stored as failed
    (interrupted); returns the (plan, rung) of every interrupted trial whose plan has not run on
    that rung again since, so that the resumed search runs them (once each)."""
    for frozen in study.get_trials(deepcopy=False, states=(State.RUNNING,)):
        study.tell(frozen.number, state=State.FAIL, skip_if_finished=True)
    trials = study.get_trials(deepcopy=False)
    ran_again = {(Plan.from_dict(t.user_attrs["plan"]), rung_of(t, rungs))
                 for t in trials if counts_toward_total(t) and "plan" in t.user_attrs}
    again = {}
    for frozen in trials:
        if was_interrupted(frozen) and "plan" in frozen.user_attrs:
            key = (Plan.from_dict(frozen.user_attrs["plan"]), rung_of(frozen, rungs))
            if key not in ran_again:
                again[key] = key
    return list(again.values())
