"""A search under a latency profile (#30): one setting, stored in run.json and restored on resume,
that every latency of the search is measured under (the teacher's, the trials' on a worker or on
the latency actor, the scan's, and best --export's re-measure). Which profile a measurement used
is shown without timing anything: a file with a fixed batch of 1 is refused at any other batch,
so a meter that refuses it at batch 4 is the profile's."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from autocompress.errors import UsageError
from autocompress.evaluators.latency_profile import LatencyProfile
from autocompress.search.latency_actor import LatencyActor
from autocompress.search.worker import Job, job_latency, remote_latency
from tests.conftest import one_clear_line, search_here

TINY = "tests.fixtures.user_tasks:tiny"


@pytest.fixture(scope="module")
def fixed_batch_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fixed") / "model.onnx"
    torch.onnx.export(nn.Linear(16, 4), (torch.randn(1, 16),), str(path), input_names=["input"], dynamo=False)
    return str(path)


def _job(profile: LatencyProfile, actor=None) -> Job:
    return Job(task_spec=TINY, data_dir=None, task=None, teacher_state={}, distill=None, out_dir=".", threads=1,
               latency_actor=actor, latency_profile=profile)


def test_a_trial_measures_under_the_searchs_profile_here_and_on_the_latency_actor(fixed_batch_file):
    example = torch.randn(1, 16)
    assert job_latency(_job(LatencyProfile()))(fixed_batch_file, example)[0] > 0  # the default: batch 1
    with pytest.raises(UsageError, match="fixed batch of 1, so it cannot be measured at batch 4"):
        job_latency(_job(LatencyProfile(batch=4)))(fixed_batch_file, example)


@pytest.mark.slow
def test_the_latency_actor_measures_under_the_profile_it_is_sent(fixed_batch_file):
    actor = LatencyActor.remote("profiles")
    example = torch.randn(1, 16)
    assert remote_latency(actor)(fixed_batch_file, example)[0] > 0
    with pytest.raises(Exception, match="fixed batch of 1, so it cannot be measured at batch 4"):
        remote_latency(actor, LatencyProfile(batch=4))(fixed_batch_file, example)


@pytest.mark.slow
def test_a_local_rays_workers_and_latency_actor_run_at_this_processs_priority():
    """Ray starts workers at nice 15: the actor, pinned to a core beside an ordinary process, got a
    few percent of it (benchmarks/priority_measure.py). A local Ray started by a search runs them at
    ours. (In a process of its own: this one's Ray may have been started some other way.)"""
    code = ("import os, ray; from autocompress.search.ray_runner import start_ray; "
            "start_ray(address=None, workers=1, cpus_per_trial=1); "
            "print(os.nice(0), ray.get(ray.remote(num_cpus=0)(lambda: os.nice(0)).remote()))")
    env = {key: value for key, value in os.environ.items() if key != "RAY_worker_niceness"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours, workers = proc.stdout.split()[-2:]
    assert workers == ours


@pytest.mark.slow
def test_the_profile_is_stored_restored_on_resume_and_another_one_is_refused(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", TINY, "--trials", "1", "--steps", "2", "--no-sensitivity",
                       "--latency-threads", "2", "--latency-batch", "8", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "items/s" in proc.stdout.split("Pareto front")[0]  # each trial's line: the throughput at batch 8
    assert "items/s" in proc.stdout.split("Pareto front")[1]  # and the front's column
    stored = json.loads((out / "run.json").read_text())["settings"]["latency"]
    assert LatencyProfile.from_dict(stored) == LatencyProfile(threads=2, batch=8)
    assert stored["runtime"] == "onnxruntime CPUExecutionProvider" and stored["pinned_core"] is False
    again = search_here("search", "--task", TINY, "--trials", "2", "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "run.json").read_text())["settings"]["latency"] == stored
    line = one_clear_line(search_here("search", "--task", TINY, "--trials", "3", "--out", str(out), "--resume",
                                      "--latency-batch", "1"))
    assert "--latency-batch" in line
    exported = search_here("best", str(out), "--export", str(tmp_path / "shipped"))
    assert exported.returncode == 0, exported.stderr  # re-measured under the run's profile


@pytest.mark.slow
def test_a_provider_that_runs_nothing_is_refused_before_any_trial(tmp_path):
    import onnxruntime as ort

    if "AzureExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no Azure provider in this ONNX Runtime")
    line = one_clear_line(search_here("search", "--task", TINY, "--trials", "1", "--no-sensitivity",
                                      "--latency-provider", "azure", "--out", str(tmp_path / "run")))
    assert "ran none of the nodes" in line
    assert not (tmp_path / "run" / "trials.csv").exists() or len((tmp_path / "run" / "trials.csv").read_text().splitlines()) <= 1


def test_a_budget_under_a_profile_is_answered_from_that_profiles_latencies():
    """Trial 1 is the faster under the search's own profile, trial 2 under 'server' (batch 32 on 2
    threads): the same limit picks each in turn, and a profile the run did not measure is refused."""
    import pandas as pd

    from autocompress.budget import Budget
    from autocompress.search.best import select

    trials = pd.DataFrame({"number": [1, 2], "accuracy": [0.95, 0.90], "size_bytes": [100, 100],
                           "latency_ms": [1.0, 3.0], "latency_ms@server": [9.0, 4.0]})
    assert select(trials, Budget.parse(max_latency="2ms"))["number"] == 1
    assert select(trials, Budget.parse(max_latency="5ms@server"))["number"] == 2
    assert select(trials, Budget(latency_profile="server", max_latency_ms=10), prefer="fastest")["number"] == 2
    with pytest.raises(UsageError, match="profile 'edge' was not measured in this run .its extra profiles: server"):
        select(trials, Budget.parse(max_latency="5ms@edge"))


@pytest.mark.parametrize("flags, problem", [
    (["--latency-profile", "Server:threads=2"], "lower-case letters"),
    (["--latency-profile", "server:threads=2,colour=red"], "unknown key(s) colour"),
    (["--latency-profile", "server"], "say how it measures after the name"),
    (["--latency-profile", "a:batch=2", "--latency-profile", "a:batch=4"], "'a' is given twice"),
    ([f for n in "abcd" for f in ("--latency-profile", f"{n}:batch=2")], "at most 3 besides its own"),
    (["--max-latency", "2ms@edge"], "does not measure; name it with --latency-profile"),
])
def test_a_bad_latency_profile_is_one_line_before_anything_runs(flags, problem, tmp_path):
    line = one_clear_line(search_here("search", "--task", TINY, "--trials", "1", *flags,
                                      "--out", str(tmp_path / "run")))
    assert problem in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_extra_profiles_measure_every_trial_and_the_teacher_and_a_budget_may_name_one(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", TINY, "--trials", "3", "--steps", "2", "--no-sensitivity",
                       "--latency-profile", "wide:threads=2,batch=4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "front under latency profile 'wide' (2 thread(s), batch 4, cpu" in proc.stdout
    run = json.loads((out / "run.json").read_text())
    assert LatencyProfile.from_dict(run["settings"]["latency_profiles"]["wide"]) == LatencyProfile(threads=2, batch=4)
    assert run["teacher"]["latency_ms@wide"] > 0
    import pandas as pd

    trials = pd.read_csv(out / "trials.csv")
    complete = trials[trials["state"] == "COMPLETE"]
    assert len(complete) == 3 and (complete["latency_ms@wide"] > 0).all()
    fastest = complete.sort_values(["latency_ms@wide", "accuracy"], ascending=[True, False]).iloc[0]
    slower = complete.loc[complete["latency_ms@wide"] > fastest["latency_ms@wide"], "latency_ms@wide"]
    between = (fastest["latency_ms@wide"] + slower.min()) / 2 if len(slower) else fastest["latency_ms@wide"] * 1.001
    limit = f"{between * 1000:.9f}us@wide"  # only the fastest under 'wide' (and any as fast) is within
    best = search_here("best", str(out), "--max-latency", limit)
    assert best.returncode == 0, best.stderr
    assert f"trial {int(fastest['number'])}" in best.stdout.splitlines()[0] and "@wide" in best.stdout
    again = search_here("search", "--task", TINY, "--trials", "4", "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert pd.read_csv(out / "trials.csv")["latency_ms@wide"].notna().sum() >= 4  # restored on resume
    line = one_clear_line(search_here("search", "--task", TINY, "--trials", "5", "--out", str(out), "--resume",
                                      "--latency-profile", "wide:threads=1,batch=4"))
    assert "--latency-profile" in line
