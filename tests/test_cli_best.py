"""Budgets in, the best model out: a real digits search with a budget, then `best` and `--export`."""

import json

import numpy as np
import optuna
import pandas as pd
import pytest

import autocompress
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory, digits_task):
    out = tmp_path_factory.mktemp("best") / "run"
    proc = run_cli("search", "--task", "digits", "--trials", "5", "--steps", "40", "--max-size", "250KB",
                   "--min-accuracy", "0.5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_budget_steers_the_search_as_constraints_and_marks_feasible_trials(budget_run):
    trials = pd.read_csv(budget_run / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    expected = (done["size_bytes"] <= 250_000) & (done["accuracy"] >= 0.5)
    assert (done["feasible"] == expected).all()
    run = json.loads((budget_run / "run.json").read_text())
    assert run["settings"]["budget"] == {"max_size_bytes": 250000, "max_latency_ms": None, "min_accuracy": 0.5}
    study = optuna.load_study(study_name=run["study"]["name"], storage=f"sqlite:///{budget_run / 'study.db'}")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete and all(any(k.startswith("constraints") for k in t.system_attrs) for t in complete)


def test_best_exports_the_measured_file_and_re_measures_it(budget_run, tmp_path, digits_task):
    export = tmp_path / "shipped"
    proc = run_cli("best", str(budget_run), "--max-size", "250KB", "--export", str(export))
    assert proc.returncode == 0, proc.stderr
    run = autocompress.load_run(budget_run)
    best = run.best(max_size_bytes=250_000)
    assert f"trial {best.number}" in proc.stdout and "test split the search never saw" in proc.stdout
    shipped = (export / "model.onnx").read_bytes()
    assert shipped == best.artifact.read_bytes() and len(shipped) == best.size_bytes
    x = digits_task.val.tensors[0][:32]
    np.testing.assert_array_equal(autocompress.predict(str(export / "model.onnx"), x),
                                  autocompress.predict(str(best.artifact), x))
    report = json.loads((export / "metrics.json").read_text())
    assert report["measured"]["size_bytes"] == report["recorded"]["size_bytes"] == best.size_bytes
    assert report["measured"]["accuracy_val"] == pytest.approx(best.accuracy, abs=1e-9)  # same file, same data
    assert 0 <= report["measured"]["accuracy_test"] <= 1
    card = (export / "MODEL_CARD.md").read_text()
    assert "test split (never seen by the search)" in card and "How the numbers were measured" in card
    assert autocompress.Plan.from_json((export / "plan.json").read_text()) == best.plan


def test_impossible_budget_exits_2_and_shows_the_nearest(budget_run):
    proc = run_cli("best", str(budget_run), "--max-size", "1B", "--min-accuracy", "0.9999")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "no candidate meets the budget" in proc.stderr
    assert "nearest candidates" in proc.stdout and "size_bytes" in proc.stdout


@pytest.mark.parametrize("args,expected", [
    (["best", "{run}", "--max-latency", "5parsecs"], "unknown unit 'parsecs'"),
    (["best", "{run}", "--prefer", "cheapest"], "invalid choice"),
    (["best", "{tmp}"], "is not a run directory"),
    (["search", "--task", "digits", "--max-size", "-5KB", "--out", "{tmp}/x"], "not a positive number"),
    (["search", "--task", "digits", "--min-accuracy", "nan", "--out", "{tmp}/x"], "must be in (0, 1]"),
])
def test_bad_budget_input_is_one_line(budget_run, tmp_path, args, expected):
    proc = run_cli(*[a.format(run=budget_run, tmp=tmp_path) for a in args])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert expected in proc.stderr
