"""Task: what a user hands autocompress — a trained teacher, its data and its metric.

Built-in tasks are looked up by name (``autocompress tasks`` lists them). A user's own task is
a factory ``package.module:function`` returning a Task, so the CLI can load it and workers on
other machines can rebuild it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import TensorDataset
    >>> x, y = torch.randn(12, 4), torch.arange(12) % 3
    >>> data = TensorDataset(x, y)
    >>> task = Task(name="toy", teacher=nn.Linear(4, 3), train=data, val=data, test=data,
    ...             example_inputs=x[:1])
    >>> task.num_examples("val")
    12
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import itertools
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from autocompress.canonical import explicit_layers
from autocompress.errors import UsageError, one_line
from autocompress.model_io import Inputs, call, check_inputs, class_axis, describe, output_tensor, rows


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of class logits (N, C) against integer labels (N,); of per-token logits
    (N, tokens, C) against labels (N, tokens), over every token; of per-pixel logits (N, C, H, W)
    against labels (N, H, W), over every pixel (``model_io.class_axis``).

    >>> accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
    0.5
    """
    logits, labels = np.asarray(logits), np.asarray(labels)
    return float((logits.argmax(axis=class_axis(logits.shape, labels.shape)) == labels).mean())


@dataclass(frozen=True, kw_only=True)
class Task:
    """A trained teacher with its data.

    name: short identifier used in run directories and reports.
    teacher: the trained model (eval mode is set by autocompress).
    train, val, test: map-style datasets of (input, label). The search sees train and val
        only; test is kept for the final report of a chosen model.
    example_inputs: one batch of size 1, used for tracing, export and latency: a tensor
        (``teacher(x)``), a tuple of tensors (``teacher(*x)``) or a dict of tensors
        (``teacher(**x)``, e.g. ``input_ids`` and ``attention_mask``); the splits' inputs take
        the same form.
    metric: f(outputs, labels) -> float, higher is better (default: top-1 accuracy). The
        outputs are the teacher's output tensor (a tuple's first element, or ``.logits``).
        Integer labels are classes: candidates are distilled from the teacher's soft targets;
        floating-point labels are regression targets: distilled by mean squared error (give
        a metric such as negative MSE).
    blocks: names of residual blocks a student may drop (input shape == output shape); blocks
        with the same parent module form a stage, and the student keeps the first k of a stage.
    description: one line for ``autocompress tasks``.
    distill_lr: learning rate for fine-tuning candidates when none is given (a pretrained
        network usually wants a smaller one than the default 2e-3).
    augment: training augmentation for fine-tuning candidates, or None: ``augment(x, generator)``
        takes a batch of inputs (as the train split gives them, stacked) and returns a batch of
        the same shape, drawing all its randomness from ``generator`` (so a seeded fine-tuning
        is repeatable). The teacher's soft targets are then computed on the augmented batch.
        Example: random crops and flips of images (the CIFAR tasks).
    """

    name: str
    teacher: nn.Module
    train: Dataset
    val: Dataset
    test: Dataset
    example_inputs: Inputs
    metric: Callable[[np.ndarray, np.ndarray], float] = accuracy
    blocks: tuple[str, ...] = ()
    description: str = ""
    recipe: dict = field(default_factory=dict)  # how the task was built; recorded in run.json
    distill_lr: float | None = None
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    def __post_init__(self):
        if not isinstance(self.teacher, nn.Module):
            raise UsageError(f"task {self.name!r}: teacher must be a torch.nn.Module, got {type(self.teacher).__name__}")
        problem = check_inputs(self.example_inputs)
        if problem:
            raise UsageError(f"task {self.name!r}: {problem}; give one example: a tensor, or a tuple or dict of "
                             "tensors (as the model takes them), each with batch size 1")
        if isinstance(self.example_inputs, list):
            object.__setattr__(self, "example_inputs", tuple(self.example_inputs))
        try:
            explicit_layers(self.teacher, self.example_inputs)
        except Exception:  # the teacher's own forward failing: check_teacher_runs says so in one line
            pass
        for split in ("train", "val", "test"):
            if self.num_examples(split) == 0:
                raise UsageError(f"task {self.name!r}: the {split} split is empty; give it examples")
        modules = dict(self.teacher.named_modules())
        missing = [b for b in self.blocks if b not in modules]
        if missing:
            raise UsageError(f"task {self.name!r}: blocks {missing} are not modules of the teacher; "
                             "use names from teacher.named_modules()")
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if self.augment is not None and not callable(self.augment):
            raise UsageError(f"task {self.name!r}: augment must be a function (batch, generator) -> batch or None, "
                             f"got {type(self.augment).__name__}")

    def num_examples(self, split: str) -> int:
        return len(getattr(self, split))


BUILTIN_TASK_SPECS = {  # name -> factory, loaded the way a user's package.module:function is
    "digits": "autocompress.tasks.digits:make_digits_task",
    "mnist-lenet5": "autocompress.tasks.mnist:make_mnist_task",
    "cifar10-resnet20": "autocompress.tasks.cifar:make_resnet20_task",
    "cifar10-resnet56": "autocompress.tasks.cifar:make_resnet56_task",
    "cifar10-mobilenetv2": "autocompress.tasks.mobilenet:make_mobilenetv2_task",
    "sst2-transformer": "autocompress.tasks.sst2:make_sst2_task",
    "sst2-minilm": "autocompress.tasks.minilm:make_minilm_task",
    "sst2-minilm-hf": "autocompress.tasks.minilm_hf:make_minilm_hf_task",
}

_supplied: contextvars.ContextVar[dict | None] = contextvars.ContextVar("supplied_teacher_state", default=None)


@contextlib.contextmanager
def supplied_teacher(state: dict | None):
    """Within this block, built-in tasks use ``state`` as their teacher's weights instead of their
    cache or training (``tasks.cache.cached_weights`` asks ``supplied_teacher_state``): a worker
    rebuilding a task gets the driver's teacher, never trains its own."""
    token = _supplied.set(state)
    try:
        yield
    finally:
        _supplied.reset(token)


def supplied_teacher_state() -> dict | None:
    """The teacher weights supplied by the enclosing ``supplied_teacher`` block, if any."""
    return _supplied.get()


def load_task(spec: str, *, data_dir: str | None = None, teacher_state: dict | None = None) -> Task:
    """Build a task from a built-in name or a ``package.module:function`` factory.

    The factory may accept a ``data_dir`` keyword. ``teacher_state`` (a state dict) replaces the
    teacher's weights, and built-in tasks then skip training (Ray workers get the driver's
    teacher this way). The teacher is checked by running it on the task's example inputs;
    every problem is a UsageError naming the fix, a factory that calls ``sys.exit`` included.

    >>> load_task("no-such-task")
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: unknown task 'no-such-task'; built-in tasks: digits, mnist-lenet5, cifar10-resnet20, cifar10-resnet56, cifar10-mobilenetv2, sst2-transformer, sst2-minilm, sst2-minilm-hf (or give package.module:function)
    """
    if spec in BUILTIN_TASK_SPECS:
        factory = import_factory(BUILTIN_TASK_SPECS[spec])
    elif ":" in spec:
        factory = import_factory(spec)
    else:
        raise UsageError(f"unknown task {spec!r}; built-in tasks: {', '.join(BUILTIN_TASK_SPECS)} "
                         "(or give package.module:function)")
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise UsageError(f"--data-dir {data_dir}: no such folder; give the folder that holds the data sets "
                         "(README: 'Built-in tasks on real data'), or leave --data-dir out")
    kwargs = {"data_dir": data_dir} if "data_dir" in inspect.signature(factory).parameters else {}
    with _factory_errors(spec), supplied_teacher(teacher_state):
        task = factory(**kwargs)
    if not isinstance(task, Task):
        raise UsageError(f"task factory {spec!r} returned {type(task).__name__}, not autocompress.Task; "
                         "return Task(name=..., teacher=..., train=..., val=..., test=..., example_inputs=...)")
    if teacher_state is not None:
        task.teacher.load_state_dict(teacher_state)
    check_teacher_runs(task)
    return task


@contextlib.contextmanager
def _ctrl_c_watch():
    """Yields a list that records each SIGINT (Ctrl-C) arriving within the block, which is then
    handled as before; yields None where that cannot be watched (not the main thread, or SIGINT
    not handled by Python code)."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield None
        return
    seen: list[int] = []

    def record(signum, frame):
        seen.append(signum)
        previous(signum, frame)

    signal.signal(signal.SIGINT, record)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _factory_errors(spec: str):
    """Whatever a task factory raises becomes one UsageError. ``sys.exit`` in a factory would end
    autocompress (or a Ray worker) silently, so it is reported as a fault of the factory. A
    KeyboardInterrupt the factory raised itself is reported too; one from a real Ctrl-C goes on
    as a KeyboardInterrupt: the user asked to stop, and nothing is wrong with the factory."""
    with _ctrl_c_watch() as ctrl_c:
        try:
            yield
        except UsageError:
            raise
        except KeyboardInterrupt as exc:
            if ctrl_c is None or ctrl_c:
                raise
            raise UsageError(f"task factory {spec!r} raised KeyboardInterrupt (no Ctrl-C was pressed); "
                             "raise an ordinary exception for a problem, or return the Task") from exc
        except SystemExit as exc:
            raise UsageError(f"task factory {spec!r} called sys.exit({exc.code!r}); raise an exception for a "
                             "problem instead, or return the Task: the factory runs inside autocompress") from exc
        except Exception as exc:  # the user's code: report it in one line
            raise UsageError(f"task factory {spec!r} failed: {type(exc).__name__}: {one_line(exc)}") from exc


def import_factory(spec: str) -> Callable[..., Task]:
    """The function a ``package.module:function`` spec names.

    >>> import_factory("autocompress.tasks.digits:make_digits_task").__name__
    'make_digits_task'
    """
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        raise UsageError(f"cannot import {module_name!r} for --task {spec}: {type(exc).__name__}: {one_line(exc)}; "
                         "check the module path and that its folder is on PYTHONPATH") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UsageError(f"{module_name!r} has no function {attr!r}; --task takes package.module:function")
    return factory


def check_teacher_runs(task: Task) -> None:
    """Run the teacher on its example inputs; a failure is the user's to fix."""
    task.teacher.eval()
    try:
        with torch.no_grad():
            out = call(task.teacher, task.example_inputs)
    except Exception as exc:
        raise UsageError(f"task {task.name!r}: the teacher's forward failed on example_inputs "
                         f"{describe(task.example_inputs)}: {type(exc).__name__}: {one_line(exc)}") from exc
    try:
        tensor = output_tensor(out)
    except ValueError as exc:
        raise UsageError(f"task {task.name!r}: {exc}") from None
    if tensor.dim() == 0 or tensor.shape[0] != 1:
        raise UsageError(f"task {task.name!r}: the teacher's output must have the batch in its first dimension "
                         f"(size 1 for example_inputs), got shape {tuple(tensor.shape)}")
    if not torch.is_floating_point(tensor):
        raise UsageError(f"task {task.name!r}: the teacher's output must be floating point (logits or values), "
                         f"got {tensor.dtype}")
    _check_finite_teacher(task, tensor)
    _check_batch_of_two(task)


def _check_finite_teacher(task: Task, outputs: torch.Tensor) -> None:
    """NaN or infinite weights (a training run that diverged) or outputs: refused, not searched."""
    tensors = itertools.chain(task.teacher.named_parameters(), task.teacher.named_buffers())
    bad = next((name for name, t in tensors if torch.is_floating_point(t) and not torch.isfinite(t).all()), None)
    if bad is not None:
        raise UsageError(f"task {task.name!r}: the teacher's {bad} holds NaN or infinite values (did its training "
                         "diverge?); load finite weights before compressing it")
    if not torch.isfinite(outputs).all():
        raise UsageError(f"task {task.name!r}: the teacher's outputs on example_inputs hold NaN or infinite values; "
                         "fix the model (or its inputs) before compressing it")


def _check_batch_of_two(task: Task) -> None:
    """The teacher must take a batch of any size: training, calibration and evaluation use batches."""
    two = rows(task.example_inputs, torch.tensor([0, 0]))
    try:
        with torch.no_grad():
            size = output_tensor(call(task.teacher, two)).shape[0]
    except Exception as exc:
        raise UsageError(f"task {task.name!r}: the teacher fails on a batch of 2 (example_inputs twice): "
                         f"{type(exc).__name__}: {one_line(exc)[:200]}; autocompress trains and evaluates in "
                         "batches, so make the model accept any batch size") from None
    if size != 2:
        raise UsageError(f"task {task.name!r}: on a batch of 2 the teacher's output has batch size {size}; its "
                         "first dimension must follow the input's batch")
