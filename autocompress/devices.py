"""Where training runs: a trial's device, mixed precision, and what a CUDA error asks of the user.

Training (teacher targets, distillation, the sensitivity scan's fine-tuning steps, built-in
teachers) runs on a GPU when one is there for it; building, export and every measurement stay
on the CPU, the deployment target. A trial trains on a GPU only when Ray assigned it one
(``--gpus-per-trial``): a search without GPUs runs exactly as it always did.

Example:
    >>> trial_device([], cuda_available=True)                  # no GPU assigned: the CPU
    device(type='cpu')
    >>> trial_device([3], cuda_available=True, visible="3")     # Ray set CUDA_VISIBLE_DEVICES=3
    device(type='cuda', index=0)
    >>> trial_device([3], cuda_available=True, visible=None)    # nothing hidden: GPU 3 itself
    device(type='cuda', index=3)
"""

from __future__ import annotations

import contextlib
import os

import torch

from autocompress.errors import UsageError, one_line

AMP_MODES = ("bf16",)
BF16_CAPABILITY = (8, 0)  # Ampere and later compute in bfloat16 natively
CPU = torch.device("cpu")


class DeviceError(RuntimeError):
    """A trial was given a GPU it cannot use (it fails with this reason; the search goes on)."""


def trial_device(assigned_gpu_ids, *, cuda_available: bool, visible: str | None = None) -> torch.device:
    """The device a trial trains on: the first GPU Ray assigned it, else the CPU.

    assigned_gpu_ids: ``ray.get_gpu_ids()`` in the trial (one id also for a fractional share).
    cuda_available: ``torch.cuda.is_available()``. visible: ``CUDA_VISIBLE_DEVICES`` (Ray sets
    it to the assigned ids, so torch numbers them from 0); None: torch sees every GPU.

    >>> trial_device(["0"], cuda_available=False)
    Traceback (most recent call last):
    ...
    autocompress.devices.DeviceError: Ray assigned GPU 0 to this trial but torch ... sees no CUDA device (a CPU-only build, or no driver); install a CUDA build of torch on the GPU nodes, or run with --gpus-per-trial 0
    >>> trial_device([1], cuda_available=True, visible="0")
    Traceback (most recent call last):
    ...
    autocompress.devices.DeviceError: Ray assigned GPU 1 to this trial but CUDA_VISIBLE_DEVICES=0 hides it; unset CUDA_VISIBLE_DEVICES on the Ray node, or start it with 'ray start --num-gpus'
    """
    ids = [str(i).strip() for i in assigned_gpu_ids]
    if not ids:
        return CPU
    first = ids[0]
    if not cuda_available:
        raise DeviceError(f"Ray assigned GPU {first} to this trial but torch {torch.__version__} sees no CUDA "
                          "device (a CPU-only build, or no driver); install a CUDA build of torch on the GPU "
                          "nodes, or run with --gpus-per-trial 0")
    if visible is None or not visible.strip():
        if not first.isdigit():
            raise DeviceError(f"Ray assigned GPU {first} to this trial, which is no GPU index and "
                              "CUDA_VISIBLE_DEVICES is unset; let Ray set CUDA_VISIBLE_DEVICES (the default)")
        return torch.device("cuda", int(first))
    shown = [v.strip() for v in visible.split(",")]
    if first not in shown:
        raise DeviceError(f"Ray assigned GPU {first} to this trial but CUDA_VISIBLE_DEVICES={visible} hides it; "
                          "unset CUDA_VISIBLE_DEVICES on the Ray node, or start it with 'ray start --num-gpus'")
    return torch.device("cuda", shown.index(first))


def current_trial_device() -> torch.device:
    """``trial_device`` of the Ray trial (or task) this code runs in; the CPU outside Ray."""
    import ray

    assigned = ray.get_gpu_ids() if ray.is_initialized() else []
    return trial_device(assigned, cuda_available=bool(assigned) and torch.cuda.is_available(),
                        visible=os.environ.get("CUDA_VISIBLE_DEVICES"))


def training_device(*, cuda_available: bool | None = None) -> torch.device:
    """Where a built-in teacher trains: the first GPU torch sees, else the CPU.

    >>> training_device(cuda_available=False), training_device(cuda_available=True)
    (device(type='cpu'), device(type='cuda', index=0))
    """
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    return torch.device("cuda", 0) if available else CPU


def describe(device: torch.device) -> str:
    """The device in words, e.g. 'cpu' or 'cuda:0 (NVIDIA H200)'."""
    if device.type != "cuda":
        return str(device)
    return f"{device} ({torch.cuda.get_device_name(device)})"


def amp_dtype(amp: str | None, device: torch.device, *, capability: tuple[int, int] | None = None
              ) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device`` (None: full precision); refused in one line
    where the device cannot do it. capability: the GPU's (major, minor); None: asked of torch.

    >>> amp_dtype(None, CPU) is None, amp_dtype("bf16", torch.device("cuda", 0), capability=(9, 0))
    (True, torch.bfloat16)
    >>> amp_dtype("bf16", CPU)
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: --amp bf16: this trial trains on the CPU, and mixed precision is for GPUs; drop --amp, or give trials a GPU share with --gpus-per-trial
    >>> amp_dtype("bf16", torch.device("cuda", 0), capability=(7, 0))
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: --amp bf16: cuda:0 (compute capability 7.0) has no bfloat16 arithmetic (needs 8.0, Ampere or later); drop --amp
    """
    if amp is None:
        return None
    if amp not in AMP_MODES:
        raise UsageError(f"--amp {amp}: unknown mode; choose one of: {', '.join(AMP_MODES)}")
    if device.type != "cuda":
        raise UsageError(f"--amp {amp}: this trial trains on the CPU, and mixed precision is for GPUs; drop --amp, "
                         "or give trials a GPU share with --gpus-per-trial")
    major, minor = capability if capability is not None else torch.cuda.get_device_capability(device)
    if (major, minor) < BF16_CAPABILITY:
        raise UsageError(f"--amp {amp}: {device} (compute capability {major}.{minor}) has no bfloat16 arithmetic "
                         f"(needs {BF16_CAPABILITY[0]}.{BF16_CAPABILITY[1]}, Ampere or later); drop --amp")
    return torch.bfloat16


def check_amp_placement(amp: str | None, gpus_per_trial: float) -> None:
    """Refuse mixed precision for a search whose trials get no GPU, before anything runs.

    >>> check_amp_placement("bf16", 0.25), check_amp_placement(None, 0)
    (None, None)
    >>> check_amp_placement("bf16", 0)
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: --amp bf16: trials train on the CPU (--gpus-per-trial 0), and mixed precision is for GPUs; drop --amp, or give trials a GPU share with --gpus-per-trial (e.g. 0.25)
    """
    if amp is not None and not gpus_per_trial > 0:
        raise UsageError(f"--amp {amp}: trials train on the CPU (--gpus-per-trial {gpus_per_trial:g}), and mixed "
                         "precision is for GPUs; drop --amp, or give trials a GPU share with --gpus-per-trial "
                         "(e.g. 0.25)")


def autocast(device: torch.device, dtype: torch.dtype | None):
    """The context a training step's forward pass runs in: autocast to ``dtype``, or nothing."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def is_out_of_memory(exc: BaseException) -> bool:
    """A GPU out-of-memory error (torch's own class, or its message from an older path)."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "CUDA out of memory" in str(exc)


def trial_error(exc: BaseException) -> str:
    """The reason a failed trial stores: the error, and for a CUDA error what to change first.

    >>> trial_error(ValueError("bad plan"))
    'ValueError: bad plan'
    >>> trial_error(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))[:98]
    'OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB; the trials sharing this GPU need'
    """
    text = f"{type(exc).__name__}: {exc}".strip()
    if is_out_of_memory(exc):
        return (f"{one_line(text)[:300]}; the trials sharing this GPU need more memory than it has: give each "
                "trial a larger share (--gpus-per-trial 0.5 instead of 0.25 runs half as many at once) or "
                "fine-tune with a smaller batch")[:1000]
    if "CUDA error" in text or "CUBLAS_STATUS" in text or "CUDNN_STATUS" in text:
        return (f"{one_line(text)[:300]}; a CUDA error on this trial's GPU: check the node's driver "
                "(nvidia-smi) and torch's CUDA build, or run with --gpus-per-trial 0")[:1000]
    return text[:1000]


def release_gpu_memory(device: torch.device) -> None:
    """Return cached blocks to the GPU after a trial (a reused worker starts its next one clean)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


__all__ = ["AMP_MODES", "DeviceError", "amp_dtype", "autocast", "check_amp_placement", "current_trial_device",
           "describe", "trial_error", "trial_device", "training_device"]
