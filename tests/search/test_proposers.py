"""The contract every registered proposer keeps (``autocompress.search.proposers``), run on each
one the way a search runs it: made from settings that turn it on, asked again and again while
real trials of a real Optuna study finish, on a real model's space (the tiny residual CNN)."""

import json
import random

import optuna
import pandas as pd
import pytest

from autocompress.budget import Budget
from autocompress.compressors.pipeline import task_context
from autocompress.metrics import Metrics
from autocompress.plan import Plan
from autocompress.search.proposals import Predictor
from autocompress.search.proposers import REGISTERED, ProposerOptions, next_plan, turns
from autocompress.search.proposers.history import History
from autocompress.search.proposers.startup import startup_plans
from autocompress.search.searcher import tell_complete
from autocompress.search.settings import SearchSettings
from autocompress.search.trial_record import TrialRecord, record
from autocompress.spaces.space import GATE_PREFIX, KERNELS_KNOB, SearchSpace

TEACHER = {"accuracy": 0.9, "size_bytes": 10_000, "latency_ms": 1.0}
ASKS = 12


def _scan(space: SearchSpace) -> pd.DataFrame:
    """A scan of every knob (the gates and the kernels knob are never scanned alone): each value
    off the teacher's saves bytes and costs accuracy alike."""
    rows = []
    for name, dist in space.distributions().items():
        if name.startswith(GATE_PREFIX) or name == KERNELS_KNOB:
            continue
        for value in dist.choices[1:] if hasattr(dist, "choices") else [dist.low if name.startswith("arch/") else dist.high]:
            rows.append({"knob": name, "value": value, "accuracy_delta": -0.01, "size_delta_bytes": -100.0,
                         "latency_delta_ms": -0.01})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def space(tiny_task):
    return SearchSpace(task_context(tiny_task).discovery)


def _every_proposer(space: SearchSpace) -> list:
    settings = SearchSettings(proposals=True, local_search=True, guide=True, seed=0)
    options = ProposerOptions(settings=settings, scan=Predictor.from_scan(_scan(space), TEACHER),
                              startup=startup_plans(space, 3, seed=0))
    return turns(options)


def test_every_registered_module_makes_a_proposer_with_its_own_name(space):
    made = _every_proposer(space)
    assert len(made) == len(REGISTERED)  # with every switch on, each module makes one
    names = [p.name for p in made]
    assert len(set(names)) == len(names) and "startup" in names and all(isinstance(n, str) for n in names)


@pytest.mark.parametrize("index", range(len(REGISTERED)), ids=REGISTERED)
def test_a_proposer_proposes_only_untried_plans_of_the_space_and_never_fails_on_an_empty_history(space, index):
    proposer = _every_proposer(space)[index]
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    seen: dict = {}
    rng = random.Random(0)
    proposed = 0
    for ask in range(ASKS):
        history = History(space=space, seen=dict(seen), running=frozenset(), top=0, budget=Budget(), teacher=TEACHER)
        plan = proposer.propose(history)
        if plan is None:  # nothing this turn (say, local search before any result): the sampler's plan runs
            trial = study.ask(fixed_distributions=space.distributions())
            plan = space.plan_from_params(trial.params)
        else:
            assert isinstance(plan, Plan) and plan not in history.tried(), (proposer.name, ask)
            assert space.plan_from_params(space.params_from_plan(plan)) == plan  # a plan of this space
            proposed += 1
            study.enqueue_trial(space.params_from_plan(plan))
            trial = study.ask(fixed_distributions=space.distributions())
        record(trial, plan=plan, rung=0, source=proposer.name)
        metrics = Metrics(accuracy=0.9 - rng.random() * 0.05, size_bytes=rng.randint(2_000, 9_000),
                          latency_ms=rng.uniform(0.3, 1.0), params=1, macs=1, fidelity="steps=1")
        record(trial, metrics=metrics.to_dict())
        seen.setdefault((plan, 0), TrialRecord.of(tell_complete(study, trial, metrics, Budget())))
    assert proposed > 0, proposer.name  # with results to work from, it proposes


def test_a_turn_with_nothing_falls_to_the_samplers_turn(space):
    startup = startup_plans(space, 1, seed=0)
    options = ProposerOptions(settings=SearchSettings(seed=0), scan=None, startup=startup)
    made = turns(options)  # the sampler's turn, then local search (nothing to mutate yet)
    history = History(space=space, seen={}, running=frozenset(), top=0, budget=Budget(), teacher=TEACHER)
    assert next_plan(made, 2, history) == ("startup", startup[0])  # local search's turn, taken by the start-up plan
    assert next_plan(made, 3, history) == ("sampler", None)  # then the study's sampler
    assert json.dumps(sorted(p.name for p in made)) == '["mutation", "startup"]'
