"""Local search: mutations of plans on the measured front (real Optuna study; results told as
Ray Tune tells them)."""

import json
import random

import optuna
import pandas as pd

from autocompress.compressors.pipeline import task_context
from autocompress.metrics import Metrics
from autocompress.plan import Plan
from autocompress.search.mutations import guided_mutation, mutation, parents, step_value
from autocompress.search.proposals import Predictor
from autocompress.search.rungs import Rungs
from autocompress.search.first_trials import warm_start_plans
from autocompress.search.proposers.local_search import LocalSearch
from autocompress.search.proposers.startup import StartupPlans, startup_plans
from autocompress.search.searcher import StudySearcher
from autocompress.search.trial_record import TrialRecord
from autocompress.spaces.space import GATE_PREFIX, KERNELS_KNOB, SearchSpace, params_of_plan

TEACHER = {"accuracy": 0.9, "size_bytes": 10_000, "latency_ms": 1.0}


def _tell(searcher: StudySearcher, trial_id: str, accuracy: float) -> None:
    metrics = Metrics(accuracy=accuracy, size_bytes=5_000, latency_ms=0.8, params=1, macs=1, fidelity="steps=1")
    searcher.on_trial_complete(trial_id, {"final": True, "metrics_json": json.dumps(metrics.to_dict())})


def _steps_apart(space: SearchSpace, a: Plan, b: Plan) -> dict[str, tuple]:
    """The knobs two plans set differently, with both values; a layer's knobs only where both
    plans keep its block (a block dropped takes its layers' knobs with it)."""
    dists = space.distributions()
    pa, pb = params_of_plan(a, dists), params_of_plan(b, dists)
    dropped = tuple(f"{block}." for plan in (a, b) for stage, blocks in space.discovery.stages.items()
                    for block in blocks[plan.blocks_kept(stage, len(blocks)):])
    return {k: (pa[k], pb[k]) for k in dists if not k.startswith(GATE_PREFIX) and pa[k] != pb[k]
            and not k.partition("/")[2].startswith(dropped)}


def _local_searcher(space: SearchSpace, startup: list | None = None) -> StudySearcher:
    """A searcher with local search over a fresh in-memory study (random sampler, seed 0)."""
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    return StudySearcher(study=study, space=space, total=8, seen={}, rungs=Rungs((10,)),
                         on_finished=lambda t: None, teacher=TEACHER,
                         turns=[StartupPlans(startup or []), LocalSearch(random.Random(0))])


def test_a_step_moves_one_choice_up_or_down_and_turns_back_at_the_ends():
    bits = optuna.distributions.CategoricalDistribution((32, 8, 4, 2))
    depth = optuna.distributions.IntDistribution(0, 3)
    rng = random.Random(1)
    assert {step_value(bits, 8, rng) for _ in range(40)} == {32, 4}
    assert {step_value(bits, 2, rng) for _ in range(10)} == {4}
    assert {step_value(depth, 3, rng) for _ in range(10)} == {2}


def test_only_the_fronts_points_near_the_teacher_are_mutated_the_knee_most():
    frame = pd.DataFrame({"accuracy": [0.89, 0.86, 0.3, 0.88, 0.885], "size_bytes": [9000, 5000, 10, 9500, 4000],
                          "latency_ms": [0.9, 0.9, 0.9, 0.9, 0.5]})
    weights = parents(frame, TEACHER)
    assert sorted(weights.index) == [0, 4]  # 0.3: far below; 1 and 3: dominated
    assert weights[4] > weights[0]  # half the latency at half a point less: it adds more alone
    far = pd.DataFrame({"accuracy": [0.3, 0.2], "size_bytes": [10, 5], "latency_ms": [1.0, 1.0]})
    assert parents(far, TEACHER).index.tolist() == [0]  # none near: the most accurate


def test_a_mutation_is_one_or_two_steps_from_its_parent_and_never_a_plan_tried(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery)
    parent = warm_start_plans(space)[1]  # 50% pruned + int8
    params = space.params_from_plan(parent)
    rng = random.Random(0)
    tried = {parent}
    for _ in range(20):
        child = mutation([(params, parent)], space=space, tried=tried.__contains__, rng=rng)
        apart = _steps_apart(space, parent, child)
        assert 1 <= len(apart) <= 2 and child not in tried
        tried.add(child)
    assert mutation([(params, parent)], space=space, tried=lambda plan: True, rng=rng) is None


def test_the_searcher_alternates_the_samplers_plans_with_mutations_of_the_front(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery)
    searcher = _local_searcher(space)
    study = searcher.study
    plans = [searcher.suggest("t0")["plan"]]
    _tell(searcher, "t0", 0.89)  # the only result: the front, near the teacher
    for i in range(1, 6):
        plans.append(searcher.suggest(f"t{i}")["plan"])
        _tell(searcher, f"t{i}", 0.1)  # far below the teacher: never a parent
    sources = [TrialRecord.of(t).source for t in study.trials]
    assert sources == ["sampler", "mutation", "sampler", "mutation", "sampler", "mutation"]
    first = Plan.from_dict(plans[0])
    for plan, source in zip(plans, sources):
        if source == "mutation":  # each a neighbour of trial 0, the one parent
            assert 1 <= len(_steps_apart(space, first, Plan.from_dict(plan))) <= 2
    assert len({json.dumps(p, sort_keys=True) for p in plans}) == len(plans)


def test_start_up_plans_take_the_samplers_turns_and_fill_in_until_the_front_has_a_point(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery)
    startup = startup_plans(space, 3, seed=0)
    searcher = _local_searcher(space, startup)
    study = searcher.study
    plans = [Plan.from_dict(searcher.suggest(f"t{i}")["plan"]) for i in range(2)]  # two workers: no result yet
    _tell(searcher, "t0", 0.89)  # the front's first point
    _tell(searcher, "t1", 0.1)
    for i in range(2, 6):
        plans.append(Plan.from_dict(searcher.suggest(f"t{i}")["plan"]))
        _tell(searcher, f"t{i}", 0.1)
    sources = [TrialRecord.of(t).source for t in study.trials]
    assert sources == ["startup", "startup", "startup", "mutation", "sampler", "mutation"]
    assert plans[:3] == startup  # in order; the mutation turn before any result took the next one


def test_a_guided_mutation_runs_the_neighbour_the_scan_expects_to_extend_the_front(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery)
    parent = warm_start_plans(space)[0]  # int8 everywhere
    params = space.params_from_plan(parent)
    bits = [name for name in space.distributions() if name.startswith("bits/") and name != KERNELS_KNOB]
    free = bits[0]  # the one layer whose 4 bits the scan saw cost nothing and save much
    rows = [{"knob": name, "value": value, "accuracy_delta": 0.0 if name == free or value == 8 else -0.3,
             "size_delta_bytes": {8: -1000, 4: -4000, 2: -4500}[value], "latency_delta_ms": -0.1}
            for name in bits for value in (8, 4, 2)]
    predictor = Predictor.from_scan(pd.DataFrame(rows), TEACHER)
    measured = {"accuracy": 0.89, "size_bytes": 6_000, "latency_ms": 0.8}
    for seed in range(5):
        child = guided_mutation([(params, parent)], measured=[measured], space=space, tried={parent}.__contains__,
                                rng=random.Random(seed), predictor=predictor, count=64)
        assert child.layer(free.partition("/")[2]).bits == 4  # among 64 neighbours, one takes that step
    unguided = {mutation([(params, parent)], space=space, tried={parent}.__contains__, rng=random.Random(seed))
                for seed in range(5)}
    assert any(plan.layer(free.partition("/")[2]).bits != 4 for plan in unguided)  # at random it rarely does
