"""The teacher cache: trained once, reused while valid, rebuilt (never trusted) when corrupt."""

import torch
from torch import nn

from autocompress.task import supplied_teacher
from autocompress.tasks.cache import cached_weights


def _build():
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def _trainer(calls):
    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(0.5)
    return train


def test_trained_once_then_reused(tmp_path):
    calls = []
    first = cached_weights(_build, train=_trainer(calls), recipe={"r": 1}, name="toy", cache_dir=tmp_path)
    again = cached_weights(_build, train=_trainer(calls), recipe={"r": 1}, name="toy", cache_dir=tmp_path)
    assert calls == [1] and torch.equal(first.weight, again.weight) and again.weight[0, 0].item() == 0.5
    cached_weights(_build, train=_trainer(calls), recipe={"r": 2}, name="toy", cache_dir=tmp_path)
    assert calls == [1, 1]  # another recipe is another cache entry


def test_a_corrupt_cache_is_rebuilt_not_trusted(tmp_path):
    calls = []
    cached_weights(_build, train=_trainer(calls), recipe={"r": 1}, name="toy", cache_dir=tmp_path)
    (path,) = tmp_path.glob("toy-*.pt")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip bits: the checksum no longer matches
    path.write_bytes(bytes(data))
    model = cached_weights(_build, train=_trainer(calls), recipe={"r": 1}, name="toy", cache_dir=tmp_path)
    assert calls == [1, 1] and model.weight[0, 0].item() == 0.5
    calls.clear()
    cached_weights(_build, train=_trainer(calls), recipe={"r": 1}, name="toy", cache_dir=tmp_path)
    assert calls == []  # the rebuilt file is valid again


def test_supplied_weights_skip_cache_and_training(tmp_path):
    calls = []
    state = {"weight": torch.full((2, 3), 7.0), "bias": torch.zeros(2)}
    with supplied_teacher(state):
        model = cached_weights(_build, train=_trainer(calls), recipe={"r": 1}, name="toy", cache_dir=tmp_path)
    assert calls == [] and model.weight[0, 0].item() == 7.0 and not list(tmp_path.iterdir())


TRAIN_SLOWLY = r"""
import sys, time, torch
from torch import nn
from autocompress.tasks.cache import cached_weights

def train(model):
    with open(sys.argv[2], "a") as log:
        log.write("trained\n")
    time.sleep(1.0)  # long enough for the other process to arrive meanwhile
    with torch.no_grad():
        model.weight.fill_(0.25)

model = cached_weights(lambda: nn.Linear(3, 2), train=train, recipe={"r": 1}, name="toy", cache_dir=sys.argv[1])
print(model.weight[0, 0].item())
"""


def test_two_processes_that_need_the_same_teacher_at_once_train_it_once(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    log = tmp_path / "trainings.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", TRAIN_SLOWLY, str(tmp_path / "cache"), str(log)],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [proc.communicate(timeout=120)[0].strip() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert log.read_text() == "trained\n" and outputs == ["0.25", "0.25"]  # the second waited and loaded it
