"""Pause points: while a latency is measured on this node, the long work of its other processes waits.

The search's latency actor (``search/latency_actor.py``) touches a node-local flag file while it
measures. A worker process names that file once (``pause_at_points``); from then on every pause
point of its work waits while the file exists: each fine-tuning step, each batch of
calibration, batch-norm re-estimation and the pruning refit, each batch of the accuracy pass.
A flag older than ``QUIET_MAX_WAIT_S`` is stale (its measurer died) and is ignored. A process
that names no flag (a search's driver, ``evaluate`` called directly) never pauses.

Why more than fine-tuning steps: a scan runs a batch of cells per CPU with no fine-tuning by
default, so a cell's latency was measured while the other batch built, calibrated and scored its
cell. The scans of the 15-minute cifar10-resnet20 command read the teacher's own row at 1.16-1.49 ms
without these pause points (the teacher alone: 1.14-1.18 ms; three runs) and 1.07 ms with them
(alone: 1.05 ms; one run): suggestive only, as this machine's speed itself drifts by up to 1.85x
(benchmarks/machine_drift.py).

Example:
    >>> import tempfile
    >>> flag = Path(tempfile.mkdtemp()) / "measuring"
    >>> pause_at_points(flag)
    >>> pause_point()  # no measurement under way (no file): goes on at once
    >>> pause_at_points(None)
"""

from __future__ import annotations

import time
from pathlib import Path

QUIET_MAX_WAIT_S = 30.0  # a flag older than this is stale (its measurer died): ignore it

_flag: Path | None = None


def pause_at_points(flag: Path | None) -> None:
    """From now on, ``pause_point`` in this process waits while ``flag`` exists (None: never)."""
    global _flag
    _flag = flag


def pause_point() -> None:
    """Wait here while a latency is measured on this node (see ``pause_at_points``)."""
    if _flag is not None:
        wait_while_measuring(_flag)


def wait_while_measuring(flag: Path) -> None:
    """Wait while ``flag`` exists and is fresh."""
    while True:
        try:
            age = time.time() - flag.stat().st_mtime
        except FileNotFoundError:
            return
        if age > QUIET_MAX_WAIT_S:
            return
        time.sleep(0.005)


__all__ = ["QUIET_MAX_WAIT_S", "pause_at_points", "pause_point", "wait_while_measuring"]
