"""Proposals from the sensitivity scan: the additive predictor, its refit, and the searcher that
alternates its plans with the sampler's (real Optuna study; results told as Ray Tune tells them)."""

import json

import optuna
import pandas as pd

from autocompress.compressors.pipeline import task_context
from autocompress.metrics import Metrics
from autocompress.search.proposals import Predictor
from autocompress.search.rungs import Rungs
from autocompress.search.proposers.predictor import PredictorProposer
from autocompress.search.proposers.startup import StartupPlans
from autocompress.search.searcher import StudySearcher
from autocompress.search.trial_record import TrialRecord
from autocompress.spaces.space import KERNELS_KNOB, SearchSpace

TEACHER = {"accuracy": 0.9, "size_bytes": 10_000, "latency_ms": 1.0}


def _scan(space: SearchSpace) -> pd.DataFrame:
    """A scan of every bit-width knob: int8 free, 4 bits 1 point, 2 bits 20 points."""
    rows = [{"knob": "teacher", "value": None, "accuracy_delta": 0.0, "size_delta_bytes": 0.0, "latency_delta_ms": 0.0}]
    for name in space.param_names():
        if name.startswith("bits/") and name != KERNELS_KNOB:  # the kernels knob is never scanned alone
            rows += [{"knob": name, "value": bits, "accuracy_delta": drop, "size_delta_bytes": -saved,
                      "latency_delta_ms": -0.05} for bits, drop, saved in ((8, 0.0, 300), (4, -0.01, 400), (2, -0.2, 450))]
    return pd.DataFrame(rows)


def _tell(searcher: StudySearcher, trial_id: str, accuracy: float) -> None:
    metrics = Metrics(accuracy=accuracy, size_bytes=5_000, latency_ms=0.8, params=1, macs=1, fidelity="steps=1")
    searcher.on_trial_complete(trial_id, {"final": True, "metrics_json": json.dumps(metrics.to_dict())})


def test_the_predictor_adds_the_scanned_deltas_and_its_sweep_never_takes_the_costly_value_first(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery, techniques=("quant",))
    predictor = Predictor.from_scan(_scan(space), TEACHER)
    knobs = [n for n in space.param_names() if n.startswith("bits/") and n != KERNELS_KNOB]
    predicted = predictor.predict({knob: 4 for knob in knobs})
    assert predicted["accuracy"] == round(0.9 - 0.01 * len(knobs), 6)
    assert predicted["size_bytes"] == 10_000 - 400 * len(knobs)
    sweep = predictor.sweep(count=50)
    assert sweep and all(set(params) <= set(knobs) for params in sweep)
    mildest = min(sweep, key=lambda params: -predictor.predict(params)["accuracy"])
    assert 2 not in mildest.values()  # 2 bits cost 20 points: only the most aggressive plans take it


def test_where_the_scan_found_float_kernels_faster_the_predictor_quantizes_on_them_at_no_latency_cost(tiny_task):
    from autocompress.search.sensitivity import EVERY_LAYER_INT8, EVERY_LAYER_INT8_FLOAT

    space = SearchSpace(task_context(tiny_task).discovery, techniques=("quant",))
    table = _scan(space)
    whole = [{"knob": knob, "value": 8, "accuracy_delta": 0.0, "size_delta_bytes": -900, "latency_delta_ms": delta,
              "latency_ms": 1.0 + delta} for knob, delta in ((EVERY_LAYER_INT8, 0.5), (EVERY_LAYER_INT8_FLOAT, 0.0))]
    on_float = Predictor.from_scan(pd.concat([table, pd.DataFrame(whole)], ignore_index=True), TEACHER)
    knobs = [n for n in space.param_names() if n.startswith("bits/") and n != KERNELS_KNOB]
    assert on_float.kernels == "float" and Predictor.from_scan(table, TEACHER).kernels == "int8"
    assert on_float.predict({knob: 4 for knob in knobs})["latency_ms"] == TEACHER["latency_ms"]  # float speed
    sweep = on_float.sweep(count=20)
    assert sweep and all(params[KERNELS_KNOB] == "float" for params in sweep)
    assert space.plan_from_params(sweep[0]).kernels == "float"
    whole[1]["latency_delta_ms"], whole[1]["latency_ms"] = 0.7, 1.7  # slower than int8 kernels: int8 stays
    assert Predictor.from_scan(pd.concat([table, pd.DataFrame(whole)], ignore_index=True), TEACHER).kernels == "int8"
    whole[1]["latency_delta_ms"], whole[1]["latency_ms"] = 0.4, 1.4  # faster, but within the cells' spreads
    noisy = [{**row, "latency_spread_ms": 0.06} for row in whole]
    assert Predictor.from_scan(pd.concat([table, pd.DataFrame(noisy)], ignore_index=True), TEACHER).kernels == "int8"
    assert Predictor.from_scan(pd.concat([table, pd.DataFrame(whole)], ignore_index=True), TEACHER).kernels == "float"


def test_the_refit_scales_each_techniques_predicted_loss_to_what_trials_measured(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery, techniques=("quant",))
    predictor = Predictor.from_scan(_scan(space), TEACHER)
    knobs = [n for n in space.param_names() if n.startswith("bits/") and n != KERNELS_KNOB]
    finished = [({knob: 2}, {"accuracy": 0.9 - 0.1}) for knob in (knobs * 4)[:4]]  # measured: half the predicted loss
    refit = predictor.refit(finished)
    assert abs(refit.factors["quant"] - 0.5) < 1e-6
    assert abs(refit.predict({knobs[0]: 2})["accuracy"] - 0.8) < 1e-6
    assert predictor.refit(finished[:3]) is predictor  # too few trials: unchanged


def test_the_searcher_alternates_predicted_plans_with_the_samplers_and_refits_as_trials_finish(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery, techniques=("quant",))
    predictor = Predictor.from_scan(_scan(space), TEACHER)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    searcher = StudySearcher(study=study, space=space, total=12, seen={}, rungs=Rungs((10,)),
                             on_finished=lambda t: None,
                             turns=[PredictorProposer(predictor), StartupPlans([])])
    first = searcher.suggest("t0")
    candidates = predictor.sweep(count=200)
    expected = space.plan_from_params(candidates[predictor.choose(candidates, front=pd.DataFrame())])
    assert first["plan"] == expected.to_dict()
    plans = [first["plan"]]
    for i in range(1, 10):
        _tell(searcher, f"t{i - 1}", 0.85)
        plans.append(searcher.suggest(f"t{i}")["plan"])
    assert len({json.dumps(p, sort_keys=True) for p in plans}) == len(plans)  # proposals never repeat a plan
    assert searcher.turns[0].predictor.factors  # refit once enough trials finished
    sources = [TrialRecord.of(t).source for t in study.trials]
    assert sources[:4] == ["predictor", "sampler", "predictor", "sampler"]
