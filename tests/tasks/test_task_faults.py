"""A user's task that misbehaves gets one clear line naming the fix (exit 2, no traceback):
a metric that raises or returns NaN, a factory that calls sys.exit or raises KeyboardInterrupt,
a teacher that runs no layer to compress. A real Ctrl-C is not the factory's fault."""

import signal

import pandas as pd
import pytest
import torch
from torch import nn

from autocompress.spaces.layers import discover, find_head
from autocompress.task import UsageError, load_task
from tests.conftest import one_clear_line, run_cli, search_here

FIXTURES = "tests.fixtures.user_tasks"


@pytest.mark.slow
@pytest.mark.parametrize("factory,expected", [
    ("metric_raises", "the task's metric macro_f1 raised ZeroDivisionError: no positive labels in this split"),
    ("metric_nan", "the task's metric nan_score returned nan, not a finite number"),
    ("metric_not_a_number", "the task's metric text_score returned str 'high', not a number"),
])
def test_a_metric_that_fails_on_the_teacher_is_the_users_to_fix(tmp_path, factory, expected):
    line = one_clear_line(search_here("search", "--task", f"{FIXTURES}:{factory}", "--trials", "1", "--steps", "1",
                                      "--out", str(tmp_path / "run")))
    assert expected in line and "on the teacher's validation outputs" in line and "make Task.metric" in line


@pytest.mark.slow
def test_a_metric_that_fails_on_a_candidate_fails_that_trial_only(tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", f"{FIXTURES}:metric_fails_on_candidates", "--trials", "2", "--steps", "2",
                       "--no-sensitivity", "--out", str(out), "--no-warm-start")
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(out / "trials.csv")
    failed = trials[trials["state"] == "FAIL"]
    assert len(trials) == 2 and len(failed) >= 1
    assert failed["error"].str.contains("the task's metric TeacherOnlyMetric raised ValueError").all()


@pytest.mark.slow
@pytest.mark.parametrize("factory,expected", [
    ("exits", f"task factory '{FIXTURES}:exits' called sys.exit(3); raise an exception"),
    ("interrupts", f"task factory '{FIXTURES}:interrupts' raised KeyboardInterrupt (no Ctrl-C was pressed)"),
])
def test_a_factory_that_exits_or_interrupts_itself_isone_clear_line(factory, expected):
    line = one_clear_line(run_cli("inspect", "--task", f"{FIXTURES}:{factory}"))
    assert expected in line


def test_ctrl_c_while_a_factory_runs_stops_loading_and_is_not_blamed_on_the_factory():
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even under nohup
    try:
        with pytest.raises(KeyboardInterrupt):
            load_task(f"{FIXTURES}:ctrl_c")
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.slow
def test_a_teacher_whose_output_layer_is_a_convolution_is_searched(tmp_path):
    proc = run_cli("inspect", "--task", f"{FIXTURES}:conv_head")
    assert proc.returncode == 0, proc.stderr
    assert "classes (outputs)" in proc.stdout and "never pruned" in proc.stdout
    out = tmp_path / "run"
    proc = search_here("search", "--task", f"{FIXTURES}:conv_head", "--trials", "2", "--steps", "1", "--out", str(out),
                       "--no-sensitivity")
    assert proc.returncode == 0, proc.stderr
    assert (pd.read_csv(out / "trials.csv")["state"] == "COMPLETE").sum() == 2


def test_the_output_layer_is_the_one_giving_the_output():
    softmaxed = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1))
    assert find_head(softmaxed, torch.randn(1, 4)) == "2"
    assert discover(softmaxed, torch.randn(1, 4)).head == "2"
    pooled = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert find_head(pooled, torch.randn(1, 1, 8, 8)) == "2"   # a 1x1 convolution with pooling after it
    with pytest.raises(UsageError, match="runs no Conv1d, Conv2d or Linear layer"):
        find_head(nn.Sequential(nn.Flatten()), torch.randn(1, 4))
