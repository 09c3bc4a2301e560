"""Selection from stored results with a known answer, ties, fidelity, and impossible budgets."""

import json

import pandas as pd
import pytest

from autocompress import LayerPlan, Plan
from autocompress.search.best import NothingFeasible, load_run, select
from autocompress.budget import Budget
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


def test_budget_and_limit_keywords_together_are_refused_naming_the_keywords(run_dir):
    """Run.best(budget=..., max_size_bytes=...) used to ignore the keywords silently."""
    with pytest.raises(ValueError, match=r"both budget= and max_size_bytes=, min_accuracy="):
        load_run(run_dir).best(budget=Budget(max_latency_ms=1.0), max_size_bytes=500, min_accuracy=0.9)


@pytest.mark.parametrize("kwargs,expected", [
    ({"max_size_bytes": -5}, "max_size_bytes=-5: give a positive number"),
    ({"max_size_bytes": "50KB"}, "max_size_bytes='50KB': give a positive number"),
    ({"max_latency_ms": float("nan")}, "max_latency_ms=nan"),
    ({"min_accuracy": 97}, "min_accuracy=97: give a fraction in (0, 1]"),
    ({"prefer": "cheapest"}, "prefer='cheapest': choose one of accurate, smallest, fastest"),
])
def test_errors_to_python_callers_name_the_keyword_not_the_flag(run_dir, kwargs, expected):
    with pytest.raises(ValueError) as err:
        load_run(run_dir).best(**kwargs)
    assert expected in str(err.value) and "--" not in str(err.value)


def test_a_screening_or_failed_trial_is_not_a_candidate(run_dir):
    run = load_run(run_dir)
    assert run.candidate(2).chosen == "trial 2, picked by hand"
    for number in (3, 4, 99):
        with pytest.raises(UsageError, match=rf"number={number}: not a complete full-fidelity trial .* "
                                             r"candidates: 0, 1, 2, 5"):
            run.candidate(number)


def test_best_says_how_it_was_chosen(run_dir):
    best = load_run(run_dir).best(max_size_bytes=500, prefer="fastest")
    assert best.chosen == "the fastest of the run's full-fidelity candidates under: size <= 500 B"


@pytest.mark.parametrize("damage,expected", [
    (lambda d: (d / "trials.csv").unlink(), "trials.csv (the table of trials) is missing although run.json is there"),
    (lambda d: (d / "trials.csv").write_text(""), "trials.csv is not a table of trials (EmptyDataError"),
    (lambda d: (d / "trials.csv").write_text("number,state\n0,COMPLETE\n"),
     "is not a table of trials (no column fidelity, accuracy, size_bytes, latency_ms)"),
    (lambda d: (d / "run.json").write_text("[1, 2"), "run.json is damaged (JSONDecodeError"),
    (lambda d: (d / "run.json").write_text('{"teacher": {}}'), "run.json is damaged (no settings)"),
    (lambda d: (d / "run.json").unlink(), "is not a run directory (no run.json)"),
], ids=["no trials.csv", "empty trials.csv", "other table", "bad run.json", "run.json lacks keys", "no run.json"])
def test_a_damaged_run_directory_names_what_is_wrong(run_dir, damage, expected):
    damage(run_dir)
    with pytest.raises(UsageError) as err:
        load_run(run_dir)
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content", [None, "{broken", '{"layers": {"fc": {"bits": 3}}}'])
def test_a_missing_or_bad_plan_is_named(run_dir, content):
    plan = run_dir / "artifacts" / "2" / "plan.json"
    plan.unlink() if content is None else plan.write_text(content)
    with pytest.raises(UsageError, match="plan.json \\(the plan of trial 2\\) is (missing|not a plan)"):
        load_run(run_dir).best(max_size_bytes=500)
