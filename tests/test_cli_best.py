"""Budgets in, the best model out: a real digits search with a budget, then `best` and `--export`."""

import json
import shutil

import numpy as np
import optuna
import pandas as pd
import pytest

import autocompress
from autocompress.budget import Budget
from autocompress.search.best import first_met
from tests.conftest import one_clear_line, run_cli, search_here


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory, digits_task):
    out = tmp_path_factory.mktemp("best") / "run"
    proc = search_here("search", "--task", "digits", "--trials", "5", "--steps", "40", "--max-size", "250KB",
                       "--min-accuracy", "0.5", "--no-sensitivity", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (out.parent / "search.out").write_text(proc.stdout)
    return out


@pytest.mark.slow
def test_the_search_says_once_which_trial_met_the_budget_first_and_when(budget_run):
    said = [line for line in (budget_run.parent / "search.out").read_text().splitlines() if "first met" in line]
    run = autocompress.load_run(budget_run)
    first = first_met(run.candidates, Budget(max_size_bytes=250_000, min_accuracy=0.5))
    assert first is not None and len(said) == 1
    assert said[0].startswith(f"budget (size <= 250,000 B, accuracy >= 0.5) first met by trial {int(first['number'])}, ")
    lines = (budget_run.parent / "search.out").read_text().splitlines()
    announced = next(i for i, line in enumerate(lines) if "first met" in line)
    assert f"trial {int(first['number'])} " in lines[announced - 1]  # right after that trial's own line


@pytest.mark.slow
def test_budget_steers_the_search_as_constraints_and_marks_feasible_trials(budget_run):
    trials = pd.read_csv(budget_run / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    expected = (done["size_bytes"] <= 250_000) & (done["accuracy"] >= 0.5)
    assert (done["feasible"] == expected).all()
    run = json.loads((budget_run / "run.json").read_text())
    assert run["settings"]["budget"] == {"max_size_bytes": 250000, "max_latency_ms": None, "min_accuracy": 0.5,
                                         "latency_profile": None}
    study = optuna.load_study(study_name=run["study"]["name"], storage=f"sqlite:///{budget_run / 'study.db'}")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete and all(any(k.startswith("constraints") for k in t.system_attrs) for t in complete)


@pytest.mark.slow
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


@pytest.mark.slow
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


# --- `best --export` checks what it ships: a battery of damaged runs and refused targets -------------

def _damaged_copy(budget_run, tmp_path):
    """A copy of the run (to damage) and the artifact folder of the trial `best --max-size 250KB` ships."""
    copy = tmp_path / "run"
    shutil.copytree(budget_run, copy)
    artifact = autocompress.load_run(budget_run).best(max_size_bytes=250_000).artifact
    return copy, copy / artifact.relative_to(budget_run).parent


def _garble_same_size(path):
    path.write_bytes(b"\x00" * path.stat().st_size)


def _change_one_weight(path):
    """The same file with one float weight changed: still a valid model of the same size."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for init in model.graph.initializer:
        weights = numpy_helper.to_array(init)
        if weights.dtype == np.float32 and weights.size > 1:
            changed = weights.copy()
            changed.flat[0] += 1.0
            init.CopyFrom(numpy_helper.from_array(changed, init.name))
            break
    before = path.stat().st_size
    onnx.save(model, str(path))
    assert path.stat().st_size == before


def _plan_naming(path, layer: str) -> None:
    plan = json.loads(path.read_text())
    plan["layers"][layer] = {"prune": 0.0, "bits": 8, "rank": None}
    path.write_text(json.dumps(plan))


DAMAGES = {  # what is done to the copy -> what the one-line error must say
    "model.onnx deleted": (lambda run, art: (art / "model.onnx").unlink(), "model.onnx is missing"),
    "model.onnx one byte longer": (lambda run, art: (art / "model.onnx").open("ab").write(b"\x00"),
                                   "B were recorded: the file changed after it was measured"),
    "model.onnx garbage of the same size": (lambda run, art: _garble_same_size(art / "model.onnx"),
                                            "is not the file that was measured"),
    "model.onnx with one weight changed": (lambda run, art: _change_one_weight(art / "model.onnx"),
                                           "is not the file that was measured"),
    "plan.json deleted": (lambda run, art: (art / "plan.json").unlink(), "plan.json (the plan of trial"),
    "plan.json garbage": (lambda run, art: (art / "plan.json").write_text("{not json"), "is not a plan"),
    "plan.json of another kind": (lambda run, art: (art / "plan.json").write_text('{"colour": 1}'), "is not a plan"),
    "plan.json naming a layer the model lacks": (lambda run, art: _plan_naming(art / "plan.json", "no_such_layer"),
                                                 "names no_such_layer, which the run's model does not have"),
    "trials.csv deleted": (lambda run, art: (run / "trials.csv").unlink(), "trials.csv (the table of trials) is missing"),
    "trials.csv empty": (lambda run, art: (run / "trials.csv").write_text(""), "trials.csv is not a table of trials"),
    "trials.csv of another table": (lambda run, art: (run / "trials.csv").write_text("a,b\n1,2\n"),
                                    "trials.csv is not a table of trials (no column number"),
    "run.json garbage": (lambda run, art: (run / "run.json").write_text("{"), "run.json is damaged (JSONDecodeError"),
    "run.json without the teacher": (lambda run, art: (run / "run.json").write_text('{"settings": {}}'),
                                      "run.json is damaged (no teacher)"),
    "run.json deleted": (lambda run, art: (run / "run.json").unlink(), "is not a run directory (no run.json)"),
    "teacher deleted": (lambda run, art: (run / "teacher" / "model.onnx").unlink(),
                        "(the teacher, measured again for the comparison) is missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_export_of_a_damaged_run_is_one_line_and_leaves_no_folder(budget_run, tmp_path, damage, cli):
    run, artifact = _damaged_copy(budget_run, tmp_path)
    harm, expected = DAMAGES[damage]
    harm(run, artifact)
    proc = cli("best", str(run), "--max-size", "250KB", "--export", str(tmp_path / "shipped"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no target, no half-written folder beside it


def test_trials_csv_missing_is_not_reported_as_run_json_missing(budget_run, tmp_path):
    run, _ = _damaged_copy(budget_run, tmp_path)
    (run / "trials.csv").unlink()
    proc = run_cli("best", str(run))
    assert proc.returncode == 2 and "trials.csv" in proc.stderr and "no run.json" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("where,expected", [
    ("non-empty", "is not empty"),
    ("file", "is a file"),
    ("run artifacts", "is inside the run directory"),
    ("run subfolder", "is inside the run directory"),
    ("run itself", "is inside the run directory"),
])
def test_export_target_must_be_new_or_empty_and_outside_the_run(budget_run, tmp_path, where, expected):
    run, artifact = _damaged_copy(budget_run, tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    target = {"non-empty": tmp_path / "shipped", "file": tmp_path / "shipped", "run artifacts": artifact,
              "run subfolder": run / "shipped", "run itself": run}[where]
    if where == "non-empty":
        target.mkdir()
        (target / "model.onnx").write_bytes(b"someone else's model")
    if where == "file":
        target.write_text("a file")
    proc = run_cli("best", str(run), "--max-size", "250KB", "--export", str(target))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr, proc.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # the run is untouched
    if where == "non-empty":
        assert (target / "model.onnx").read_bytes() == b"someone else's model"
    assert not [p for p in tmp_path.rglob("*.partial")]


@pytest.mark.slow
def test_export_into_an_existing_empty_folder_with_a_hostile_task_name(budget_run, tmp_path):
    """An empty target is fine; the card shows user strings as text, never as Markdown or HTML."""
    run, artifact = _damaged_copy(budget_run, tmp_path)
    info = json.loads((run / "run.json").read_text())
    info["task"]["name"] = "<script>alert(1)</script> *x* | y"
    info["model"]["layers"].append("fc|<b>evil</b>")  # a model may name a layer so (a ModuleDict key)
    (run / "run.json").write_text(json.dumps(info))
    plan = json.loads((artifact / "plan.json").read_text())
    plan["layers"]["fc|<b>evil</b>"] = {"prune": 0.0, "bits": 8, "rank": None}
    (artifact / "plan.json").write_text(json.dumps(plan))
    target = tmp_path / "shipped"
    target.mkdir()
    proc = run_cli("best", str(run), "--max-size", "250KB", "--export", str(target))
    assert proc.returncode == 0, proc.stderr
    card = (target / "MODEL_CARD.md").read_text()
    assert card.splitlines()[0].startswith(r"# &lt;script&gt;alert(1)&lt;/script&gt; \*x\* \| y: trial ")
    assert r"| fc\|&lt;b&gt;evil&lt;/b&gt; | 0% | 8 | full |" in card
    assert "<script>" not in card and "<b>" not in card
    assert sorted(p.name for p in target.iterdir()) == ["MODEL_CARD.md", "metrics.json", "model.onnx", "plan.json"]


def test_best_shows_every_layers_real_effect(budget_run, cli):
    """One row per layer of the model: channels kept through its group and the width (e.g. the
    stage1 convolutions that share the stem's channels), weight bits and rank, as the plan applies."""
    from autocompress.plan import Plan
    from autocompress.reports.layer_plan import layer_plan

    proc = cli("best", budget_run)
    assert proc.returncode == 0, proc.stderr
    model = json.loads((budget_run / "run.json").read_text())["model"]
    number = int(proc.stdout.split("trial ", 1)[1].split()[0].rstrip(":"))
    plan = Plan.from_json((budget_run / "artifacts" / str(number) / "plan.json").read_text())
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "output channels kept" in line)
    rows = {line.split()[0]: line for line in lines[header + 1:] if "ship it:" not in line}
    assert set(rows) >= set(model["layers"])
    assert set(model["groups"]["stem.0"]) >= {"stem.0", "stage1.0.conv2"}  # the coupling the table must show
    for effect in layer_plan(plan, layers=model["layers"], stages=model["stages"], groups=model["groups"],
                             channels=model["channels"]):
        line = rows[effect.name]
        if effect.dropped:  # its knobs apply to nothing
            assert "dropped block" in line and "int" not in line and "float32" not in line
            continue
        assert ("int%d" % effect.bits if effect.bits else "float32") in line
        if effect.channels:  # a layer of a pruning group
            assert f"{effect.channels[1]} of {effect.channels[0]}" in line
        else:  # the output layer: its outputs are the classes
            assert "all (not prunable)" in line


@pytest.mark.parametrize("damage", ["teacher accuracy NaN", "teacher size negative", "trial size negative",
                                    "trial accuracy empty"])
def test_numbers_no_measurement_gives_are_one_line_for_best_and_report(budget_run, tmp_path, damage, cli):
    run, _ = _damaged_copy(budget_run, tmp_path)
    if damage.startswith("teacher"):
        info = json.loads((run / "run.json").read_text())
        info["teacher"]["accuracy" if "accuracy" in damage else "size_bytes"] = float("nan") \
            if "NaN" in damage else -5
        (run / "run.json").write_text(json.dumps(info))
    else:
        trials = pd.read_csv(run / "trials.csv")
        first = trials.index[trials["state"] == "COMPLETE"][0]
        trials.loc[first, "size_bytes" if "size" in damage else "accuracy"] = -100 if "size" in damage else None
        trials.to_csv(run / "trials.csv", index=False)
    for args in (["best", run, "--prefer", "smallest"], ["report", run, "-o", tmp_path / "r.html"]):
        line = one_clear_line(cli(*args))
        assert "holds" in line and "no measurement gives" in line
    assert not (tmp_path / "r.html").exists()


def test_best_into_a_closed_pipe_is_quiet(budget_run):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run(f"{sys.executable} -m autocompress.cli best {budget_run} | head -1", shell=True,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and proc.stdout.startswith("best of")


def test_best_without_limits_answers_the_budget_the_search_ran_under(budget_run, cli):
    proc = cli("best", budget_run)
    assert proc.returncode == 0, proc.stderr
    assert "under the run's budget: size <= 250,000 B, accuracy >= 0.5" in proc.stdout
    number = int(proc.stdout.split("): trial ", 1)[1].split()[0])
    row = pd.read_csv(budget_run / "trials.csv").set_index("number").loc[number]
    assert row["size_bytes"] <= 250_000 and row["accuracy"] >= 0.5


def test_a_word_in_the_number_column_is_one_line_for_best_and_report(budget_run, tmp_path, cli):
    run, _ = _damaged_copy(budget_run, tmp_path)
    trials = pd.read_csv(run / "trials.csv").astype({"number": object})
    trials.loc[0, "number"] = "seven"
    trials.to_csv(run / "trials.csv", index=False)
    for args in (["best", run], ["report", run, "-o", tmp_path / "r.html"]):
        assert "its number column holds something other than distinct whole numbers" in one_clear_line(cli(*args))
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_a_search_whose_budget_no_trial_met_ends_saying_which_came_closest(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", "digits", "--trials", "3", "--steps", "20", "--max-size", "2KB",
                       "--no-sensitivity", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stdout.splitlines() if "not met" in line]
    trials = pd.read_csv(out / "trials.csv")
    smallest = trials.loc[trials["size_bytes"].idxmin()]
    assert len(said) == 1 and said[0].startswith("budget (size <= 2,000 B) not met by any of 3 complete trial(s); "
                                                 f"the closest, trial {int(smallest['number'])} (0 steps: ")
    assert said[0].endswith(f"misses size by {int(smallest['size_bytes']) - 2000:,} B")
