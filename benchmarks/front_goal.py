"""A run's front against a goal: the very files the search stored, measured again side by side.

Each full-fidelity front candidate's ``artifacts/<trial>/model.onnx`` (not fine-tuned again) and
the run's teacher file are timed in interleaved rounds in this one process, their accuracy is
that of each file on the TEST split, and their size is the file's bytes (``remeasure.remeasure``).
A candidate meets the goal when it is at least SIZE_X times smaller, at least LATENCY_X times
faster and at most DROP_PT test points below the teacher.

    python benchmarks/front_goal.py runs/lenet --data-dir ../shared/data --size-x 60 --latency-x 2.5 \\
        --drop-pt 0.2 --out benchmarks/results/goal-mnist-lenet5.json

    >>> meets({"size_x": 128.9, "latency_x": 3.9, "drop_pt": 0.1}, size_x=60, latency_x=2.5, drop_pt=0.2)
    True
    >>> meets({"size_x": 128.9, "latency_x": 2.4, "drop_pt": 0.1}, size_x=60, latency_x=2.5, drop_pt=0.2)
    False
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def meets(entry: dict, *, size_x: float, latency_x: float, drop_pt: float) -> bool:
    """Whether one re-measured candidate (``remeasure.front_entry``) meets all three bounds."""
    return entry["size_x"] >= size_x and entry["latency_x"] >= latency_x and entry["drop_pt"] <= drop_pt


def main(argv=None) -> dict:
    from autocompress import load_run
    from autocompress.evaluators.verify import run_task
    from autocompress.task import UsageError
    from remeasure import remeasure

    args = parse_args(argv)
    try:  # a bad run directory or missing data: one line, before any measuring
        run = load_run(args.run)
        task = run_task(run, data_dir=args.data_dir)
    except UsageError as exc:
        print(f"front_goal.py: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    candidates = {("front", 0, int(n)): run.candidate(int(n)) for n in run.pareto["number"]}
    teacher, entries = remeasure(task, run.teacher_artifact, {key: c.artifact for key, c in candidates.items()})
    goal = {"size_x": args.size_x, "latency_x": args.latency_x, "drop_pt": args.drop_pt}
    rows = [{**entries[key], "plan": c.plan.summary(), "meets": meets(entries[key], **goal)}
            for key, c in candidates.items()]
    rows.sort(key=lambda row: row["drop_pt"])
    result = {"run": str(args.run), "task": run.info["task"]["name"], "search": run.info.get("command"),
              "searched_s": round(sum(s["wall_s"] for s in run.info.get("sessions", [])), 1),
              "goal": goal, "teacher": teacher, "front": rows, "met_by": [r["trial"] for r in rows if r["meets"]],
              "command": "python benchmarks/front_goal.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(f"trial {row['trial']:>4}: {row['size_x']:7.1f}x smaller, {row['latency_x']:5.2f}x faster, test drop "
              f"{row['drop_pt']:+.2f} pt{'  meets the goal' if row['meets'] else ''}  ({row['plan']})")
    print(f"goal {goal}: met by trial(s) {result['met_by'] or 'none'}")
    return result


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory (autocompress search --out)")
    parser.add_argument("--data-dir", help="the task's data folder, if it needs one")
    parser.add_argument("--size-x", type=float, required=True, help="times smaller than the teacher, at least")
    parser.add_argument("--latency-x", type=float, required=True, help="times faster than the teacher, at least")
    parser.add_argument("--drop-pt", type=float, required=True, help="test points below the teacher, at most")
    parser.add_argument("--out", required=True, help="the result JSON")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
