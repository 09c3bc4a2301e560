"""Searches asked for GPUs on a machine without one, and a trial that runs out of GPU memory:
refused in one line before anything runs, or failed with its reason while the search goes on."""

import json

import pandas as pd

from tests.conftest import one_clear_line, run_cli
from tests.fixtures.gpu_tasks import MARKER_ENV, MESSAGE

TINY = "tests.fixtures.user_tasks:tiny"


def test_amp_without_gpus_is_refused_in_one_line_and_leaves_no_run(cli, tmp_path):
    out = tmp_path / "run"
    line = one_clear_line(cli("search", "--task", TINY, "--amp", "bf16", "--out", out))
    assert "--amp bf16: trials train on the CPU (--gpus-per-trial 0)" in line and "drop --amp" in line
    assert not out.exists()


def test_more_than_one_gpu_per_trial_is_refused_in_one_line(cli, tmp_path):
    line = one_clear_line(cli("search", "--task", TINY, "--gpus-per-trial", "2", "--out", tmp_path / "run"))
    assert "--gpus-per-trial must be at most 1" in line and "0.25 = four trials share one" in line


def test_a_gpu_share_on_a_machine_without_gpus_is_refused_in_one_line(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("search", "--task", TINY, "--gpus-per-trial", "0.25", "--out", str(out))
    line = one_clear_line(proc)
    assert "--gpus-per-trial 0.25: the Ray cluster has 0 GPUs" in line and not out.exists()


def test_a_trial_out_of_gpu_memory_fails_with_what_to_change_and_the_search_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "raised"))
    out = tmp_path / "run"
    proc = run_cli("search", "--task", "tests.fixtures.gpu_tasks:out_of_memory_once", "--trials", "3", "--steps", "2",
                   "--workers", "1", "--no-warm-start", "--no-sensitivity", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = pd.read_csv(out / "trials.csv")
    failed = trials[trials["state"] == "FAIL"]
    assert len(failed) == 1 and (trials["state"] == "COMPLETE").sum() >= 2
    error = failed["error"].iloc[0]
    assert error.startswith(f"OutOfMemoryError: {MESSAGE}")
    assert "--gpus-per-trial 0.5 instead of 0.25" in error and "smaller batch" in error
    assert json.loads((out / "run.json").read_text())["settings"]["distill"]["amp"] is None
