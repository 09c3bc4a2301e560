"""A Ray Tune Searcher backed by the Optuna study: Tune schedules, the study decides and stores.

``suggest`` runs the queued plans first, in the order of ``QUEUE_ORDER`` (interrupted trials,
promotions, warm starts, a recipe fitted to the budget, under a size budget the student
recipe, then promotions of plans no closer to the teacher than ``rungs.REACH`` allows), then asks
the proposers in turn for a new plan (``proposers``: the scan's predictor, the sampler's start-up
plans or the sampler itself, local search); a plan that finished before on the same rung is
answered from the study at once. ``on_trial_complete`` tells the study the outcome the moment a
trial ends, so a driver that dies loses nothing finished; then the scheduler
(``scheduler.HalvingScheduler``, successive halving) may queue promotions, each its own trial
continuing the fine-tuning of the rung below from its checkpoint. Every trial stores its ``rung``
and ``source`` (``trial_record``); the study is the whole state, so a resumed search knows every rung.

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
from typing import Callable

import optuna
from ray.tune.search import Searcher

from autocompress.budget import Budget
from autocompress.metrics import Metrics
from autocompress.plan import Plan
from autocompress.search.first_trials import FITTED, WARM_START, fitted_to_budget, fitting_steps
from autocompress.search.proposals import Predictor
from autocompress.search.proposers import Proposer, next_plan
from autocompress.search.proposers.history import History, tried
from autocompress.search.proposers.startup import StartupPlans
from autocompress.search.rungs import Rungs
from autocompress.search.scheduler import HalvingScheduler
from autocompress.search.trial_record import WHERE_AND_WHEN, TrialRecord, record
from autocompress.spaces.space import SearchSpace, techniques_used

State = optuna.trial.TrialState
DUPLICATES_IN_A_ROW = 100  # proposals that all repeat earlier plans: the space holds no new one
PROMOTION, FAR_PROMOTION = "promotion", "promotion, none within reach"
# What runs first among queued plans. A promotion within reach of the teacher goes before the
# untried warm starts; one made only because no plan of its rung is within reach goes last. In a
# 15-minute cifar10-resnet20 search under the teacher's size / 8, the int8 recipe fitted to the
# budget (19 points down after 111 steps) was promoted twice, and fitted tries went before the
# untried int4 recipe, which started only 2.8 minutes in: it was the plan that met the budget
# within 1.2 points.
# Under a size budget the student recipe (a new, narrower and shallower network) waits
# behind the recipes that keep the teacher's weights and their fitted tries: it starts farthest
# from the teacher (cifar10-resnet20: 38 points down after 222 steps) and its 31-40 s on the one
# trial slot came before the int4 recipe, whose fitted try was the one to meet teacher/8 within a
# point, and whose last promotion was then cut by the 15-minute budget.
STUDENT_UNDER_BUDGET = "warm start, a student under a size budget"  # an order, not a source (the evidence: size)
QUEUE_ORDER = ("re-run", PROMOTION, WARM_START, FITTED, STUDENT_UNDER_BUDGET, FAR_PROMOTION)


def queue_rank(sources: dict, fitting: dict, *, budget: Budget | None = None) -> Callable[[tuple[Plan, int]], tuple]:
    """The order of queued (plan, rung) items, lower first: their kind in ``QUEUE_ORDER``
    (``sources``: item -> kind; none known: last; a student warm start under a ``budget`` with a
    size limit: ``STUDENT_UNDER_BUDGET``), then among recipes fitted to the budget the one
    predicted more accurate (``fitting``: plan -> (bytes, steps) of the try before it and its
    accuracy less what the fitting's steps are predicted to lose): int4 3.5 points down fits
    before 50% pruning + int8 44 points down, and int8 pruned hard to fit after int4 pruned a little.

    >>> rank = queue_rank({("a", 0): FITTED, ("b", 0): FITTED, ("p", 1): PROMOTION}, {"a": (9, 1, 0.5), "b": (9, 1, 0.9)})
    >>> sorted([("a", 0), ("b", 0), ("p", 1), ("?", 0)], key=rank)
    [('p', 1), ('b', 0), ('a', 0), ('?', 0)]
    >>> from autocompress.plan import LayerPlan
    >>> student, int4 = Plan(layers={}, width=0.5), Plan(layers={"fc": LayerPlan(bits=4)})
    >>> kinds = {(student, 0): WARM_START, (int4, 0): WARM_START, ("a", 0): FITTED}
    >>> [kinds.get(item) for item in sorted(kinds, key=queue_rank(kinds, {}, budget=Budget(max_size_bytes=9000)))]
    ['warm start', 'warm start, fitted to the budget', 'warm start']
    >>> sorted(kinds, key=queue_rank(kinds, {}))[0] == (student, 0)   # no budget: the order they came in
    True
    """
    limited = budget is not None and budget.max_size_bytes is not None

    def rank(item: tuple[Plan, int]) -> tuple:
        kind = sources.get(item)
        if kind == WARM_START and limited and "student" in techniques_used(item[0]):
            kind = STUDENT_UNDER_BUDGET
        before = fitting.get(item[0]) if kind == FITTED else None
        return (QUEUE_ORDER.index(kind) if kind in QUEUE_ORDER else len(QUEUE_ORDER),
                -before[2] if before and before[2] is not None else 0.0)
    return rank


def enqueue(queue: list, item: tuple[Plan, int], rank: Callable[[tuple[Plan, int]], tuple]) -> None:
    """Put ``item`` into ``queue`` behind every queued item whose ``rank`` is not greater.

    >>> queue, kinds = [], {}
    >>> for item, kind in [("w", WARM_START), ("f", FITTED), ("far", FAR_PROMOTION), ("p", PROMOTION), ("f2", FITTED)]:
    ...     kinds[(item, 1)] = kind
    ...     enqueue(queue, (item, 1), queue_rank(kinds, {}))
    >>> [plan for plan, _ in queue]
    ['p', 'w', 'f', 'f2', 'far']
    """
    mine = rank(item)
    queue.insert(max((i + 1 for i, queued in enumerate(queue) if rank(queued) <= mine), default=0), item)


def queue_first(searcher: "StudySearcher", items: list[tuple[Plan, int, str]]) -> None:
    """Queue the first trials (``first_trials``: plan, rung, source) in ``queue_rank``'s order."""
    searcher.sources.update({(plan, rung): source for plan, rung, source in items})
    rank = queue_rank(searcher.sources, searcher.fitting, budget=searcher.budget)
    for plan, rung, _ in items:
        enqueue(searcher.queue, (plan, rung), rank)


class StudySearcher(Searcher):
    """``turns``: the proposers (default: the sampler's turn alone); ``fit_predictor``: the scan's
    predictor, so a recipe over the budget is pruned where the scan says it costs least."""

    def __init__(self, *, study: optuna.Study, space: SearchSpace, total: int, seen: dict[tuple[Plan, int], TrialRecord],
                 on_finished: Callable[[optuna.trial.FrozenTrial], None], rungs: Rungs,
                 timeout_s: float | None = None, retries: int = 1, budget: Budget | None = None,
                 turns: list[Proposer] | None = None, fit_predictor: Predictor | None = None,
                 teacher: dict | None = None):
        super().__init__(metric="accuracy", mode="max")
        self.study, self.space, self.total, self.seen = study, space, total, seen
        self.on_finished, self.timeout_s, self.retries = on_finished, timeout_s, retries
        self.budget, self.teacher = budget or Budget(), teacher  # teacher's metrics: the front worth mutating
        self.turns, self.fit_predictor = turns or [StartupPlans([])], fit_predictor
        self.scheduler = HalvingScheduler(rungs, trials=study.get_trials(deepcopy=False))
        self.running: dict[str, tuple[optuna.Trial, Plan, int]] = {}
        self.queue: list[tuple[Plan, int]] = []  # plans to run next (warm start, re-runs, promotions): (plan, rung)
        self.sources: dict[tuple[Plan, int], str] = {}  # where queued plans come from (warm start, ...)
        self.fitting: dict[Plan, tuple] = {}  # a fitted try -> (bytes, steps) of the try before, predicted accuracy
        self.finished = sum(TrialRecord.of(t).counts_toward_total for t in study.get_trials(deepcopy=False))
        self.repeats = 0  # duplicates proposed since the last new plan
        self.exhausted = False  # DUPLICATES_IN_A_ROW proposals in a row were duplicates
        self.new_plans = 0

    def __getstate__(self) -> dict:
        """Ray Tune pickles its searcher into the run directory (tune/): keep the study, whose
        storage URL may hold a password, and everything else out of it. Nothing restores from
        that pickle: the study is the state."""
        return {"total": self.total}

    def suggest(self, trial_id: str):
        while not self.exhausted and self.finished + len(self.running) < self.total:
            trial, plan, rung = self._ask()
            previous = self.seen.get((plan, rung))
            if previous is not None:  # the same plan ran on this rung: its numbers answer this trial too
                self.on_finished(answer_duplicate(self.study, trial, previous, self.budget))
                self.repeats += 1
                self.exhausted = self.repeats >= DUPLICATES_IN_A_ROW
                continue
            self.repeats = 0
            self.running[trial_id] = (trial, plan, rung)
            return self.scheduler.config(number=trial.number, plan=plan, rung=rung, seen=self.seen)
        return Searcher.FINISHED if not self.running else None

    def _ask(self) -> tuple[optuna.Trial, Plan, int]:
        """A new trial of the study: the next queued plan, else the next proposer's (enqueued right
        before ``ask``, so ``ask`` returns exactly that plan), else the sampler's."""
        rung, source = 0, "sampler"
        if not self.queue:
            self.new_plans += 1
            history = History(space=self.space, seen=self.seen, top=self.scheduler.rungs.top, budget=self.budget,
                              running=frozenset(plan for _, plan, _ in self.running.values()), teacher=self.teacher)
            source, proposal = next_plan(self.turns, self.new_plans, history)
            if proposal is not None:
                self.queue.append((proposal, 0))
        if self.queue:
            plan, rung = self.queue.pop(0)
            queued = self.sources.pop((plan, rung), source)
            source = PROMOTION if rung else queued
            self.study.enqueue_trial(self.space.params_from_plan(plan))
        trial = self.study.ask(fixed_distributions=self.space.distributions())
        plan = self.space.plan_from_params(trial.params)
        record(trial, plan=plan, rung=rung, source=source)
        return trial, plan, rung

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.running:
            return
        trial, plan, rung = self.running.pop(trial_id)
        result = result or {}
        record(trial, **{key: result[key] for key in WHERE_AND_WHEN if key in result})
        reason, metrics = outcome(result, error=error, retries=self.retries, timeout_s=self.timeout_s)
        if reason:
            record(trial, error=reason)
            frozen = self.study.tell(trial, state=State.FAIL)
        else:
            record(trial, metrics=metrics.to_dict())
            frozen = tell_complete(self.study, trial, metrics, self.budget)
        self._finish(frozen, plan, rung)

    def _finish(self, frozen: optuna.trial.FrozenTrial, plan: Plan, rung: int) -> None:
        """Count it; a completed plan joins ``seen``, may be fitted to the budget (a warm start
        over it runs again next, pruned further), and may promote plans up a rung."""
        self.finished += 1
        rank = queue_rank(self.sources, self.fitting, budget=self.budget)  # reads both as they change
        if frozen.state == State.COMPLETE:
            saved = TrialRecord.of(frozen)
            self.seen.setdefault((plan, rung), saved)
            size, (before, steps, _) = saved.metrics["size_bytes"], self.fitting.pop(plan, (None, 1, None))
            steps = fitting_steps(size, self.budget, None if before is None else (before - size) / steps)
            fitted = fitted_to_budget(saved, space=self.space, budget=self.budget, predictor=self.fit_predictor,
                                      steps=steps) if rung == 0 else None
            smaller, loss = fitted or (None, 0.0)
            if smaller is not None and smaller not in tried(self.seen, (p for _, p, _ in self.running.values())):
                self.sources[(smaller, 0)] = FITTED
                self.fitting[smaller] = (size, steps, saved.metrics["accuracy"] - loss)
                enqueue(self.queue, (smaller, 0), rank)
            if rung < self.scheduler.rungs.top:
                for plan_up, rung_up, within in self.scheduler.promotions(self.seen, budget=self.budget,
                                                                           teacher=self.teacher):
                    self.sources[(plan_up, rung_up)] = PROMOTION if within else FAR_PROMOTION
                    enqueue(self.queue, (plan_up, rung_up), rank)
        self.on_finished(frozen)

    def interrupt_running(self, reason: str) -> int:
        """Store every trial still running as failed and interrupted (resume re-runs them)."""
        for trial, _, _ in self.running.values():
            record(trial, error=reason, interrupted=True)
            self.study.tell(trial, state=State.FAIL)
        count = len(self.running)
        self.running.clear()
        return count

    def save(self, checkpoint_path: str) -> None:  # the study is the state; nothing else to save
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass


def outcome(result: dict, *, error: bool, retries: int, timeout_s: float | None) -> tuple[str | None, Metrics | None]:
    """A finished trial's (reason it failed, None) or (None, its metrics), from what Tune reported."""
    if error:
        return (f"the worker running this trial died or raised outside the candidate "
                f"(Ray Tune retried it {retries} time(s))"), None
    if not result.get("final"):  # stopped by Tune before its final report
        return f"timed out: still running after {timeout_s:g} s (--trial-timeout)", None
    if result.get("error"):
        return result["error"], None
    try:
        return None, Metrics.from_dict(json.loads(result["metrics_json"]))
    except (KeyError, TypeError, ValueError) as exc:
        return f"the trial reported no usable metrics ({type(exc).__name__}: {exc})", None


def tell_complete(study: optuna.Study, trial: optuna.Trial, metrics: Metrics, budget: Budget
                  ) -> optuna.trial.FrozenTrial:
    """Store the objectives, and the budget as constraints (<= 0 feasible) for the sampler."""
    for axis, value in budget.constraints(metrics.to_dict()).items():
        trial.set_constraint(axis, value)
    return study.tell(trial, [metrics.accuracy, metrics.size_bytes, metrics.latency_ms])


def answer_duplicate(study: optuna.Study, trial: optuna.Trial, previous: TrialRecord, budget: Budget
                     ) -> optuna.trial.FrozenTrial:
    """The same applied plan at the same fidelity ran before: store its numbers under this trial
    too (the sampler learns it), marked ``duplicate_of``; it does not count toward the total and
    never joins the front."""
    record(trial, metrics=previous.metrics, duplicate_of=previous.number)
    return tell_complete(study, trial, Metrics.from_dict(previous.metrics), budget)
