"""Does low-rank pay in the shipped file? Each front candidate of a run that is within MAX_DROP
points of the teacher and factorizes some layer, against the same plan without factorization.

Both plans are fine-tuned afresh here with the run's settings (same steps, same seed, one torch
thread as in a trial), exported, and then measured side by side in one process with the teacher
(``remeasure.remeasure``: interleaved latency rounds, test-split accuracy of each file, its
bytes). Low-rank pays for a candidate when its file is within MAX_DROP test points of the
teacher, no larger and no slower (beyond the 3% the side-by-side rounds vary by) than the
same plan without it, and smaller or faster by more than that.

    python benchmarks/lowrank_pays.py runs/cifar --data-dir ../shared/data --out benchmarks/results/lowrank-cifar.json

One candidate takes two fine-tunings of the run's --steps (on CIFAR ResNet-20 at 1000 steps,
about 3 minutes each on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

NOISE = 0.03  # side-by-side latency medians of the same file differ by up to ~3% between rounds


def without_lowrank(plan):
    """The same plan with every layer at full rank."""
    from autocompress import Plan

    data = plan.to_dict()
    data["layers"] = {name: {**layer, "rank": None} for name, layer in data["layers"].items()}
    return Plan.from_dict(data)


def lowrank_candidates(run, *, max_drop: float) -> list:
    """The run's front candidates within ``max_drop`` validation points of the teacher that factorize a layer."""
    teacher = run.teacher.accuracy
    chosen = []
    for number in run.pareto.sort_values("accuracy", ascending=False)["number"]:
        candidate = run.candidate(int(number))
        uses = any(layer.rank is not None for _, layer in candidate.plan.layers)
        if uses and 100 * (teacher - candidate.accuracy) <= max_drop:
            chosen.append(candidate)
    return chosen


def verdict(with_lr: dict, without: dict, *, max_drop: float) -> str:
    """'pays', or why not, from two side-by-side entries (``remeasure.front_entry``).

    >>> a = {"size_bytes": 90, "latency_ms": 1.0, "drop_pt": 0.5}
    >>> verdict(a, {"size_bytes": 100, "latency_ms": 1.01, "drop_pt": 0.2}, max_drop=1.0)
    'pays'
    >>> verdict(a, {"size_bytes": 100, "latency_ms": 0.9, "drop_pt": 0.2}, max_drop=1.0)
    'slower'
    """
    if with_lr["drop_pt"] > max_drop:
        return f"more than {max_drop:g} test points below the teacher"
    if with_lr["size_bytes"] > without["size_bytes"]:
        return "larger"
    if with_lr["latency_ms"] > without["latency_ms"] * (1 + NOISE):
        return "slower"
    smaller = with_lr["size_bytes"] < without["size_bytes"] * (1 - NOISE)
    faster = with_lr["latency_ms"] < without["latency_ms"] * (1 - NOISE)
    return "pays" if smaller or faster else "a tie (within 3% on size and latency)"


def main(argv=None) -> dict:
    import torch

    from autocompress import evaluate, load_run
    from autocompress.evaluators.verify import run_task
    from autocompress.search.settings import SearchSettings
    from autocompress.task import UsageError
    from remeasure import remeasure

    args = parse_args(argv)
    try:  # a bad run directory or missing data: one line, before any fine-tuning
        run = load_run(args.run)
        task = run_task(run, data_dir=args.data_dir)
    except UsageError as exc:
        print(f"lowrank_pays.py: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    settings = SearchSettings.from_dict(run.info["settings"])
    torch.set_num_threads(1)
    files, plans, work = {}, {}, Path(args.work)
    for candidate in lowrank_candidates(run, max_drop=args.max_drop)[:args.limit]:
        for label, plan in (("with", candidate.plan), ("without", without_lowrank(candidate.plan))):
            started = time.perf_counter()
            evaluate(task, plan, out_dir=work / f"{candidate.number}-{label}", config=settings.distill)
            print(f"trial {candidate.number} {label} low-rank: fine-tuned and exported in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            files[("lowrank", label, candidate.number)] = work / f"{candidate.number}-{label}" / "model.onnx"
            plans[(label, candidate.number)] = plan.summary()
    teacher, entries = remeasure(task, run.teacher_artifact, files)
    rows = [{"trial": n, "plan": plans[("with", n)], "with": entries[("lowrank", "with", n)],
             "without": entries[("lowrank", "without", n)],
             "verdict": verdict(entries[("lowrank", "with", n)], entries[("lowrank", "without", n)],
                                max_drop=args.max_drop)} for n in sorted({key[2] for key in files})]
    result = {"run": str(args.run), "task": run.info["task"]["name"], "steps": settings.distill.steps,
              "seed": settings.distill.seed, "max_drop_pt": args.max_drop, "teacher": teacher, "candidates": rows,
              "command": "python benchmarks/lowrank_pays.py " + " ".join(argv or sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(f"trial {row['trial']} ({row['plan']}): {row['verdict']}; with {_short(row['with'])}; "
              f"without {_short(row['without'])}")
    if not rows:
        print(f"no front candidate within {args.max_drop:g} points of the teacher factorizes a layer")
    return result


def _short(entry: dict) -> str:
    return f"{entry['size_bytes']:,} B, {entry['latency_ms']:.4f} ms, test drop {entry['drop_pt']:+.2f} pt"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory (autocompress search --out)")
    parser.add_argument("--data-dir", help="the task's data folder, if it needs one")
    parser.add_argument("--max-drop", type=float, default=1.0, help="test points below the teacher (default: 1.0)")
    parser.add_argument("--limit", type=int, default=3, help="candidates at most, most accurate first (default: 3)")
    parser.add_argument("--work", default="/tmp/lowrank-pays", help="where the fine-tuned files go")
    parser.add_argument("--out", required=True, help="the result JSON")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
