"""A search under a latency profile (#30): one setting, stored in run.json and restored on resume,
that every latency of the search is measured under (the teacher's, the trials' on a worker or on
the latency actor, the scan's, and best --export's re-measure). Which profile a measurement used
is shown without timing anything: a file with a fixed batch of 1 is refused at any other batch,
so a meter that refuses it at batch 4 is the profile's."""

import json

import pytest
import torch
from torch import nn

from autocompress.errors import UsageError
from autocompress.evaluators.latency_profile import LatencyProfile
from autocompress.search.worker import Job, LatencyActor, job_latency, remote_latency
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
