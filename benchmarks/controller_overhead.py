"""The controller's overhead per trial: the figure the README's Benchmarks table quotes.

One search with one Ray worker on digits (random sampler, no warm start, seed 0), so trials run
one after another. From its trials.csv: the gap between one trial's end (its ``finished_at``)
and the next one's start (``started_at``) is the time spent in the controller and Ray Tune's
loop between trials; the one-time share spreads the whole trial phase's idle time (Ray Tune's
start included) over the trials.

    python benchmarks/controller_overhead.py                   # writes benchmarks/results/controller_overhead.json
    python benchmarks/controller_overhead.py --run RUN_DIR     # the same figures from a finished 1-worker run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

from common import machine, run_search, write_result

TRIALS = 24


def trial_gaps(trials: pd.DataFrame) -> list[float]:
    """Seconds between each trial's end and the next trial's start, trials ordered by start.

    >>> trials = pd.DataFrame({"started_at": ["2026-01-01T00:00:00.000+00:00", "2026-01-01T00:00:03.100+00:00"],
    ...                        "finished_at": ["2026-01-01T00:00:03.000+00:00", "2026-01-01T00:00:06.000+00:00"]})
    >>> [round(g, 3) for g in trial_gaps(trials)]
    [0.1]
    """
    ordered = trials.dropna(subset=["started_at", "finished_at"]).sort_values("started_at")
    starts = pd.to_datetime(ordered["started_at"]).tolist()
    ends = pd.to_datetime(ordered["finished_at"]).tolist()
    return [(start - end).total_seconds() for end, start in zip(ends[:-1], starts[1:])]


def overhead(run: dict, trials: pd.DataFrame) -> dict:
    """The figures from a 1-worker run's run.json and trials table."""
    done = trials[trials["state"] == "COMPLETE"]
    gaps = trial_gaps(done)
    mean_trial = float(done["duration_s"].mean())
    phase = float(run["sessions"][-1]["wall_s"])
    idle = phase - float(done["duration_s"].sum())
    return {"trials_complete": int(len(done)), "mean_trial_s": round(mean_trial, 3),
            "gap_between_trials_median_s": round(statistics.median(gaps), 3),
            "gap_between_trials_mean_s": round(statistics.mean(gaps), 3),
            "gap_fraction_of_trial": round(statistics.median(gaps) / mean_trial, 4),
            "trial_phase_wall_s": phase, "one_time_and_gaps_per_trial_s": round(idle / len(done), 3),
            "one_time_and_gaps_fraction_of_trial": round(idle / float(done["duration_s"].sum()), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--run", default=None, help="read this finished 1-worker run instead of running one")
    parser.add_argument("--no-write", action="store_true", help="print, do not write benchmarks/results")
    args = parser.parse_args(argv)
    command = ["--task", "digits", "--trials", str(args.trials), "--workers", "1", "--sampler", "random",
               "--seed", "0", "--no-warm-start"]
    load_at_start = os.getloadavg()
    if args.run:
        out = Path(args.run)
        run, trials = json.loads((out / "run.json").read_text()), pd.read_csv(out / "trials.csv")
    else:
        done = run_search([*command, "--out", str(Path(tempfile.mkdtemp(prefix="autocompress-overhead-")) / "run")])
        run, trials = done["run"], done["trials"]
    if run["sessions"][-1]["workers"] != 1:
        raise SystemExit(f"{args.run}: a run with {run['sessions'][-1]['workers']} workers; the gaps need 1 worker")
    payload = {"command": "autocompress search " + " ".join(command) + " --out RUN", "machine": machine(),
               "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(),
               **overhead(run, trials)}
    print(json.dumps(payload, indent=2))
    if not args.no_write:
        print(write_result("controller_overhead", payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
