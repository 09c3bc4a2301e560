"""Throughput with 1 vs 2 Ray workers, controller overhead per trial, and peak memory.

Both runs evaluate the same plans (random sampler, same seed, no warm start) on digits.

    python benchmarks/ray_scaling.py        # writes benchmarks/results/ray_scaling.json
"""

import sys
import tempfile
from pathlib import Path

from common import machine, run_search, write_result

TRIALS = 24


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="autocompress-scaling-"))
    results = {}
    for workers in (1, 2):
        args = ["--task", "digits", "--trials", str(TRIALS), "--workers", str(workers), "--sampler", "random",
                "--seed", "0", "--no-warm-start", "--out", str(work / f"w{workers}")]
        run = run_search(args, sample_memory=True)
        trials = run["trials"]
        session = run["run"]["sessions"][-1]["wall_s"]  # the trial phase: Ray started, teacher measured
        busy = trials["duration_s"].sum()
        results[workers] = {
            "command": "autocompress search " + " ".join(args[:-1]) + " RUN",
            "trials_complete": int((trials["state"] == "COMPLETE").sum()),
            "trial_phase_wall_s": session,  # overhead per trial between trials: controller_overhead.py
            "whole_command_wall_s": round(run["wall_s"], 1),
            "trials_per_hour": round(TRIALS / session * 3600, 1),
            "mean_trial_s": round(trials["duration_s"].mean(), 3),
            "overhead_per_trial_s": round((session * workers - busy) / TRIALS, 3),
            "overhead_fraction_of_trial": round((session * workers - busy) / busy, 4),
            "nodes": sorted(trials["node"].dropna().unique()),
            "memory": run["memory"],
        }
        print(workers, results[workers], flush=True)
    speedup = results[2]["trials_per_hour"] / results[1]["trials_per_hour"]
    payload = {"machine": machine(), "trials": TRIALS, "workers": results, "throughput_speedup_2_vs_1": round(speedup, 3),
               "goals": {"speedup>=1.7": bool(speedup >= 1.7),
                         "overhead<5%_of_trial (1 worker)": bool(results[1]["overhead_fraction_of_trial"] < 0.05),
                         "driver<1.5GB": bool(max(r["memory"]["driver_peak_mb"] for r in results.values()) < 1536),
                         "each_worker<1GB": bool(max(max(r["memory"]["trial_worker_peaks_mb"] or [0])
                                                     for r in results.values()) < 1024)}}
    print(write_result("ray_scaling", payload))
    print(payload["throughput_speedup_2_vs_1"], payload["goals"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
