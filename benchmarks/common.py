"""Helpers shared by the benchmark scripts: run the CLI as a user would, sample memory."""

import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}


def wait_until_quiet(*, timeout_s: float = 120.0, busy_percent: float = 15.0) -> float:
    """Wait until no Ray process of an earlier search is left and the CPUs are idle (at most
    ``timeout_s``), so a latency measured next is not measured on a busy machine. Returns the
    seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        ray_left = False
        for proc in psutil.process_iter(["cmdline"]):
            try:
                cmd = " ".join(proc.info["cmdline"] or [])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            ray_left |= "raylet" in cmd or "gcs_server" in cmd or "ray::" in cmd
        if not ray_left and psutil.cpu_percent(interval=1.0) < busy_percent:
            break
        time.sleep(1.0)
    return time.perf_counter() - start


def plain_json(value):
    """A NumPy scalar as the Python value it holds (a NumPy bool as a JSON boolean, not the string
    "False"); anything else JSON cannot hold is an error, never silently a string.

    >>> import numpy as np
    >>> json.dumps({"ok": np.bool_(False), "n": np.int64(3)}, default=plain_json)
    '{"ok": false, "n": 3}'
    """
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON: convert it before writing a result")


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=plain_json, allow_nan=False) + "\n")
    return path


class MemorySampler:
    """Peak resident memory of a driver process and of the Ray processes, sampled every 0.2 s."""

    def __init__(self, driver_pid: int):
        self.driver_pid, self.peaks, self.names = driver_pid, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            for proc in psutil.process_iter(["pid", "cmdline", "memory_info"]):
                try:
                    cmd = " ".join(proc.info["cmdline"] or [])
                    if proc.info["pid"] == self.driver_pid or "ray::" in cmd or "raylet" in cmd or "gcs_server" in cmd:
                        rss = proc.info["memory_info"].rss
                        self.peaks[proc.info["pid"]] = max(self.peaks.get(proc.info["pid"], 0), rss)
                        self.names[proc.info["pid"]] = "driver" if proc.info["pid"] == self.driver_pid else cmd[:60]
                except (psutil.NoSuchProcess, psutil.AccessDenied, TypeError):
                    pass
            time.sleep(0.2)

    def summary(self) -> dict:
        mb = lambda b: round(b / 2**20, 1)  # noqa: E731
        trial_workers = {p: v for p, v in self.peaks.items() if "ImplicitFunc" in self.names[p]}
        return {
            "driver_peak_mb": mb(self.peaks.get(self.driver_pid, 0)),
            "trial_worker_peaks_mb": sorted(mb(v) for v in trial_workers.values()),
            "latency_actor_peak_mb": max([mb(v) for p, v in self.peaks.items() if "LatencyActor" in self.names[p]],
                                         default=None),
            "ray_system_processes_mb": {self.names[p].split()[0].rsplit("/", 1)[-1]: mb(v)
                                        for p, v in self.peaks.items() if "raylet" in self.names[p]
                                        or "gcs_server" in self.names[p]},
        }


def run_search(args: list[str], *, env: dict | None = None, sample_memory: bool = False) -> dict:
    """Run ``autocompress search ARGS`` and return wall time, run.json, trials and memory."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "autocompress.cli", "search", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})
    sampler = MemorySampler(proc.pid) if sample_memory else None
    if sampler:
        sampler.__enter__()
    stdout, stderr = proc.communicate()
    if sampler:
        sampler.__exit__(None, None, None)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 130):
        raise SystemExit(f"search failed ({proc.returncode}):\n{stdout}\n{stderr}")
    out = Path(args[args.index("--out") + 1])
    return {"wall_s": wall, "stdout": stdout, "run": json.loads((out / "run.json").read_text()),
            "trials": pd.read_csv(out / "trials.csv"), "memory": sampler.summary() if sampler else None}
