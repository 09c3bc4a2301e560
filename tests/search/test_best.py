"""Selection from stored results with a known answer, ties, fidelity, and impossible budgets."""

import json

import pandas as pd
import pytest

from autocompress import LayerPlan, Plan
from autocompress.search.best import NothingFeasible, load_run, select
from autocompress.search.budget import Budget
from autocompress.task import UsageError

FULL, CHEAP = "steps=300,data=1,onnx-val", "steps=60,data=1,onnx-val"
ROWS = [  # number, state, accuracy, size, latency, fidelity
    (0, "COMPLETE", 0.99, 800, 2.0, FULL),
    (1, "COMPLETE", 0.98, 200, 1.0, FULL),
    (2, "COMPLETE", 0.98, 200, 0.8, FULL),   # ties 1 on accuracy and size: faster wins
    (3, "COMPLETE", 0.999, 100, 0.1, CHEAP),  # best at everything, but low fidelity: never chosen
    (4, "FAIL", None, None, None, FULL),
    (5, "COMPLETE", 0.90, 50, 0.5, FULL),
]


def _frame():
    frame = pd.DataFrame(ROWS, columns=["number", "state", "accuracy", "size_bytes", "latency_ms", "fidelity"])
    return frame.assign(params=1000, macs=5000)


@pytest.fixture
def run_dir(tmp_path):
    frame = _frame()
    frame["duplicate_of"] = None
    frame.to_csv(tmp_path / "trials.csv", index=False)
    for number in frame["number"]:
        (tmp_path / "artifacts" / str(number)).mkdir(parents=True)
        (tmp_path / "artifacts" / str(number) / "plan.json").write_text(
            Plan(layers={"fc": LayerPlan(bits=8)}).to_json())
    (tmp_path / "run.json").write_text(json.dumps({
        "settings": {"fidelity": FULL},
        "teacher": {"accuracy": 0.99, "size_bytes": 1000, "latency_ms": 2.0, "params": 1, "macs": 1,
                    "fidelity": "steps=0"}}))
    return tmp_path


@pytest.mark.parametrize("budget,prefer,expected", [
    (Budget(), "accurate", 0),
    (Budget(max_size_bytes=500), "accurate", 2),
    (Budget(max_latency_ms=0.9), "accurate", 2),
    (Budget(), "smallest", 5),
    (Budget(min_accuracy=0.95), "smallest", 2),
    (Budget(), "fastest", 5),
    (Budget(min_accuracy=0.95), "fastest", 2),
])
def test_selection_has_a_known_answer(run_dir, budget, prefer, expected):
    run = load_run(run_dir)
    assert run.best(budget=budget, prefer=prefer).number == expected
    assert 3 not in run.candidates["number"].tolist()


def test_best_returns_the_stored_numbers_and_plan(run_dir):
    best = load_run(run_dir).best(max_size_bytes=500)
    assert (best.accuracy, best.size_bytes, best.latency_ms) == (0.98, 200, 0.8)
    assert best.plan == Plan(layers={"fc": LayerPlan(bits=8)})
    assert best.artifact == run_dir / "artifacts" / "2" / "model.onnx"


def test_impossible_budget_names_the_nearest_candidates_per_violated_axis():
    with pytest.raises(NothingFeasible) as err:
        select(_frame()[lambda f: f["state"] == "COMPLETE"][lambda f: f["fidelity"] == FULL],
               Budget(max_size_bytes=40, min_accuracy=0.995))
    assert "no candidate meets the budget" in str(err.value)
    nearest = err.value.nearest
    assert set(nearest["misses"]) == {"size_bytes", "accuracy"}
    closest_on_size = nearest[nearest["misses"] == "size_bytes"].iloc[0]
    assert closest_on_size["number"] == 5 and closest_on_size["by"] == 10


def test_not_a_run_directory(tmp_path):
    with pytest.raises(UsageError, match="is not a run directory"):
        load_run(tmp_path)
