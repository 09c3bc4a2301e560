"""Issue #13 item 1: structure first (over-budget plans are not fine-tuned), duplicates not
counted and never twice on the front, the ``steps`` column. Real torch, ONNX Runtime, Optuna, Ray."""

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

from autocompress import Budget, DistillConfig, LayerPlan, Plan, SearchSettings, search
from autocompress.evaluators.evaluate import ARTIFACT_NAME, evaluate
from autocompress.metrics import Metrics
from autocompress.search import rundir
from autocompress.search.settings import Execution
from autocompress.search.pareto import pareto_front
from autocompress.search.proposals import Predictor
from autocompress.search.rungs import Rungs
from autocompress.search.first_trials import FITTED
from autocompress.search.searcher import StudySearcher, queue_first
from autocompress.search.trial_record import TrialRecord
from autocompress.spaces.space import SearchSpace
from autocompress.compressors.pipeline import task_context

import signal as _signal

SIGINT_AT_START = _signal.getsignal(_signal.SIGINT)  # this process's Ctrl-C before any search ran


def test_a_plan_over_the_size_limit_is_measured_but_never_fine_tuned(tiny_task, tmp_path):
    steps_heard = []
    plan = Plan(layers={"fc": LayerPlan(bits=8)})
    metrics = evaluate(tiny_task, plan, out_dir=tmp_path / "over", config=DistillConfig(steps=25),
                       on_step=steps_heard.append, limits=Budget(max_size_bytes=100))
    assert steps_heard == [] and metrics.steps == 0
    assert metrics.fidelity.startswith("steps=0,") and "not fine-tuned: over the budget's size" in metrics.notes
    assert metrics.size_bytes == (tmp_path / "over" / ARTIFACT_NAME).stat().st_size > 100  # measured all the same
    assert metrics.latency_ms > 0


def test_a_plan_within_the_limits_is_fine_tuned_and_says_how_long(tiny_task, tmp_path):
    steps_heard = []
    roomy = Budget(max_size_bytes=10**9, max_latency_ms=1000.0, min_accuracy=0.99)  # accuracy unknown before
    metrics = evaluate(tiny_task, Plan(layers={"fc": LayerPlan(bits=8)}), out_dir=tmp_path / "in",
                       config=DistillConfig(steps=7), on_step=steps_heard.append, limits=roomy)
    assert steps_heard == list(range(1, 8)) and metrics.steps == 7
    assert metrics.fidelity.startswith("steps=7,") and "not fine-tuned" not in metrics.notes


def test_the_applied_plan_ignores_knobs_of_dropped_blocks(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery)
    shallow = {"use/student": 1, "use/quant": 1, "arch/depth/block": 0, "bits/fc": 8}
    a = space.plan_from_params({**shallow, "bits/block.0": 4})
    b = space.plan_from_params({**shallow, "bits/block.0": 2})
    assert a == b and a.layer("block.0").bits is None and a.layer("fc").bits == 8


def _tell(searcher: StudySearcher, trial_id: str, accuracy: float) -> None:
    metrics = Metrics(accuracy=accuracy, size_bytes=100, latency_ms=1.0, params=1, macs=1, fidelity="steps=1")
    searcher.on_trial_complete(trial_id, {"final": True, "metrics_json": json.dumps(metrics.to_dict())})


def test_a_duplicate_plan_is_answered_not_counted_and_not_on_the_front(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    finished = []
    searcher = StudySearcher(study=study, space=space, total=2, seen={}, rungs=Rungs((10,)), on_finished=finished.append)
    plan = Plan(layers={"fc": LayerPlan(bits=8)})
    searcher.queue += [(plan, 0), (plan, 0), (Plan(layers={"stem": LayerPlan(bits=4)}), 0)]
    assert Plan.from_dict(searcher.suggest("a")["plan"]) == plan
    _tell(searcher, "a", 0.5)
    second = searcher.suggest("b")  # the repeat is answered at once; the next new plan is returned
    assert Plan.from_dict(second["plan"]) == Plan(layers={"stem": LayerPlan(bits=4)})
    assert searcher.finished == 1 and len(searcher.running) == 1  # the duplicate did not count
    duplicate = finished[-1]
    assert TrialRecord.of(duplicate).duplicate_of == 0 and not TrialRecord.of(duplicate).counts_toward_total
    _tell(searcher, "b", 0.4)
    assert searcher.finished == 2 and searcher.suggest("c") == StudySearcher.FINISHED
    trials = rundir.trials_frame(study)
    front = pareto_front(trials)
    assert 1 not in front["number"].tolist() and front["number"].is_unique
    # a resumed search counts the same way
    assert StudySearcher(study=study, space=space, total=2, seen={}, rungs=Rungs((10,)), on_finished=print).finished == 2


@pytest.mark.parametrize("scanned", [False, True])
def test_a_warm_start_over_the_size_budget_runs_again_pruned_until_it_fits(tiny_task, scanned):
    space = SearchSpace(task_context(tiny_task).discovery)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    scan = pd.DataFrame({"knob": ["prune/stem"], "value": [0.125], "accuracy_delta": [-0.01],
                         "size_delta_bytes": [-40], "latency_delta_ms": [0.0]})
    guide = Predictor.from_scan(scan, {"accuracy": 0.5, "size_bytes": 300, "latency_ms": 1.0}) if scanned else None
    searcher = StudySearcher(study=study, space=space, total=10, seen={}, rungs=Rungs((10,)),
                             fit_predictor=guide,
                             on_finished=lambda t: None, budget=Budget(max_size_bytes=150))
    int4 = Plan(layers={"stem": LayerPlan(bits=4), "fc": LayerPlan(bits=8)})
    searcher.queue.append((int4, 0))
    searcher.sources[(int4, 0)] = "warm start"
    sizes = iter([200, 170, 140])  # over, over, within the budget
    plans = []
    for trial_id in "abc":
        plans.append(Plan.from_dict(searcher.suggest(trial_id)["plan"]))
        metrics = Metrics(accuracy=0.5, size_bytes=next(sizes), latency_ms=1.0, params=1, macs=1, fidelity="steps=1")
        searcher.on_trial_complete(trial_id, {"final": True, "metrics_json": json.dumps(metrics.to_dict())})
    groups = [g.name for g in space.discovery.groups]
    assert groups and [[p.layer(g).prune for g in groups] for p in plans] == [[0.0] * len(groups), [0.125] * len(groups),
                                                                            [0.25] * len(groups)]
    assert all(p.layer("stem").bits == 4 and p.layer("fc").bits == 8 for p in plans)  # the recipe, pruned
    assert [TrialRecord.of(t).source for t in study.trials] == ["warm start", FITTED, FITTED]
    searcher.suggest("d")  # within the budget: the sampler's turn, not a fourth fitting
    assert TrialRecord.of(study.trials[-1]).source != FITTED


def test_a_fitted_try_prunes_where_the_scan_says_it_costs_least_until_the_excess_is_covered(tiny_task):
    """With the scan's cells, a recipe over the size budget is pruned a step at a time, each
    step's scanned bytes scaled to the bits the recipe stores the group's layers at, until the
    predicted savings cover the 20 bytes over; a cheaper-looking lower bit-width is not taken
    (they do not add up), nor a step the scan did not measure. The fitted try is ranked by its
    predicted accuracy: the try before's less the steps' predicted losses."""
    space = SearchSpace(task_context(tiny_task).discovery)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    scan = pd.DataFrame({"knob": ["prune/stem", "prune/stem", "bits/fc", "bits/fc"], "value": [0.125, 0.25, 4, 2],
                         "accuracy_delta": [-0.05, -0.1, 0.0, -0.001], "size_delta_bytes": [-40, -80, -70, -80],
                         "latency_delta_ms": [0.0] * 4})
    guide = Predictor.from_scan(scan, {"accuracy": 0.5, "size_bytes": 300, "latency_ms": 1.0})
    searcher = StudySearcher(study=study, space=space, total=10, seen={}, rungs=Rungs((10,)), fit_predictor=guide,
                             on_finished=lambda t: None, budget=Budget(max_size_bytes=180))
    recipe = Plan(layers={"stem": LayerPlan(bits=8), "block.0": LayerPlan(bits=4), "fc": LayerPlan(bits=4)})
    searcher.queue.append((recipe, 0))
    searcher.sources[(recipe, 0)] = "warm start"
    searcher.suggest("a")
    metrics = Metrics(accuracy=0.5, size_bytes=200, latency_ms=1.0, params=1, macs=1, fidelity="steps=1")
    searcher.on_trial_complete("a", {"final": True, "metrics_json": json.dumps(metrics.to_dict())})
    fitted = Plan.from_dict(searcher.suggest("b")["plan"])
    assert fitted.layer("stem").prune == 0.25  # 2 x 7.5 bytes (40 at 8 and 4 bits: 3/16), then no cell for 0.375
    assert [fitted.layer(n).bits for n in ("stem", "block.0", "fc")] == [8, 4, 4]
    assert TrialRecord.of(study.trials[-1]).source == FITTED
    assert searcher.fitting[fitted] == (200, 1, pytest.approx(0.5 - 0.1))


def test_fitted_tries_wait_for_the_untried_warm_starts_and_a_promotion_out_of_reach_for_both(tiny_task):
    """Under a size budget: a warm start over it is fitted after the warm starts not yet tried, the
    one closer to the teacher first; a plan promoted only because none of its rung is within reach
    of the teacher goes last; one within reach goes first."""
    space = SearchSpace(task_context(tiny_task).discovery)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    searcher = StudySearcher(study=study, space=space, total=10, seen={}, rungs=Rungs((10, 30), eta=2),
                             on_finished=lambda t: None, budget=Budget(max_size_bytes=150),
                             teacher={"accuracy": 0.9, "size_bytes": 1000, "latency_ms": 1.0})  # reach: 0.81
    low, int4, int8, wide = (Plan(layers={"stem": LayerPlan(bits=s), "fc": LayerPlan(bits=f)})
                             for s, f in ((2, 4), (4, 8), (8, 8), (2, 8)))
    searcher.queue += [(low, 0), (int4, 0), (int8, 0), (wide, 0)]
    searcher.sources.update({item: "warm start" for item in searcher.queue})
    outcomes = {low: (0.3, 200), int4: (0.7, 200), int8: (0.5, 100), wide: (0.85, 100)}  # over, over, far, near
    ran = []
    for trial_id in "abcdefgh":
        searcher.suggest(trial_id)
        _, plan, rung = searcher.running[trial_id]
        ran.append((plan, rung))
        accuracy, size = outcomes.get(plan, (0.5, 100))
        metrics = Metrics(accuracy=accuracy, size_bytes=size, latency_ms=1.0, params=1, macs=1, fidelity="steps=1")
        searcher.on_trial_complete(trial_id, {"final": True, "metrics_json": json.dumps(metrics.to_dict())})
    assert ran[:5] == [(low, 0), (int4, 0), (int8, 0), (wide, 0), (wide, 1)]  # wide: within reach, promoted at once
    fitted = [plan for plan, _ in ran[5:7]]  # then the recipes fitted to the budget, int4 (closer) first
    assert [(p.layer("stem").bits, p.layer("fc").bits) for p in fitted] == [(4, 8), (2, 4)]
    assert fitted[0] != int4 and fitted[1] != low and [rung for _, rung in ran[5:7]] == [0, 0]
    assert ran[7] == (int8, 1)  # int8 promoted only because no other plan of rung 0 was within reach: last
    sources = [TrialRecord.of(t).source for t in study.trials]
    assert sources == ["warm start"] * 4 + ["promotion", FITTED, FITTED, "promotion"]


def test_a_space_with_no_new_plan_stops_the_search_instead_of_spinning(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery, techniques=("quant",))
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    searcher = StudySearcher(study=study, space=space, total=5, seen={}, rungs=Rungs((10,)), on_finished=lambda t: None)
    plan = Plan(layers={"fc": LayerPlan(bits=8)})
    searcher.queue += [(plan, 0)] * 200
    searcher.suggest("a")
    _tell(searcher, "a", 0.5)
    assert searcher.suggest("b") == StudySearcher.FINISHED and searcher.exhausted and searcher.finished == 1


@pytest.fixture(scope="module")
def tight_search(tmp_path_factory):
    """A real search (Ray) of the tiny task's student space with a size limit only small
    students meet; a seeded random sampler proposes repeats in this 6-plan space."""
    from tests.fixtures.user_tasks import tiny

    out = tmp_path_factory.mktemp("tight") / "run"
    settings = SearchSettings(sampler="random", seed=0, techniques=("student",), warm_start=False, sensitivity=False,
                              local_search=False,  # mutations are never repeats: the sampler's are tested here
                              distill=DistillConfig(steps=10), budget=Budget(max_size_bytes=2500))
    # one trial at a time: a repeat proposed while its first is still running is no duplicate yet,
    # so with two workers how many repeats are answered depends on the machine's load
    result = search(tiny(), settings=settings, trials=5, out=out, task_spec="tests.fixtures.user_tasks:tiny",
                    execution=Execution(workers=1), progress=lambda line: None)
    return result, pd.read_csv(out / rundir.TRIALS_CSV)


@pytest.mark.slow
def test_over_budget_trials_show_zero_steps_and_the_others_were_fine_tuned(tight_search):
    _, trials = tight_search
    over = trials[trials["size_bytes"] > 2500]
    assert len(over) and (over["steps"] == 0).all() and not over["feasible"].any()
    assert (trials[trials["size_bytes"] <= 2500]["steps"] == 10).all()


def test_duplicates_in_a_real_search_neither_count_nor_join_the_front(tight_search):
    result, trials = tight_search
    duplicates = trials[trials["duplicate_of"].notna()]
    assert len(duplicates) > 0  # this seed proposes repeats (the test would be vacuous otherwise)
    assert (trials["duplicate_of"].isna()).sum() == 5  # five counted trials, as asked
    front = result.pareto
    assert front["number"].is_unique and not set(front["number"]) & set(duplicates["number"])
    for number in front["number"]:
        assert (Path(result.run_dir) / rundir.ARTIFACTS / str(int(number)) / ARTIFACT_NAME).is_file()


@pytest.mark.slow
def test_a_promoted_plan_continues_the_fine_tuning_of_the_rung_below(tmp_path):
    """With screening, each trial keeps its fine-tuning state; a plan promoted to full fidelity
    continues from its screened checkpoint (its first steps are the screened ones) instead of
    starting again."""
    import torch

    from autocompress.evaluators.evaluate import CHECKPOINT_NAME
    from tests.fixtures.user_tasks import tiny

    out = tmp_path / "run"
    settings = SearchSettings(sampler="random", seed=0, techniques=("quant",), warm_start=False, min_steps=4, eta=2,
                              sensitivity=False,
                              distill=DistillConfig(steps=9))
    # one worker: results arrive one by one, so after two distinct plans on rung 0 one goes up
    search(tiny(), settings=settings, trials=4, out=out, task_spec="tests.fixtures.user_tasks:tiny",
           execution=Execution(workers=1), progress=lambda line: None)
    trials = pd.read_csv(out / rundir.TRIALS_CSV)
    trials = trials[trials["duplicate_of"].isna() & (trials["state"] == "COMPLETE")]
    plans = {int(n): json.loads((out / rundir.ARTIFACTS / str(int(n)) / "plan.json").read_text())
             for n in trials["number"]}
    rungs = dict(zip(trials["number"].astype(int), trials["rung"]))
    pairs = [(s, f) for s in plans for f in plans
             if rungs[s] == 0 and rungs[f] == 1 and plans[s] == plans[f]]
    assert pairs, "no screened plan was promoted (the test would prove nothing)"

    def losses(number):
        state = torch.load(out / rundir.ARTIFACTS / str(number) / CHECKPOINT_NAME, weights_only=True)
        return state["losses"].tolist()

    for screened, promoted in pairs:
        assert len(losses(screened)) == 4 and len(losses(promoted)) == 9
        assert losses(promoted)[:4] == losses(screened)
        assert int(trials.set_index("number").loc[promoted, "steps"]) == 9


def test_ctrl_c_raises_again_after_an_in_process_search(tight_search):
    """Ray Tune installs its own SIGINT handler during a search; afterwards the caller's Ctrl-C
    must interrupt as before (a Python user's session, and the tests after these searches).
    Started with Ctrl-C ignored (nohup, a background job), "as before" is: still ignored."""
    import os
    import signal
    import time

    if SIGINT_AT_START is signal.SIG_IGN:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        return
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)


def test_a_plan_far_below_the_teacher_is_not_promoted_while_a_closer_one_is(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    teacher = {"accuracy": 1.0, "size_bytes": 1000, "latency_ms": 1.0}
    searcher = StudySearcher(study=study, space=space, total=20, seen={}, rungs=Rungs((10, 30), eta=3),
                             on_finished=lambda t: None, teacher=teacher)
    plans = [Plan(layers={"fc": LayerPlan(bits=b)}) for b in (8, 4, 2)] + \
        [Plan(layers={"stem": LayerPlan(bits=b)}) for b in (8, 4, 2)]
    results = [(0.40, 10), (0.45, 20), (0.95, 100), (0.93, 200), (0.92, 300), (0.91, 400)]  # (accuracy, bytes)
    searcher.queue += [(plan, 0) for plan in plans]
    assert [Plan.from_dict(searcher.suggest(str(i))["plan"]) for i in range(6)] == plans
    for i, (accuracy, size) in enumerate(results):
        metrics = Metrics(accuracy=accuracy, size_bytes=size, latency_ms=1.0, params=1, macs=1, fidelity="steps=10")
        searcher.on_trial_complete(str(i), {"final": True, "metrics_json": json.dumps(metrics.to_dict())})
    promoted = {plan for plan, rung in searcher.scheduler.promoted if rung == 1}
    assert len(promoted) == 2 and promoted <= set(plans[2:])  # the two small plans are 55-60% down: they stay


@pytest.mark.parametrize("budget", [Budget(max_size_bytes=150), Budget(), Budget(max_latency_ms=5.0)])
def test_under_a_size_budget_the_student_recipe_waits_for_the_fitted_tries(tiny_task, budget):
    """The student warm start starts farthest from the teacher: under a size budget the recipes that
    keep the teacher's weights, and their tries fitted to the budget, run first; with no size limit
    (the student may be the one plan fast enough) the warm starts run in the order they came."""
    from autocompress.search.first_trials import WARM_START, warm_start_plans

    space = SearchSpace(task_context(tiny_task).discovery)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    searcher = StudySearcher(study=study, space=space, total=10, seen={}, rungs=Rungs((10,)),
                             on_finished=lambda t: None, budget=budget)
    recipes = warm_start_plans(space)
    student = space.applied(next(plan for plan in recipes if plan.width != 1.0))
    int4 = space.applied(recipes[-1])
    queue_first(searcher, [(student, 0, WARM_START), (int4, 0, WARM_START)])
    ran = []
    for trial_id in "abc":
        searcher.suggest(trial_id)
        _, plan, _ = searcher.running[trial_id]
        ran.append(plan)
        size = 200 if plan == int4 else 100  # int4 is over the limit of 150 bytes
        metrics = Metrics(accuracy=0.8, size_bytes=size, latency_ms=1.0, params=1, macs=1, fidelity="steps=1")
        searcher.on_trial_complete(trial_id, {"final": True, "metrics_json": json.dumps(metrics.to_dict())})
    sources = [TrialRecord.of(t).source for t in study.trials]
    if budget.max_size_bytes:
        assert ran[0] == int4 and ran[2] == student and sources == [WARM_START, FITTED, WARM_START]
        assert ran[1].layer(space.discovery.groups[0].name).prune > 0  # int4, pruned to fit
    else:
        assert ran[:2] == [student, int4] and sources[:2] == [WARM_START, WARM_START]
