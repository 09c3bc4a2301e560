"""Where a trial trains: the device follows what Ray assigned (every case of the decision), mixed
precision is refused where it cannot run, and a CUDA error's reason says what to change."""

import json
import os
import subprocess
import sys

import pytest
import torch

from autocompress.devices import (CPU, DeviceError, amp_dtype, check_amp_placement, trial_device, trial_error,
                                  training_device)
from autocompress.task import UsageError
from tests.conftest import ROOT

CUDA0 = torch.device("cuda", 0)


@pytest.mark.parametrize("assigned, cuda, visible, expected", [
    ([], False, None, CPU),                       # no GPU asked for, none there: today's CPU path
    ([], True, None, CPU),                        # a GPU there but none assigned: the CPU, never a GPU it does not hold
    ([], True, "0,1", CPU),
    ([0], True, "0", CUDA0),                      # Ray's usual: CUDA_VISIBLE_DEVICES = the assigned id
    (["2"], True, "2", CUDA0),                    # ids as strings
    ([3], True, "1,3", torch.device("cuda", 1)),  # several visible: the position of the assigned one
    ([1, 2], True, "1,2", CUDA0),                 # more than one assigned: the first
    ([3], True, None, torch.device("cuda", 3)),   # nothing hidden: the GPU's own index
    ([3], True, "", torch.device("cuda", 3)),
])
def test_the_trial_device_follows_what_ray_assigned(assigned, cuda, visible, expected):
    assert trial_device(assigned, cuda_available=cuda, visible=visible) == expected


@pytest.mark.parametrize("assigned, cuda, visible, words", [
    ([0], False, "0", "sees no CUDA device (a CPU-only build, or no driver)"),
    ([0], False, None, "--gpus-per-trial 0"),
    ([1], True, "0", "CUDA_VISIBLE_DEVICES=0 hides it"),
    (["GPU-8f3c"], True, None, "which is no GPU index"),
])
def test_a_gpu_the_trial_cannot_use_is_an_error_in_one_line_never_a_silent_cpu(assigned, cuda, visible, words):
    with pytest.raises(DeviceError) as caught:
        trial_device(assigned, cuda_available=cuda, visible=visible)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_teachers_train_on_the_gpu_torch_sees_else_the_cpu():
    assert training_device(cuda_available=True) == CUDA0
    assert training_device(cuda_available=False) == CPU
    assert training_device() == (CUDA0 if torch.cuda.is_available() else CPU)


def test_amp_is_refused_on_the_cpu_and_on_gpus_without_bfloat16_in_one_line():
    assert amp_dtype(None, CPU) is None and amp_dtype(None, CUDA0, capability=(6, 0)) is None
    assert amp_dtype("bf16", CUDA0, capability=(8, 0)) is torch.bfloat16
    for device, capability, words in ((CPU, None, "trains on the CPU"), (CUDA0, (7, 5), "compute capability 7.5")):
        with pytest.raises(UsageError) as caught:
            amp_dtype("bf16", device, capability=capability)
        assert words in str(caught.value) and "drop --amp" in str(caught.value)
    with pytest.raises(UsageError, match="unknown mode"):
        amp_dtype("fp8", CUDA0, capability=(9, 0))
    check_amp_placement("bf16", 0.25)
    with pytest.raises(UsageError, match=r"--gpus-per-trial 0\)"):
        check_amp_placement("bf16", 0.0)


def test_an_out_of_memory_error_says_what_to_change_and_other_errors_stay_as_they_were():
    oom = trial_error(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nmore text"))
    assert oom.startswith("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. more text; ")
    assert "--gpus-per-trial 0.5 instead of 0.25" in oom and "smaller batch" in oom and "\n" not in oom
    cuda = trial_error(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert "nvidia-smi" in cuda and "--gpus-per-trial 0" in cuda
    plain = ValueError("x" * 2000)
    assert trial_error(plain) == f"ValueError: {plain}"[:1000]


RAY_PROBE = r"""
import json, os, ray
from autocompress.devices import DeviceError, current_trial_device, trial_device
ray.init(address="local", num_cpus=1, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)

def probe():
    ids, visible = ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        here = str(current_trial_device())
    except DeviceError as exc:
        here = "DeviceError: " + str(exc)
    return {"ids": [str(i) for i in ids], "visible": visible, "here": here,
            "with_cuda": str(trial_device(ids, cuda_available=True, visible=visible))}

shares = [ray.remote(num_gpus=0.25, num_cpus=0)(probe).remote() for _ in range(4)]
none = ray.remote(num_gpus=0, num_cpus=0)(probe).remote()
print(json.dumps({"shares": ray.get(shares), "none": ray.get(none)}))
"""


@pytest.mark.slow
def test_real_ray_gpu_shares_reach_the_device_decision():
    """Ray told it has one GPU (there is none here): four 0.25 shares each get GPU 0 through
    ray.get_gpu_ids and CUDA_VISIBLE_DEVICES, which a CUDA machine would train on as cuda:0; this
    CPU-only torch refuses them in one line instead of training on the CPU unnoticed."""
    proc = subprocess.run([sys.executable, "-c", RAY_PROBE], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    for share in seen["shares"]:
        assert share["ids"] == ["0"] and share["visible"] == "0" and share["with_cuda"] == "cuda:0"
        if not torch.cuda.is_available():
            assert share["here"].startswith("DeviceError: Ray assigned GPU 0 to this trial but torch")
    assert seen["none"]["ids"] == [] and seen["none"]["here"] == "cpu" and seen["none"]["with_cuda"] == "cpu"
