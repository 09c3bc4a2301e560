"""Trials on real Ray: several at once, node and timing columns, a worker killed mid-trial,
a trial past its timeout, and resuming after the driver is killed with SIGKILL."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import ROOT, run_cli, search_here


@pytest.mark.slow
def test_two_workers_run_trials_at_once_and_record_where_and_when(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--trials", "6", "--steps", "300",
                       "--no-sensitivity", "--workers", "2", "--no-warm-start", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(out / "trials.csv")
    assert set(trials["state"]) == {"COMPLETE"}
    ran = trials[trials["duplicate_of"].isna()].reset_index()  # a repeated plan is answered, not counted
    assert len(ran) == 6 and ran["node"].notna().all()
    start, end = pd.to_datetime(ran["started_at"]), pd.to_datetime(ran["finished_at"])
    assert (end > start).all()
    overlapping = sum(1 for i in range(len(ran)) for j in range(i + 1, len(ran))
                      if start[i] < end[j] and start[j] < end[i])
    assert overlapping >= 1, "two workers should have run trials at the same time"


@pytest.mark.slow
def test_workers_above_the_cpus_are_capped_with_a_warning(tmp_path):
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--trials", "1", "--steps", "2",
                       "--no-sensitivity", "--workers", "64", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert f"running {os.cpu_count()} workers instead of 64" in proc.stdout


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_retried_and_nothing_is_lost(tmp_path):
    marker = tmp_path / "killed"
    env_marker = {"AUTOCOMPRESS_TEST_MARKER": str(marker)}
    os.environ.update(env_marker)
    try:
        # a process of its own: its Ray workers must see the marker's variable (the session's Ray started before it)
        proc = run_cli("search", "--task", "tests.fixtures.user_tasks:dies_once", "--trials", "3", "--steps", "5",
                       "--no-sensitivity", "--workers", "1", "--no-warm-start", "--out", str(tmp_path / "run"))
    finally:
        os.environ.pop("AUTOCOMPRESS_TEST_MARKER")
    assert proc.returncode == 0, proc.stderr
    assert marker.exists(), "the worker was never killed: the test did not test anything"
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert len(trials) == 3 and set(trials["state"]) == {"COMPLETE"}


@pytest.mark.slow
def test_a_trial_past_its_timeout_is_stored_as_failed(tmp_path):
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--trials", "2", "--steps", "100000",
                       "--no-sensitivity", "--trial-timeout", "2", "--no-warm-start", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert len(trials) == 2 and set(trials["state"]) == {"FAIL"}
    assert trials["error"].str.contains("timed out").all()


@pytest.mark.slow
def test_resume_after_the_driver_is_killed_between_rungs_keeps_every_finished_trial(digits_task, tmp_path):
    """Successive halving on digits (rungs of 50 and 150 steps): the driver killed with SIGKILL
    once rung 0 has results; the resumed search reaches the requested count, every trial that
    had finished is unchanged, and the promoted plans continued with more steps."""
    out = tmp_path / "run"
    args = ["search", "--task", "digits", "--trials", "6", "--steps", "150", "--min-steps", "50", "--workers", "2",
            "--no-sensitivity", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    driver = subprocess.Popen([sys.executable, "-m", "autocompress.cli", *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    before = pd.DataFrame()
    while time.time() < deadline:
        time.sleep(0.5)
        if (out / "trials.csv").exists():
            before = pd.read_csv(out / "trials.csv")
            if (before["state"] == "COMPLETE").sum() >= 2:
                break
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started in its process group
    driver.wait()
    completed = before[before["state"] == "COMPLETE"].set_index("number")
    assert 2 <= len(completed) < 6, "the driver must be killed mid-search for this test to mean anything"

    proc = search_here(*args, "--resume")
    assert proc.returncode == 0, proc.stderr
    after = pd.read_csv(out / "trials.csv")
    counted = (after["state"] == "COMPLETE") & after["duplicate_of"].isna()  # a repeated plan is answered, not counted
    assert counted.sum() == 6, after[["number", "state", "rung", "duplicate_of", "source"]]
    kept = after.set_index("number").loc[completed.index]
    pd.testing.assert_frame_equal(kept[["accuracy", "size_bytes", "latency_ms", "rung", "steps"]],
                                  completed[["accuracy", "size_bytes", "latency_ms", "rung", "steps"]], check_dtype=False)
    done = after[(after["state"] == "COMPLETE") & after["duplicate_of"].isna()]
    promoted = done[done["rung"] == 1]
    assert len(promoted) >= 1 and set(promoted["steps"]) == {150} and set(done[done["rung"] == 0]["steps"]) <= {0, 50}


@pytest.mark.slow
def test_rungs_promote_the_front_of_the_rung_below_and_the_front_uses_the_top_rung_only(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--trials", "8", "--steps", "20",
                       "--no-sensitivity", "--min-steps", "4", "--workers", "1", "--no-warm-start", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(out / "trials.csv")
    screened, full = trials[trials["rung"] == 0], trials[trials["rung"] == 1]
    assert len(screened) >= 1 and len(full) >= 1
    assert set(screened["fidelity"]) == {"steps=4,data=1,onnx-val"}
    assert set(full["fidelity"]) == {"steps=20,data=1,onnx-val"}
    params = [c for c in trials.columns if c.split("/")[0] in ("prune", "bits", "rank", "arch")]
    screened_plans = {tuple(row) for row in screened[params].itertuples(index=False)}
    for row in full[params].itertuples(index=False):  # every full evaluation is a promoted screened plan
        assert tuple(row) in screened_plans
    pareto = pd.read_csv(out / "pareto.csv")
    assert len(pareto) >= 1 and set(pareto["rung"]) == {1}


@pytest.mark.slow
def test_time_budget_ends_the_search_cleanly(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--trials", "100000", "--steps", "50",
                       "--time-budget", "15", "--no-warm-start", "--no-sensitivity", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "time budget of 15 s spent" in proc.stdout
    trials = pd.read_csv(out / "trials.csv")
    assert 1 <= (trials["state"] == "COMPLETE").sum() < 100000


@pytest.mark.slow
def test_gpus_the_cluster_lacks_are_refused_and_leave_no_half_run(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--gpus-per-trial", "1", "--out", str(out))
    assert proc.returncode == 2 and "GPUs, so no trial could ever start" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
