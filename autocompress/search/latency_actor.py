"""The one Ray actor that measures every latency of a search, one file at a time; it imports no torch.

It receives a file's bytes and the example inputs as NumPy arrays (input name -> one row), so
its process holds ONNX Runtime and NumPy only (torch would cost it ~4 CPU-seconds and ~250 MB to
import). While it measures, it touches a flag file in /dev/shm (``quiet_flag``): the trials and
scan cells on the same node wait at their next pause point (``autocompress.pause``: a fine-tuning
step, a calibration or accuracy batch).
A search starts the actor (``teacher_latency.latency_actor``) and measures through it
(``worker.remote_latency``); tests/search/test_latency_profiles.py runs it on real Ray.

Example:
    >>> quiet_flag("my-run").name
    'autocompress-measuring-my-run'
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

import ray

from autocompress.evaluators.latency_profile import LatencyProfile


def quiet_flag(run_id: str) -> Path:
    """The node-local flag file that pauses the work of ``run_id``'s trials and scan cells while it exists."""
    folder = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return folder / f"autocompress-measuring-{run_id}"


def node_name() -> str:
    """Host name and the first characters of the Ray node id (two nodes can share a host)."""
    try:
        node = ray.get_runtime_context().get_node_id()[:8]
    except Exception:
        node = "local"
    return f"{socket.gethostname()}/{node}"


@ray.remote(num_cpus=0)
class LatencyActor:
    """Measures ONNX files one at a time on the node it is placed on; trainers there pause."""

    def __init__(self, run_id: str):
        os.environ["OMP_NUM_THREADS"] = "1"
        self.flag = quiet_flag(run_id)

    def for_run(self, run_id: str) -> None:
        """Measure for another search from now on (a later search of the same process reuses
        this actor rather than start a process of its own)."""
        self.flag = quiet_flag(run_id)

    def node(self) -> str:
        return node_name()

    def measure(self, model_bytes: bytes, example: dict, profile: LatencyProfile | None = None
                ) -> tuple[float, float]:
        """(median, interquartile range) in ms of the file ``model_bytes`` under ``profile``
        (default: batch 1, one thread, the CPU), fed ``example`` (input name -> array)."""
        with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
            f.write(model_bytes)
            f.flush()
            self.flag.touch()
            try:
                time.sleep(0.02)  # let trainers reach the end of their current step
                measured = (profile or LatencyProfile()).measure(f.name, example=example)
                return measured["latency_ms"], measured["latency_spread_ms"]
            finally:
                self.flag.unlink(missing_ok=True)
