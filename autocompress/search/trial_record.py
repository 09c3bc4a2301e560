"""One trial as the study stores it: the one place that reads and writes a trial's attributes.

Optuna keeps the objectives and the search parameters; everything else a trial carries (its
plan, rung, where it came from, its measurements, why it failed, where and when it ran) is a
user attribute under the name of a ``TrialRecord`` field. ``record`` writes them, ``TrialRecord.of``
reads them back.

Example:
    >>> import optuna
    >>> from autocompress.plan import LayerPlan, Plan
    >>> study = optuna.create_study()
    >>> trial = study.ask()
    >>> record(trial, plan=Plan(layers={"fc": LayerPlan(bits=8)}), rung=0, source="warm start")
    >>> frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
    >>> saved = TrialRecord.of(frozen)
    >>> saved.plan.summary(), saved.source, saved.was_interrupted
    ('int8', 'warm start', True)
    >>> record(trial, colour="red")
    Traceback (most recent call last):
    ...
    ValueError: a trial records no 'colour'; its fields are: plan, rung, source, level, metrics, error, interrupted, duplicate_of, node, started_at, finished_at, duration_s
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autocompress.plan import Plan

if TYPE_CHECKING:
    import optuna

WHERE_AND_WHEN = ("node", "started_at", "finished_at", "duration_s")  # what a worker reports of its run


@dataclass(frozen=True)
class TrialRecord:
    """A finished or running trial's stored attributes (``None``: not recorded)."""

    number: int
    state: str  # Optuna's state name: COMPLETE, FAIL, RUNNING, ...
    params: dict
    plan: Plan | None = None
    rung: int | None = None  # None: a run made before rungs (see ``rung_on``)
    source: str | None = None  # warm start, startup, sampler, predictor, mutation, promotion, re-run, ...
    level: str | None = None  # before rungs: "screen" was rung 0
    metrics: dict | None = None  # ``Metrics.to_dict()`` of a measured trial
    error: str | None = None  # why it failed (a driver that died left none)
    interrupted: bool = False  # stopped by Ctrl-C or the time budget, not by its own fault
    duplicate_of: int | None = None  # the earlier trial of the same plan and rung it was answered from
    node: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None

    @classmethod
    def of(cls, frozen: optuna.trial.FrozenTrial) -> "TrialRecord":
        attrs = frozen.user_attrs
        values = {name: attrs[name] for name in STORED_FIELDS if name in attrs}
        if "plan" in values:
            values["plan"] = Plan.from_dict(values["plan"])
        return cls(number=frozen.number, state=frozen.state.name, params=dict(frozen.params), **values)

    def rung_on(self, top: int) -> int:
        """The rung it ran on, ``top`` being the search's top rung (runs made before rungs:
        "screen" was rung 0, and a full-fidelity trial is on the top rung)."""
        if self.rung is not None:
            return int(self.rung)
        return 0 if self.level == "screen" else top

    @property
    def was_interrupted(self) -> bool:
        """Stopped by Ctrl-C, --time-budget or the driver's death, not by its own fault (a trial's
        own failure always stores its ``error``; a driver that died left it without one)."""
        return self.state == "FAIL" and (self.interrupted or self.error is None)

    @property
    def counts_toward_total(self) -> bool:
        """Finished trials count, except those stopped by an interruption (they are re-run) and
        duplicates (answered from the earlier trial of the same plan)."""
        return self.state in ("COMPLETE", "FAIL", "PRUNED") and not self.was_interrupted \
            and self.duplicate_of is None


STORED_FIELDS = tuple(f.name for f in dataclasses.fields(TrialRecord) if f.name not in ("number", "state", "params"))


def record(trial: optuna.Trial, **fields: Any) -> None:
    """Store ``fields`` (``TrialRecord``'s names) on a running trial; a plan is stored as its dict."""
    for name, value in fields.items():
        if name not in STORED_FIELDS:
            raise ValueError(f"a trial records no {name!r}; its fields are: {', '.join(STORED_FIELDS)}")
        trial.set_user_attr(name, value.to_dict() if isinstance(value, Plan) else value)


def seen_plans(study: optuna.Study, top: int) -> dict[tuple[Plan, int], TrialRecord]:
    """Completed plans by (plan, rung), first trial first, for answering duplicates and promoting
    (``top``: the search's top rung). Duplicates are left out: they are answers, not results."""
    import optuna

    seen = {}
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        saved = TrialRecord.of(frozen)
        if saved.plan is not None and saved.duplicate_of is None:
            seen.setdefault((saved.plan, saved.rung_on(top)), saved)
    return seen


def requeue_interrupted(study: optuna.Study, top: int) -> list[tuple[Plan, int]]:
    """Before a resumed search: trials left RUNNING by a driver that died are stored as failed
    (interrupted); returns the (plan, rung) of every interrupted trial whose plan has not run on
    that rung again since, so that the resumed search runs them (once each)."""
    import optuna

    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(frozen.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    records = [TrialRecord.of(frozen) for frozen in study.get_trials(deepcopy=False)]
    ran_again = {(r.plan, r.rung_on(top)) for r in records if r.counts_toward_total and r.plan is not None}
    again = {}
    for r in records:
        if r.was_interrupted and r.plan is not None and (r.plan, r.rung_on(top)) not in ran_again:
            again.setdefault((r.plan, r.rung_on(top)), None)
    return list(again)
