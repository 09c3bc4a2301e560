"""Do the latencies a search recorded agree with the same files measured again, alone?

For every complete trial of each run (every rung, not only the front) its stored
``artifacts/<trial>/model.onnx`` and the run's teacher file are timed side by side in this one
quiet process (``remeasure.side_by_side``: interleaved rounds, 1 thread pinned, batch 1). The
search's figure is the trial's speed-up over the teacher as the run recorded both; the
re-measured one is the same ratio from this process. Reported per run: each trial's two
speed-ups and their ratio, the median and worst disagreement, and how many trials agree within
10%.

    python benchmarks/latency_agreement.py runs/a runs/b --out benchmarks/results/latency-agreement.json

    >>> disagreement(2.0, 1.6)
    1.25
    >>> disagreement(0.96, 1.64)
    1.7083
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

AGREE = 1.10  # within 10% either way


def disagreement(recorded_x: float, remeasured_x: float) -> float:
    """How far apart two speed-ups are, as a ratio of at least 1."""
    return round(max(recorded_x, remeasured_x) / min(recorded_x, remeasured_x), 4)


def run_agreement(run, example) -> dict:
    """Every complete trial of ``run`` (``load_run``) with a file of its own: recorded and re-measured speed-up."""
    from remeasure import side_by_side

    trials = run.trials[run.trials["state"] == "COMPLETE"]
    files = {"teacher": str(run.teacher_artifact)}
    files |= {str(int(n)): str(run.path / "artifacts" / str(int(n)) / "model.onnx") for n in trials["number"]}
    files = {name: f for name, f in files.items() if Path(f).is_file()}  # a duplicate's answer has none
    measured = side_by_side(files, example)
    teacher_ms = run.teacher.latency_ms
    rows = []
    for _, trial in trials.iterrows():
        name = str(int(trial["number"]))
        if name not in measured or pd.isna(trial["latency_ms"]):
            continue
        recorded_x, remeasured_x = teacher_ms / trial["latency_ms"], measured["teacher"] / measured[name]
        rows.append({"trial": int(trial["number"]), "recorded_x": round(recorded_x, 4),
                     "remeasured_x": round(remeasured_x, 4), "disagreement": disagreement(recorded_x, remeasured_x)})
    apart = [row["disagreement"] for row in rows]
    return {"run": str(run.path), "search": run.info.get("command"), "trials": rows,
            "median_disagreement": round(float(np.median(apart)), 4) if apart else None,
            "worst_disagreement": max(apart, default=None),
            "within_10pct": sum(a <= AGREE for a in apart), "count": len(apart)}


def main(argv=None) -> dict:
    from autocompress import load_run
    from autocompress.evaluators.verify import run_task

    args = parse_args(argv)
    loaded = [load_run(path) for path in args.runs]
    example = run_task(loaded[0], data_dir=args.data_dir).example_inputs
    runs = [run_agreement(run, example) for run in loaded]
    result = {"runs": runs, "command": "python benchmarks/latency_agreement.py "
                                       + shlex.join(argv if argv is not None else sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for run in runs:
        print(f"{run['run']}: {run['within_10pct']} of {run['count']} trials within 10% of the re-measured "
              f"speed-up; median {run['median_disagreement']}x apart, worst {run['worst_disagreement']}x")
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories of one task (their teacher's inputs are used)")
    parser.add_argument("--data-dir", default=None, help="where the task's data lives (as for the search)")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
