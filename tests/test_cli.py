"""The CLI as a user runs it: a real search on digits, and every bad input as one clear line."""

import json

import optuna
import pandas as pd
import pytest

from tests.conftest import one_clear_line, run_cli, search_here


@pytest.mark.slow
def test_tasks_lists_digits():
    proc = run_cli("tasks")
    assert proc.returncode == 0 and proc.stdout.startswith("digits")


@pytest.mark.slow
def test_inspect_shows_layers_groups_knobs_and_what_is_not_compressed(digits_task):
    proc = run_cli("inspect", "--task", "digits")
    assert proc.returncode == 0, proc.stderr
    for text in ("dependency groups", "stem.0, stage1.0.conv2, stage1.1.conv2", "arch/depth/stage1",
                 "bits/fc", "rank/down.0", "prune/stem.0", "output layer: its outputs are the model's outputs"):
        assert text in proc.stdout


@pytest.mark.slow
def test_search_end_to_end_on_digits(digits_task, tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", "digits", "--trials", "4", "--steps", "20", "--out", str(out),
                       "--sampler", "nsga2", "--no-sensitivity")  # the scan has its own tests
    assert proc.returncode == 0, proc.stderr
    assert "Pareto front" in proc.stdout and "[4/4]" in proc.stdout
    run = json.loads((out / "run.json").read_text())
    assert {"accuracy", "size_bytes", "latency_ms"} <= set(run["teacher"])
    assert run["teacher"]["size_bytes"] == (out / "teacher" / "model.onnx").stat().st_size
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["duplicate_of"].isna()).sum() == 4 and set(trials["state"]) == {"COMPLETE"}  # repeats not counted
    for column in ("number", "state", "accuracy", "size_bytes", "latency_ms", "fidelity", "duration_s", "error",
                   "prune/stem.0", "bits/fc", "rank/fc", "arch/width", "arch/depth/stage2"):
        assert column in trials.columns
    for _, row in trials[trials["duplicate_of"].isna()].iterrows():
        artifact = out / "artifacts" / str(row["number"]) / "model.onnx"
        assert artifact.stat().st_size == row["size_bytes"]
        assert (artifact.parent / "plan.json").exists()
    pareto = pd.read_csv(out / "pareto.csv")
    assert 1 <= len(pareto) <= 4 and set(pareto["number"]) <= set(trials["number"])
    study = optuna.load_study(study_name="autocompress", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == len(trials)  # the database, not the CSV, is the source of truth

    again = search_here("search", "--task", "digits", "--trials", "6", "--steps", "20", "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    resumed = pd.read_csv(out / "trials.csv")
    assert (resumed["duplicate_of"].isna()).sum() == 6
    pd.testing.assert_frame_equal(resumed.iloc[:len(trials)].reset_index(drop=True), trials, check_dtype=False)


@pytest.mark.slow
def test_failing_candidates_are_stored_as_failed_and_the_search_goes_on(tmp_path):
    out = tmp_path / "nan"
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:nan_training", "--trials", "3", "--steps", "2",
                       "--no-sensitivity", "--out", str(out), "--no-warm-start")
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 3 and set(trials["state"]) == {"FAIL"}
    assert trials["error"].str.len().gt(0).all() and trials["error"].str.contains("nan", case=False).any()
    assert "FAILED" in proc.stdout


@pytest.mark.slow
def test_user_task_factory_runs(tmp_path):
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--trials", "2", "--steps", "2",
                       "--out", str(tmp_path / "tiny"))
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(tmp_path / "tiny" / "trials.csv")) == 2


@pytest.mark.parametrize("args,expected", [
    (["--task", "nope"], "unknown task 'nope'"),
    (["--task", "digits", "--data-dir", "/no/such/folder"], "--data-dir /no/such/folder: no such folder"),
    (["--task", "tests.fixtures.user_tasks:nan_weights"], "holds NaN or infinite values (did its training diverge?)"),
    (["--task", "tests.fixtures.user_tasks:batch_one_only"], "the teacher fails on a batch of 2"),
    (["--task", "no_such_module:make"], "cannot import 'no_such_module'"),
    (["--task", "tests.fixtures.user_tasks:missing"], "has no function 'missing'"),
    (["--task", "tests.fixtures.user_tasks:not_a_task"], "returned int, not autocompress.Task"),
    (["--task", "tests.fixtures.user_tasks:raises"], "failed: RuntimeError: database unreachable"),
    (["--task", "tests.fixtures.user_tasks:broken_forward"], "the teacher's forward failed"),
    (["--task", "tests.fixtures.user_tasks:unexportable"], "the teacher cannot be exported to ONNX (Unsupported"),
    (["--task", "digits", "--sampler", "grid"], "--sampler 'grid' is unknown"),
    (["--task", "digits", "--trials", "0"], "--trials must be at least 1"),
    (["--task", "digits", "--trials", "-3"], "--trials must be at least 1"),
    (["--task", "tests.fixtures.user_tasks:tiny", "--techniques", "prune,distill"],
     "--techniques must be a non-empty subset of prune, quant, lowrank, student"),
])
def test_bad_input_isone_clear_line(tmp_path, args, expected, cli):
    line = one_clear_line(cli("search", *args, "--out", str(tmp_path / "out")))
    assert expected in line


def test_inspect_with_a_data_dir_that_does_not_exist_is_one_line(cli):
    assert "no such folder" in one_clear_line(cli("inspect", "--task", "digits", "--data-dir", "/no/such/folder"))


def test_inspect_says_a_teacher_cannot_be_exported_before_any_search(cli):
    line = one_clear_line(cli("inspect", "--task", "tests.fixtures.user_tasks:unexportable"))
    assert "aten::cummax" in line and "register_custom_op_symbolic" in line


def test_out_that_is_not_a_run_directory_is_refused(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("mine")
    line = one_clear_line(cli("search", "--task", "tests.fixtures.user_tasks:tiny", "--out", str(tmp_path)))
    assert "exists and is not an empty folder" in line
    assert (tmp_path / "notes.txt").read_text() == "mine"
    line = one_clear_line(cli("search", "--task", "tests.fixtures.user_tasks:tiny", "--resume",
                                   "--out", str(tmp_path / "nothing")))
    assert "is not a run directory" in line


def test_every_declared_setting_is_a_flag_that_sets_its_keyword():
    """Settings are declared once (setting_names.SETTINGS): each names a real keyword of
    SearchSettings (or Budget) or Execution, and its flag, parsed, sets exactly that keyword."""
    import dataclasses

    from autocompress.cli import _execution, _settings
    from autocompress.cli_parser import parser
    from autocompress.search.setting_names import EXECUTION_GROUP, LATENCY_GROUP, SETTINGS
    from autocompress.search.settings import Execution, SearchSettings

    sample = {"int": "5", "float": "0.5", "str": "random", "list": "quant", "profiles": "server:batch=4"}
    known = SearchSettings().flat()
    for setting in SETTINGS:
        if setting.group == LATENCY_GROUP:  # the latency command takes them too
            value = {"int": "5", "profiles": "server:batch=4"}.get(setting.kind, "cuda")
            args = parser().parse_args(["latency", "m.onnx", setting.flag, value])
            assert getattr(args, setting.dest) in (5, "cuda", ["server:batch=4"])
        argv = ["search", "--task", "digits", setting.flag]
        if setting.kind != "switch":
            value = setting.choices[-1] if setting.choices else sample[setting.kind]
            argv.append({"--max-size": "5KB", "--max-latency": "2ms", "--min-accuracy": "0.5",
                         "--address": "127.0.0.1:6379", "--latency-resource": "edge",
                         "--latency-provider": "cuda"}.get(setting.flag, value))
        args = parser().parse_args(argv)
        if setting.group == EXECUTION_GROUP:
            assert setting.keyword in {f.name for f in dataclasses.fields(Execution)}
            assert _execution(args) != Execution(), setting.flag
            continue
        assert setting.keyword in known, setting.keyword
        changed = SearchSettings.differences(_settings(args, SearchSettings()), SearchSettings())
        follows = {"seed": ["distill.seed"]}.get(setting.keyword, [])  # fine-tuning's seed follows the search's
        assert list(changed) == [setting.keyword, *follows], (setting.flag, changed)
