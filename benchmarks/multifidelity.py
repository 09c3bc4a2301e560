"""Successive halving (rungs from --min-steps to --steps, eta 3: new plans get few fine-tuning
steps, the non-dominated third of each rung continues) vs full fidelity for every plan, at equal
wall-clock time, on digits with 2 workers.

Score: hypervolume of the full-fidelity Pareto front in teacher-relative objectives
(1 - accuracy/teacher accuracy, size ratio, latency ratio), reference point (0.05, 1, 1).

    python benchmarks/multifidelity.py      # writes benchmarks/results/multifidelity.json
"""

import statistics
import sys
import tempfile
from pathlib import Path

from common import machine, run_search, write_result

from autocompress.search.pareto import normalized_hypervolume, pareto_front

BUDGET_S, SEEDS, STEPS, SCREEN = 150, (0, 1), 300, 60
MODES = {"full": [], "multi-fidelity": ["--min-steps", str(SCREEN)]}


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="autocompress-mf-"))
    results = {mode: {"hypervolume": [], "full_trials": [], "screen_trials": []} for mode in MODES}
    for seed in SEEDS:
        for mode, extra in MODES.items():
            args = ["--task", "digits", "--trials", "1000", "--time-budget", str(BUDGET_S), "--steps", str(STEPS),
                    "--workers", "2", "--seed", str(seed), *extra, "--out", str(work / f"{mode}-{seed}")]
            run = run_search(args)
            trials, teacher = run["trials"], run["run"]["teacher"]
            front = pareto_front(trials, fidelity=run["run"]["settings"]["fidelity"])
            hv = normalized_hypervolume(front, teacher)
            results[mode]["hypervolume"].append(round(hv, 6))
            done = trials[trials["state"] == "COMPLETE"]
            full = done["fidelity"] == run["run"]["settings"]["fidelity"]
            results[mode]["full_trials"].append(int(full.sum()))
            results[mode]["screen_trials"].append(int((~full).sum()))
            results[mode]["command"] = "autocompress search " + " ".join(args[:-1]) + " RUN"
            print(mode, seed, round(hv, 5), results[mode], flush=True)
    for mode in MODES:
        results[mode]["median_hypervolume"] = statistics.median(results[mode]["hypervolume"])
    payload = {"machine": machine(), "budget_s": BUDGET_S, "seeds": SEEDS, "reference": [0.05, 1, 1],
               "results": results,
               "goals": {"multi>=full (median)": results["multi-fidelity"]["median_hypervolume"]
                         >= results["full"]["median_hypervolume"]}}
    print(write_result("multifidelity", payload))
    print(payload["goals"], {m: r["median_hypervolume"] for m, r in results.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
