"""The sensitivity scan (real Ray, real ONNX Runtime, digits): every knob value of the space
alone, stored as sensitivity.csv, equal to a direct evaluation of its cells, reused on resume,
a failing cell stored with its error while the search goes on, printed by inspect."""

import dataclasses
import json

import pandas as pd
import pytest
import torch
from torch.utils.data import Subset

from autocompress.compressors.pipeline import task_context
from autocompress import DistillConfig, LayerPlan, Plan, evaluate, inspect_task, load_task
from autocompress.evaluators.measure import onnx_metric, onnx_session
from autocompress.search.settings import SearchSettings, SettingError, flag_for
from autocompress.search.sensitivity import (SAMPLES, knob_weights, read_table, scan_cells, scan_for_run,
                                             scan_in_process)
from autocompress.spaces.space import KERNELS_KNOB, SearchSpace
from autocompress.search.sensitivity_table import EVERY_LAYER_INT8, EVERY_LAYER_INT8_FLOAT, TEACHER
from tests.conftest import one_clear_line, run_cli, search_here
from tests.fixtures.user_tasks import HOSTILE_ERROR

TINY = "tests.fixtures.user_tasks:tiny"  # a small space: its whole scan takes seconds
TEACHER_VALUE = {"bits": 32, "prune": 0.0, "rank": 1.0, "arch/width": 1.0}


def _teacher_value(name: str, values: list):
    if name.startswith("arch/depth/"):
        return max(values)  # every block kept
    return TEACHER_VALUE.get(name.partition("/")[0], TEACHER_VALUE.get(name))


def _cells(table: pd.DataFrame) -> set:
    cells = table[table["knob"] != "teacher"]
    return {(knob, round(float(value), 6)) for knob, value in zip(cells["knob"], cells["value"])}


@pytest.fixture(scope="module")
def scanned_run(digits_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("sensitivity") / "run"
    proc = search_here("search", "--task", "digits", "--trials", "1", "--steps", "10", "--no-warm-start", "--sampler", "random",
                       "--proposals",
                       "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


@pytest.mark.slow
def test_the_scan_covers_every_knob_value_of_the_space_alone(scanned_run, digits_task):
    out, stdout = scanned_run
    table = read_table(out)
    space = inspect_task(digits_task)["space"]  # the space as inspect shows it
    expected = {(name, round(float(v), 6)) for name, values in space.items()
                if not name.startswith("use/") and name != KERNELS_KNOB  # the kernels alone change nothing
                for v in values if v != _teacher_value(name, values)}
    whole = {("bits/*", 8.0), ("bits/*float", 8.0)}  # every layer int8, on int8 and on float kernels
    assert len(expected) == 115 and _cells(table) == expected | whole and len(table) == len(expected) + 3
    for knob in ("bits/*", "bits/*float"):  # every layer int8 at once: smaller than any one layer makes it
        every = table[table["knob"] == knob].iloc[0]
        assert every["size_delta_bytes"] < table[table["knob"].str.startswith("bits/") & (table["value"] == 8)
                                                  & ~table["knob"].isin(["bits/*", "bits/*float"])][
            "size_delta_bytes"].min()
    assert table["error"].isna().all() and table[["accuracy", "size_bytes", "latency_ms"]].notna().all().all()
    teacher = table[table["knob"] == "teacher"].iloc[0]
    assert teacher["size_bytes"] == json.loads((out / "run.json").read_text())["teacher"]["size_bytes"]
    assert (table["accuracy_delta"] == table["accuracy"] - teacher["accuracy"]).all()
    assert (table["size_delta_bytes"] == table["size_bytes"] - teacher["size_bytes"]).all()
    assert (table["latency_delta_ms"] == table["latency_ms"] - teacher["latency_ms"]).all()
    assert (table["samples"] == min(SAMPLES, digits_task.num_examples("val"))).all() and (table["steps"] == 0).all()
    # the scan sees what matters: the output layer at a quarter of its rank loses far more than at int8
    row = table.set_index(["knob", "value"])
    assert row.loc[("rank/fc", 0.25), "accuracy_delta"] < row.loc[("bits/fc", 8.0), "accuracy_delta"] - 0.1
    assert "sensitivity scan: 118 of 118 cells" in stdout and json.loads((out / "run.json").read_text())[
        "settings"]["sensitivity"] is True


@pytest.mark.parametrize("knob, value, plan", [
    ("bits/stem.0", 2, Plan(layers={"stem.0": LayerPlan(bits=2)})),
    ("prune/down.0", 0.75, Plan(layers={"down.0": LayerPlan(prune=0.75)})),
])
def test_a_cell_matches_a_direct_evaluation_of_its_plan(scanned_run, digits_task, tmp_path, knob, value, plan):
    out, _ = scanned_run
    table = read_table(out).set_index(["knob", "value"])
    subset = dataclasses.replace(digits_task, val=Subset(digits_task.val, range(min(SAMPLES, len(digits_task.val)))))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on the worker
    try:
        direct = evaluate(subset, plan, out_dir=tmp_path, config=DistillConfig(steps=0))
    finally:
        torch.set_num_threads(threads)
    cell = table.loc[(knob, value)]
    assert (cell["accuracy"], cell["size_bytes"], cell["sha256"]) == (direct.accuracy, direct.size_bytes,
                                                                       direct.sha256)


def test_the_first_new_plan_of_a_search_is_the_predictors_first_proposal(scanned_run, digits_task):
    """(Before the resume test below alters the stored scan.) The scan feeds the predictor
    (--proposals): with no warm start (and no startup plans: random
    sampler), trial 0 is the plan along the front it predicts from sensitivity.csv and the teacher
    of run.json that it expects to add most hypervolume."""
    from autocompress.compressors.pipeline import task_context
    from autocompress.search.proposals import Predictor, propose
    from autocompress.search.proposers.predictor import PROPOSALS_CONSIDERED
    from autocompress.spaces.space import SearchSpace

    out, _ = scanned_run
    trials = pd.read_csv(out / "trials.csv")
    assert trials.loc[0, "source"] == "predictor"
    teacher = json.loads((out / "run.json").read_text())["teacher"]
    predictor = Predictor.from_scan(read_table(out), teacher)
    space = SearchSpace(task_context(digits_task).discovery)
    expected = propose(predictor, space=space, tried=set(), front=pd.DataFrame(), count=PROPOSALS_CONSIDERED)
    stored = json.loads((out / "artifacts" / "0" / "plan.json").read_text())
    assert stored == json.loads(expected.to_json())


@pytest.mark.slow
def test_resume_reuses_the_stored_cells_and_measures_only_the_missing_ones(scanned_run, tmp_path):
    out, _ = scanned_run
    stored = read_table(out)
    kept = stored[~stored["knob"].str.startswith("rank/")].copy()
    kept.loc[kept["knob"] == "bits/fc", "accuracy"] = 0.125  # a value no measurement gives: must survive
    kept.to_csv(out / "sensitivity.csv", index=False)
    proc = search_here("search", "--task", "digits", "--trials", "2", "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    missing = len(stored) - len(kept)
    assert f"sensitivity scan: {missing} of {len(stored)} cells" in proc.stdout
    table = read_table(out)
    assert _cells(table) == _cells(stored) and len(table) == len(stored)
    assert (table.loc[table["knob"] == "bits/fc", "accuracy"] == 0.125).all()
    assert table["error"].isna().all()
    trials = pd.read_csv(out / "trials.csv")
    assert trials["duplicate_of"].isna().sum() == 2  # a repeated plan is answered, not counted


def test_a_complete_table_is_reused_without_any_worker(scanned_run, digits_task):
    out, _ = scanned_run
    lines = []
    before = (out / "sensitivity.csv").read_bytes()
    table = scan_for_run(job=None, space=SearchSpace(task_context(digits_task).discovery), out=out,
                         steps=0, workers=2, cpus_per_trial=1, gpus_per_trial=0, progress=lines.append)
    assert lines == ["sensitivity scan: 118 cells reused from sensitivity.csv"] and len(table) == 118
    assert (out / "sensitivity.csv").read_bytes() == before


@pytest.mark.slow
def test_a_failing_cell_is_stored_with_its_error_and_the_search_goes_on(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:hostile", "--trials", "2", "--steps", "4",
                       "--workers", "1", "--cpus-per-trial", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "2 batch(es) at a time" in proc.stdout  # one trial slot of 2 CPUs: the scan runs a batch on each
    table = read_table(out)
    failed = table[table["error"].notna()]
    # the model refuses a stem of fewer than 4 of its 8 channels: 62.5% and 75% pruned
    assert set(zip(failed["knob"], failed["value"])) == {("prune/stem", 0.625), ("prune/stem", 0.75)}
    assert all(HOSTILE_ERROR in error for error in failed["error"]) and failed["accuracy"].isna().all()
    assert table[table["error"].isna()]["accuracy"].notna().all() and len(table) > len(failed) + 5
    assert "(2 failed: their errors are in sensitivity.csv)" in proc.stdout
    trials = pd.read_csv(out / "trials.csv")
    assert trials["duplicate_of"].isna().sum() == 2  # a repeated plan is answered, not counted
    shown = run_cli("inspect", "--task", "tests.fixtures.user_tasks:hostile", "--sensitivity", "--run", str(out))
    assert shown.returncode == 0 and shown.stdout.count("FAILED: RuntimeError: stem too narrow") == 2


@pytest.mark.slow
def test_no_sensitivity_skips_the_scan_and_says_so_in_run_json(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--trials", "1", "--steps", "2",
                       "--no-sensitivity", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert not (out / "sensitivity.csv").exists() and "sensitivity scan" not in proc.stdout
    assert json.loads((out / "run.json").read_text())["settings"]["sensitivity"] is False
    line = one_clear_line(run_cli("inspect", "--task", "tests.fixtures.user_tasks:tiny", "--sensitivity",
                                  "--run", str(out)))
    assert "has no sensitivity.csv" in line and "--no-sensitivity" in line


def test_inspect_prints_the_stored_scan_one_line_per_cell(scanned_run):
    out, _ = scanned_run
    proc = run_cli("inspect", "--task", "digits", "--sensitivity", "--run", str(out))
    assert proc.returncode == 0, proc.stderr
    table = read_table(out)
    for knob in set(table["knob"]) - {"teacher", "bits/*", "bits/*float"}:
        assert sum(line.split()[0] == knob for line in proc.stdout.splitlines() if line.strip()) == \
            (table["knob"] == knob).sum(), knob
    every = table[table["knob"] == "bits/*"].iloc[0]
    speed = (every["latency_ms"] - every["latency_delta_ms"]) / every["latency_ms"]
    assert sum(line.startswith("  every layer ") for line in proc.stdout.splitlines()) == 1
    assert sum(line.startswith("  every layer, float kernels ") for line in proc.stdout.splitlines()) == 1
    on_float = table[table["knob"] == "bits/*float"].iloc[0]
    float_speed = (on_float["latency_ms"] - on_float["latency_delta_ms"]) / on_float["latency_ms"]
    assert (f"every layer int8 runs {speed:.2f}x the teacher's speed here; its int8 weights on float kernels run "
            f"{float_speed:.2f}x: int8 kernels ") in proc.stdout
    teacher = table[table["knob"] == "teacher"].iloc[0]
    assert f"teacher: accuracy {teacher['accuracy']:.4f} on the first {int(teacher['samples'])} validation" \
        in proc.stdout
    assert "rank/fc                          25% rank" in proc.stdout and "(no fine-tuning)" in proc.stdout


@pytest.mark.slow
def test_inspect_computes_the_scan_here_without_a_run(tiny_task):
    proc = run_cli("inspect", "--task", "tests.fixtures.user_tasks:tiny", "--sensitivity")
    assert proc.returncode == 0, proc.stderr
    table = scan_in_process(tiny_task, SearchSpace(task_context(tiny_task).discovery))
    assert sum(line.startswith(("  bits/", "  prune/", "  rank/", "  arch/", "  every layer")) for line in
               proc.stdout.splitlines()) == len(table) - 1
    assert "sensitivity scan: " in proc.stderr and "cells in this process" in proc.stderr


def test_the_subset_is_the_first_samples_of_the_validation_split(tiny_task, tmp_path):
    table = scan_in_process(tiny_task, SearchSpace(task_context(tiny_task).discovery,
                                                   techniques=("quant",)), samples=10)
    assert (table["samples"] == 10).all()
    evaluate(tiny_task, Plan(), out_dir=tmp_path, config=DistillConfig(steps=0))
    first = onnx_metric(onnx_session(str(tmp_path / "model.onnx")), Subset(tiny_task.val, range(10)), tiny_task.metric)
    assert table.loc[0, "accuracy"] == first


@pytest.mark.parametrize("args, expected", [
    (["inspect", "--task", "digits", "--run", "{tmp}"], "--run goes with --sensitivity"),
    (["inspect", "--task", "digits", "--sensitivity", "--run", "{tmp}/none"], "is not a run directory"),
])
def test_inspect_sensitivity_bad_input_is_one_clear_line(cli, tmp_path, args, expected):
    line = one_clear_line(cli(*[a.replace("{tmp}", str(tmp_path)) for a in args]))
    assert expected in line


def test_inspect_refuses_the_run_of_another_task(cli, scanned_run):
    out, _ = scanned_run
    line = one_clear_line(cli("inspect", "--task", "mnist-lenet5", "--sensitivity", "--run", out))
    assert "holds a search of task 'digits', not 'mnist-lenet5'" in line


def test_the_scan_settings_are_stored_and_a_run_from_before_them_had_no_scan():
    settings = SearchSettings(sensitivity=False, sensitivity_steps=5)
    assert SearchSettings.from_dict(settings.to_dict()) == settings
    before = {k: v for k, v in SearchSettings().to_dict().items() if not k.startswith("sensitivity")}
    assert SearchSettings.from_dict(before).sensitivity is False  # its run directory holds no sensitivity.csv
    with pytest.raises(SettingError) as error:
        SearchSettings(sensitivity_steps=-1)
    assert error.value.name == "sensitivity_steps" and flag_for("sensitivity") == "--no-sensitivity"


def test_with_fine_tuning_steps_the_reference_is_still_the_teacher_as_it_is(tiny_task):
    space = SearchSpace(task_context(tiny_task).discovery, techniques=("quant",))
    plain = scan_in_process(tiny_task, space, samples=16)
    tuned = scan_in_process(tiny_task, space, samples=16, config=DistillConfig(steps=3, lr=1e-2))
    assert tuned.loc[0, "knob"] == "teacher" and tuned.loc[0, "steps"] == 0 and (tuned["steps"][1:] == 3).all()
    assert tuned.loc[0, ["accuracy", "size_bytes", "sha256"]].tolist() == \
        plain.loc[0, ["accuracy", "size_bytes", "sha256"]].tolist()
    assert (tuned["sha256"][1:] != plain["sha256"][1:]).all()  # the cells themselves were fine-tuned



@pytest.mark.slow
def test_a_short_time_budget_leaves_cells_for_resume_and_resume_adds_only_missing_ones(tmp_path):
    """No scan batch starts after a fifth of --time-budget: with 1 s only the first batch per
    worker runs, the rest is left out of the table (not stored as failed), the cells of the
    layers with the fewest weights; --resume adds them."""
    out = tmp_path / "run"
    proc = search_here("search", "--task", TINY, "--trials", "1", "--steps", "2", "--workers", "1",
                       "--time-budget", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    first = read_table(out)
    total = len(scan_cells(SearchSpace(task_context(load_task(TINY)).discovery)))
    assert 0 < len(first) < total and first["error"].isna().all()
    space = SearchSpace(task_context(load_task(TINY)).discovery)
    weights = {cell.key: knob_weights(space, cell.knob) for cell in scan_cells(space)
               if cell.knob not in (TEACHER, EVERY_LAYER_INT8, EVERY_LAYER_INT8_FLOAT)}
    measured = {key: w for key, w in weights.items() if key in _cells(first)}
    assert measured and min(measured.values()) >= max(w for key, w in weights.items() if key not in measured)
    assert f"sensitivity scan: {len(first)} cells in" in proc.stdout
    assert f"({total - len(first)} left unmeasured: no batch starts after 0 s" in proc.stdout
    resumed = search_here("search", "--task", TINY, "--trials", "1", "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"sensitivity scan: {total - len(first)} of {total} cells" in resumed.stdout
    second = read_table(out)
    assert len(second) > len(first) and _cells(first) <= _cells(second)
    assert not second.duplicated(["knob", "value"]).any()
