"""Latency profiles (threads, batch, execution provider) and the ``latency`` command, on real
ONNX files in a real ONNX Runtime; every refusal is one line before anything is measured."""

import re

import onnxruntime as ort
import pytest
import torch
from torch import nn

from autocompress.evaluators.export import export_onnx
from autocompress.evaluators.latency_profile import LatencyProfile
from tests.conftest import one_clear_line

LINE = re.compile(r"(?P<ms>[0-9.]+) ms per run \(interquartile range [0-9.]+ ms\) at batch (?P<batch>\d+), "
                  r"(?P<threads>\d+) threads?, provider (?P<provider>\w+)(; (?P<items>[0-9,]+) items/s)?$")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("latency") / "model.onnx"
    torch.manual_seed(0)
    export_onnx(nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)), torch.randn(1, 16), str(path))
    return path


def test_the_latency_command_measures_a_file_under_a_profile_and_gives_throughput_for_a_batch(model, cli):
    one = cli("latency", model, "--runs", "50")
    assert one.returncode == 0, one.stderr
    single = LINE.search(one.stdout.strip())
    assert single and single["batch"] == "1" and single["threads"] == "1" and single["items"] is None
    many = cli("latency", model, "--latency-threads", "2", "--latency-batch", "16", "--runs", "50")
    assert many.returncode == 0, many.stderr
    batched = LINE.search(many.stdout.strip())
    assert batched["batch"] == "16" and batched["threads"] == "2" and batched["provider"] == "cpu"
    items = float(batched["items"].replace(",", ""))
    assert items == pytest.approx(16 * 1000 / float(batched["ms"]), rel=0.01)  # per run, 16 rows


def test_a_batch_really_feeds_that_many_rows(model):
    profile = LatencyProfile(batch=5)
    feed = profile.feed(profile.session(str(model)))
    assert [a.shape for a in feed.values()] == [(5, 16)]


def test_the_inputs_of_a_task_are_used_when_given(tmp_path, cli, tiny_task):
    path = tmp_path / "tiny.onnx"
    export_onnx(tiny_task.teacher, tiny_task.example_inputs, str(path))
    result = cli("latency", path, "--task", "tests.fixtures.user_tasks:tiny", "--latency-batch", "3", "--runs", "20")
    assert result.returncode == 0 and LINE.search(result.stdout.strip())["batch"] == "3", result.stderr


def _fixed_batch_model(path):
    torch.onnx.export(nn.Linear(16, 4), (torch.randn(1, 16),), str(path), input_names=["input"], dynamo=False)
    return path


@pytest.mark.parametrize("args, says", [
    (["--latency-provider", "quantum"], "--latency-provider 'quantum' is unknown; choose one of: cpu"),
    (["--latency-batch", "0"], "--latency-batch must be a whole number at least 1, got 0"),
    (["--latency-threads", "-2"], "--latency-threads must be a whole number at least 1"),
    (["--runs", "0"], "--runs must be at least 1"),
])
def test_a_bad_profile_is_one_line(model, cli, args, says):
    assert says in one_clear_line(cli("latency", model, *args))


def test_a_missing_file_a_file_that_is_not_onnx_and_a_fixed_batch_are_one_line_each(model, tmp_path, cli):
    assert "is not a file" in one_clear_line(cli("latency", tmp_path / "nope.onnx"))
    (tmp_path / "notes.onnx").write_text("not a model")
    assert "cannot load notes.onnx" in one_clear_line(cli("latency", tmp_path / "notes.onnx"))
    fixed = _fixed_batch_model(tmp_path / "fixed.onnx")
    line = one_clear_line(cli("latency", fixed, "--latency-batch", "4"))
    assert "has a fixed batch of 1, so it cannot be measured at batch 4" in line
    assert cli("latency", fixed, "--runs", "10").returncode == 0  # at its own batch it is measured


@pytest.mark.skipif("OpenVINOExecutionProvider" in ort.get_available_providers(), reason="OpenVINO is installed")
def test_a_provider_that_is_not_installed_is_refused_with_how_to_install_it(model, cli):
    line = one_clear_line(cli("latency", model, "--latency-provider", "openvino"))
    assert "is not installed in this ONNX Runtime" in line and "pip install onnxruntime-openvino" in line


@pytest.mark.skipif("AzureExecutionProvider" not in ort.get_available_providers(), reason="no Azure provider here")
def test_a_provider_that_hands_every_node_to_the_cpu_is_refused_not_measured_as_the_cpu(model, cli):
    """ONNX Runtime's Azure provider is installed with every CPU build and runs no local node: a
    latency taken with it would be the CPU's under another name."""
    line = one_clear_line(cli("latency", model, "--latency-provider", "azure"))
    assert "ran none of the nodes of model.onnx" in line and "CPUExecutionProvider" in line
