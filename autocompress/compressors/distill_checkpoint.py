"""Fine-tuning checkpoints (``distill(..., checkpoint=path)``): the student's state dict (every
buffer, fake-quant ranges included), the optimizer's state, the step reached, the sampling RNG
and torch's RNG, saved when a fine-tuning ends and restored to continue it. Only ``steps`` may
differ from the settings that made a checkpoint; anything else that does not fit is one line.
Read with ``torch.load(weights_only=True)``: a checkpoint is never unpickled.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from autocompress.errors import UsageError, one_line

if TYPE_CHECKING:
    from autocompress.compressors.distill import DistillConfig

CHECKPOINT_FORMAT = 1
# fine-tuning settings newer than a stored checkpoint or run: what that fine-tuning did (also read by
# ``SearchSettings.from_dict``)
STORED_BEFORE = {"float_fraction": 0.0}


@dataclass
class TrainingState:
    """Everything a continued fine-tuning needs besides the structure its caller rebuilds."""

    student: nn.Module
    projection: nn.Linear | None
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    losses: list[float]

    def save(self, path: Path, config: DistillConfig) -> None:
        state = {"format": CHECKPOINT_FORMAT, "step": len(self.losses), "student": self.student.state_dict(),
                 "projection": self.projection.state_dict() if self.projection is not None else {},
                 "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                 "torch_rng": torch.get_rng_state(), "losses": torch.tensor(self.losses, dtype=torch.float64),
                 "settings": _resumable(config)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def restore(self, path: Path, config: DistillConfig) -> None:
        state = _read_checkpoint(path)
        _check_fits(path, state, self, config)
        self.student.load_state_dict(state["student"])
        if self.projection is not None:
            self.projection.load_state_dict(state["projection"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.losses = state["losses"].tolist()


def _resumable(config: DistillConfig) -> dict:
    """The settings a continued fine-tuning must share with its checkpoint: all but ``steps``."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "steps"}


def _read_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise UsageError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {one_line(exc)[:200]}); "
                         "delete it to fine-tune from the start") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"checkpoint {path} is not a fine-tuning checkpoint of format {CHECKPOINT_FORMAT}; "
                         "delete it to fine-tune from the start")
    return state


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why the fine-tuning checkpoint at ``path`` cannot be continued from (missing, unreadable,
    not a checkpoint), or None when it can be read."""
    if not Path(path).is_file():
        return f"checkpoint {path} is missing"
    try:
        _read_checkpoint(Path(path))
    except UsageError as exc:
        return str(exc).partition("; delete it")[0]
    return None


def _mismatch(saved: dict, current: dict) -> str | None:
    """The first difference between two state dicts' names and shapes, in words; None if none."""
    for name in sorted(saved.keys() ^ current.keys()):
        where = "checkpoint only" if name in saved else "student only"
        return f"{name} is in the {where}"
    for name, tensor in current.items():
        if tuple(saved[name].shape) != tuple(tensor.shape):
            return f"{name} is {tuple(saved[name].shape)} there, {tuple(tensor.shape)} here"
    return None


def _check_fits(path: Path, state: dict, current: TrainingState, config: DistillConfig) -> None:
    projection = current.projection.state_dict() if current.projection is not None else {}
    problem = _mismatch(state["student"], current.student.state_dict()) or _mismatch(state["projection"], projection)
    if problem:
        raise UsageError(f"checkpoint {path} does not fit the student ({problem}); rebuild the student from "
                         "the plan that made it, or delete the checkpoint to fine-tune from the start")
    settings = _resumable(config)
    stored = {**STORED_BEFORE, **state["settings"]}
    changed = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
    if changed:
        name, (before, now) = next(iter(changed.items()))
        raise UsageError(f"checkpoint {path} was fine-tuned with {name}={before!r}, not {now!r}; continue it with "
                         "the same settings (only steps may grow), or delete it to fine-tune from the start")
    if int(state["step"]) > config.steps:
        raise UsageError(f"checkpoint {path} has {int(state['step'])} steps, more than steps={config.steps}; "
                         "continue it to at least as many steps")
