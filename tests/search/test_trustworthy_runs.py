"""A stored run cannot be lost or silently changed: a resume uses the run's own storage and
settings or is refused, run.json carries a schema, one search per run directory, interrupted
trials run again, and nothing in the run directory holds a credential."""

import json
import subprocess
import sys

import optuna
import pandas as pd
import pytest

from autocompress.plan import LayerPlan, Plan
from autocompress.search import rundir
from autocompress.search.rungs import Rungs
from autocompress.search.storage import check_study_file
from autocompress.search.trial_record import TrialRecord, requeue_interrupted
from tests.conftest import one_clear_line, run_cli, search_here

TINY = "tests.fixtures.user_tasks:tiny"


def _one_line_refusal(proc, *needles):
    line = one_clear_line(proc)
    for needle in needles:
        assert needle in line, line


def _snapshot(out):
    files = [out / rundir.TRIALS_CSV, out / rundir.PARETO_CSV, out / rundir.RUN_JSON,
             *sorted((out / rundir.ARTIFACTS).rglob("*"))]
    return {str(f): f.read_bytes() for f in files if f.is_file()}


@pytest.fixture(scope="module")
def elsewhere_run(tmp_path_factory):
    """A finished 2-trial search whose study lives in a database outside the run directory."""
    folder = tmp_path_factory.mktemp("elsewhere")
    out, url = folder / "run", f"sqlite:///{folder / 'studies.db'}"
    proc = search_here("search", "--task", TINY, "--trials", "2", "--steps", "3", "--sampler", "random",
                       "--no-sensitivity", "--storage", url, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, url


@pytest.mark.slow
def test_resume_without_the_runs_storage_is_refused_and_overwrites_nothing(elsewhere_run, cli):
    out, url = elsewhere_run
    before = _snapshot(out)
    proc = cli("search", "--task", TINY, "--trials", "4", "--out", str(out), "--resume")
    _one_line_refusal(proc, "this run's study lives in", f"--storage {url}")
    proc = cli("search", "--task", TINY, "--trials", "4", "--out", str(out), "--resume",
                   "--storage", f"sqlite:///{out / 'other.db'}")
    _one_line_refusal(proc, "is not this run's storage")
    assert _snapshot(out) == before
    assert not (out / rundir.STUDY_DB).exists() and not (out / "other.db").exists()


@pytest.mark.parametrize("flag, value, stored", [("--sampler", "tpe", "'random'"), ("--importance", "l2", "'l1'"),
                                                 ("--steps", "4", "3"), ("--seed", "1", "0"),
                                                 ("--techniques", "prune", "'prune', 'quant'"),
                                                 ("--min-accuracy", "0.5", "None"),
                                                 ("--sensitivity-steps", "2", "0")])
def test_resume_with_a_setting_that_differs_from_the_stored_one_is_refused(elsewhere_run, flag, value, stored, cli):
    out, url = elsewhere_run
    before = _snapshot(out)
    proc = cli("search", "--task", TINY, "--out", str(out), "--storage", url, "--resume", flag, value)
    _one_line_refusal(proc, f"{flag} ", "differs from this run's stored value", stored)
    assert _snapshot(out) == before


@pytest.mark.slow
def test_resume_with_the_stored_values_and_storage_continues_the_same_study(elsewhere_run):
    out, url = elsewhere_run
    before = pd.read_csv(out / rundir.TRIALS_CSV)
    proc = search_here("search", "--task", TINY, "--trials", "3", "--out", str(out), "--storage", url, "--resume",
                       "--sampler", "random", "--steps", "3")
    assert proc.returncode == 0, proc.stderr
    after = pd.read_csv(out / rundir.TRIALS_CSV)
    counted = after[after["duplicate_of"].isna()]  # a repeated plan is answered, not counted
    assert len(counted) == 3 and list(after["number"][:2]) == [0, 1]
    pd.testing.assert_frame_equal(after.iloc[:2][["accuracy", "size_bytes", "latency_ms", "started_at"]],
                                  before[["accuracy", "size_bytes", "latency_ms", "started_at"]])
    assert json.loads((out / rundir.RUN_JSON).read_text())["settings"]["sampler"] == "random"


def test_run_json_records_settings_schema_and_storage_without_secrets(elsewhere_run):
    out, url = elsewhere_run
    run = json.loads((out / rundir.RUN_JSON).read_text())
    assert run["schema"] == rundir.RUN_SCHEMA
    assert run["study"]["storage"] == url
    assert {"sampler", "seed", "techniques", "importance", "warm_start", "distill", "min_steps", "eta",
            "budget"} <= set(run["settings"])
    assert run["settings"]["distill"]["lr"] > 0  # the learning rate actually used, not "the task's"


@pytest.mark.parametrize("damage", ["newer schema", "not json", "no settings"])
def test_a_damaged_or_newer_run_json_is_one_line_for_best_report_and_resume(elsewhere_run, tmp_path, damage, cli):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(elsewhere_run[0], out)
    run = json.loads((out / rundir.RUN_JSON).read_text())
    if damage == "newer schema":
        text = json.dumps({**run, "schema": rundir.RUN_SCHEMA + 1})
    elif damage == "not json":
        text = "{\"task\": "
    else:
        text = json.dumps({k: v for k, v in run.items() if k != "settings"})
    (out / rundir.RUN_JSON).write_text(text)
    expected = "newer autocompress" if damage == "newer schema" else "is damaged"
    for args in (["best", str(out)], ["report", str(out), "-o", str(tmp_path / "r.html")],
                 ["search", "--task", TINY, "--out", str(out), "--resume"]):
        _one_line_refusal(cli(*args), expected)
    assert not (tmp_path / "r.html").exists()


def test_a_run_from_before_the_schema_is_read_but_not_resumed(elsewhere_run, tmp_path, cli):
    import shutil

    out = tmp_path / "old"
    shutil.copytree(elsewhere_run[0], out)
    run = json.loads((out / rundir.RUN_JSON).read_text())
    del run["schema"]
    (out / rundir.RUN_JSON).write_text(json.dumps(run))
    assert cli("best", str(out)).returncode == 0
    _one_line_refusal(cli("search", "--task", TINY, "--out", str(out), "--resume", "--storage",
                              elsewhere_run[1]), "older autocompress (schema 0)")


@pytest.mark.slow
def test_a_second_search_in_a_run_directory_in_use_is_refused(elsewhere_run):
    out, url = elsewhere_run
    before = _snapshot(out)
    with rundir.locked(out):  # what a running search holds (another process, as a user would meet it)
        proc = search_here("search", "--task", TINY, "--trials", "5", "--out", str(out), "--storage", url, "--resume")
    _one_line_refusal(proc, "another search is running in")
    assert _snapshot(out) == before


@pytest.mark.slow
def test_a_truncated_study_db_is_one_line_on_resume(tmp_path):
    out = tmp_path / "run"
    assert search_here("search", "--task", TINY, "--trials", "1", "--steps", "2", "--no-sensitivity",
                       "--out", str(out)).returncode == 0
    db = out / rundir.STUDY_DB
    db.write_bytes(db.read_bytes()[:3000])
    _one_line_refusal(search_here("search", "--task", TINY, "--trials", "2", "--out", str(out), "--resume"),
                      "cannot open the study")


def test_a_study_db_left_mid_write_by_a_killed_process_is_opened_with_every_committed_trial(tmp_path):
    """A driver killed inside a write leaves study.db with a hot journal; the resume's check rolls
    it back as SQLite would (a read-only open cannot, and refused a sound study: CI met it)."""
    db = tmp_path / rundir.STUDY_DB
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="s")
    study.enqueue_trial({"x": 1.0})
    study.optimize(lambda trial: trial.suggest_float("x", 0, 2), n_trials=2)
    writer = ("import os, sqlite3\n"
              f"db = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
              "db.execute('pragma cache_size=1'); db.execute('begin')\n"
              "for i in range(3000): db.execute('insert into study_user_attributes (study_id, key, value_json) "
              "values (1, ?, ?)', (str(i), 'x' * 200))\n"
              "os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", writer]).returncode == 9
    assert (tmp_path / f"{rundir.STUDY_DB}-journal").stat().st_size > 0  # the killed writer's journal
    check_study_file(tmp_path)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert [t.value for t in study.trials] == [1.0, study.trials[1].params["x"]] and not study.user_attrs


def test_interrupted_trials_run_again_once_each(tmp_path):
    """Trials stopped by Ctrl-C / --time-budget (stored failed + interrupted) and trials a dead
    driver left RUNNING are queued again, once; a plan that ran again since is not."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}",
                                directions=["maximize", "minimize", "minimize"])
    plans = [Plan(layers={"fc": LayerPlan(bits=bits)}) for bits in (8, 4, 2)]
    for plan in plans:
        trial = study.ask()
        trial.set_user_attr("plan", plan.to_dict())
        trial.set_user_attr("rung", 0)
        if plan is plans[0]:  # Ctrl-C
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", rundir.INTERRUPTED)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif plan is plans[2]:  # its own failure: not re-run
            trial.set_user_attr("error", "ValueError: NaN loss")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        # plans[1] stays RUNNING: its driver died
    again = requeue_interrupted(study, Rungs((10,)).top)
    assert again == [(plans[0], 0), (plans[1], 0)]
    states = [t.state for t in study.trials]
    assert states[1] == optuna.trial.TrialState.FAIL and not TrialRecord.of(study.trials[1]).counts_toward_total
    assert TrialRecord.of(study.trials[2]).counts_toward_total
    trial = study.ask()  # plans[0] runs again and completes
    trial.set_user_attr("plan", plans[0].to_dict())
    trial.set_user_attr("rung", 0)
    study.tell(trial, [1.0, 1.0, 1.0])
    assert requeue_interrupted(study, Rungs((10,)).top) == [(plans[1], 0)]


@pytest.mark.slow
def test_a_damaged_teacher_record_or_an_empty_or_deleted_study_db_is_refused_and_nothing_is_rewritten(tmp_path):
    out = tmp_path / "run"
    assert search_here("search", "--task", TINY, "--trials", "1", "--steps", "2", "--no-sensitivity",
                       "--out", str(out)).returncode == 0
    stored = (out / rundir.RUN_JSON).read_text()
    run = json.loads(stored)
    run["teacher"]["accuracy"] = float("nan")
    (out / rundir.RUN_JSON).write_text(json.dumps(run))
    before = _snapshot(out)
    _one_line_refusal(search_here("search", "--task", TINY, "--trials", "2", "--out", str(out), "--resume"),
                      "holds teacher metrics that no measurement gives")
    assert _snapshot(out) == before  # no table rewritten with NaN
    (out / rundir.RUN_JSON).write_text(stored)
    db = out / rundir.STUDY_DB
    db.write_bytes(b"")
    for command in (["search", "--task", TINY, "--trials", "2", "--out", str(out), "--resume"],
                    ["dashboard", str(out), "--port", "0"]):
        _one_line_refusal(run_cli(*command, timeout=120), "study.db is empty", "restore study.db")
        assert db.read_bytes() == b""  # no schema written into it
    db.unlink()
    for command in (["search", "--task", TINY, "--trials", "2", "--out", str(out), "--resume"],
                    ["dashboard", str(out), "--port", "0"]):
        _one_line_refusal(run_cli(*command, timeout=120), "study.db is missing")
        assert not db.exists()  # none made in its place
