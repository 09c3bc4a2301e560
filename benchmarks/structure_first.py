"""Structure first: a search with a tight --max-size spends no fine-tuning on plans over it.

The same search (seeded random sampler: the same plans are proposed whatever the results)
runs twice on one task: with ``--max-size`` (plans over it are measured, not fine-tuned) and
without it (every plan is fine-tuned, as before structure-first). Writes the trial counts,
the fine-tuning steps spent and the wall time of each.

    python benchmarks/structure_first.py [--task digits] [--trials 20] [--steps 300] \
        [--max-size-fraction 0.2]     # writes benchmarks/results/structure_first.json
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import RESULTS, machine, wait_until_quiet


def run_search(task: str, out: Path, *, trials: int, steps: int, extra: list[str]) -> dict:
    args = [sys.executable, "-m", "autocompress.cli", "search", "--task", task, "--trials", str(trials),
            "--steps", str(steps), "--sampler", "random", "--seed", "0", "--no-warm-start", "--out", str(out), *extra]
    wait_until_quiet()
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"search failed: {proc.stderr.strip()[-500:]}")
    trials_csv = pd.read_csv(out / "trials.csv")
    ran = trials_csv[trials_csv["duplicate_of"].isna()]
    return {"command": " ".join(args[1:]).replace(str(out), "OUT"), "wall_s": round(wall, 1),
            "trials": int(len(ran)), "fine_tuned": int((ran["steps"] > 0).sum()),
            "not_fine_tuned": int((ran["steps"] == 0).sum()), "steps_spent": int(ran["steps"].sum()),
            "trial_seconds": round(float(ran["duration_s"].sum()), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--max-size-fraction", type=float, default=0.2,
                        help="the size limit as a fraction of the teacher's file size")
    parser.add_argument("--out", default=str(RESULTS / "structure_first.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        free = run_search(args.task, Path(tmp) / "free", trials=args.trials, steps=args.steps, extra=[])
        teacher = json.loads((Path(tmp) / "free" / "run.json").read_text())["teacher"]
        limit = int(teacher["size_bytes"] * args.max_size_fraction)
        tight = run_search(args.task, Path(tmp) / "tight", trials=args.trials, steps=args.steps,
                           extra=["--max-size", f"{limit}B"])
    result = {"task": args.task, "teacher_size_bytes": teacher["size_bytes"], "max_size_bytes": limit,
              "without_limit": free, "with_limit": tight,
              "wall_time_ratio": round(tight["wall_s"] / free["wall_s"], 3),
              "command": "python benchmarks/structure_first.py " + " ".join(sys.argv[1:]), "machine": machine()}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
