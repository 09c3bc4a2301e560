"""Pause points (``autocompress.pause``): while the latency actor's flag file exists, the long work
of a worker process waits at its next batch, not only at fine-tuning steps."""

import threading

import torch
from torch import nn

from autocompress.compressors.fold import recalibrate_batchnorm
from autocompress.pause import pause_at_points


def test_batch_norm_re_estimation_waits_while_a_latency_is_measured_and_goes_on_after(tmp_path):
    flag = tmp_path / "measuring"
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    done = threading.Event()
    flag.touch()
    pause_at_points(flag)
    try:
        worker = threading.Thread(target=lambda: (recalibrate_batchnorm(net, [torch.randn(4, 1, 3, 3)]), done.set()))
        worker.start()
        assert not done.wait(0.5)  # held at its first batch while the flag exists
        flag.unlink()
        assert done.wait(30)
        worker.join()
    finally:
        pause_at_points(None)
    assert bool(net[1].running_mean.abs().sum() > 0)
