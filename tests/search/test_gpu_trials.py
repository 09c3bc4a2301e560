"""Searches asked for GPUs on a machine without one, and a trial that runs out of GPU memory:
refused in one line before anything runs, or failed with its reason while the search goes on."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from tests.conftest import ROOT, one_clear_line, run_cli, search_here
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


@pytest.mark.slow
def test_a_gpu_share_on_a_machine_without_gpus_is_refused_in_one_line(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", TINY, "--gpus-per-trial", "0.25", "--out", str(out))
    line = one_clear_line(proc)
    assert "--gpus-per-trial 0.25: the Ray cluster has 0 GPUs" in line and not out.exists()


@pytest.mark.slow
def test_a_trial_out_of_gpu_memory_fails_with_what_to_change_and_the_search_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "raised"))
    out = tmp_path / "run"
    # a process of its own: its Ray workers must see the marker's variable (the session's Ray started before it)
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


TUNE_WITH_A_DECLARED_GPU = r"""
import sys, ray
from autocompress.compressors.distill import DistillConfig
from autocompress.search import search
from autocompress.search.settings import Execution, SearchSettings
from tests.fixtures.user_tasks import tiny

ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
settings = SearchSettings(distill=DistillConfig(steps=2), sensitivity=False, warm_start=False)
search(tiny(), settings=settings, trials=3, out=sys.argv[1], task_spec="tests.fixtures.user_tasks:tiny",
       execution=Execution(workers=2, gpus_per_trial=0.25, address="auto"), progress=lambda line: None)
"""


@pytest.mark.slow
def test_ray_tune_trials_get_their_quarter_gpu_and_train_where_ray_put_them(tmp_path):
    """A Ray that declares one GPU (joined as a cluster: no local CUDA check): Tune schedules the
    0.25 shares, each trial's device follows the GPU Ray gave it. Where torch has CUDA the trials
    train there; with this CPU-only torch each fails with that reason (never a silent CPU run),
    and the search stores them all and ends."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", TUNE_WITH_A_DECLARED_GPU, str(out)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 3
    if torch.cuda.is_available():
        assert set(trials["state"]) == {"COMPLETE"}
    else:
        assert set(trials["state"]) == {"FAIL"}
        assert trials["error"].str.startswith("DeviceError: Ray assigned GPU 0 to this trial but torch").all()
    assert json.loads((out / "run.json").read_text())["settings"]["execution"]["gpus_per_trial"] == 0.25
