"""Does Tucker-2 pay in the shipped file? The same convolutions factorized by SVD and by Tucker-2
at each rank ratio, on top of one base plan (every layer int8 by default), each fine-tuned alike
(``--steps`` of distillation, the same seed, one torch thread as in a trial), exported, and
re-measured side by side in one process with the teacher and the base: test accuracy, bytes,
latency (``remeasure.remeasure``).

A Tucker-2 file pays when no SVD file of the set beats it: none is at least as accurate on the
test split, at least as small and no slower (beyond the 3% side-by-side rounds vary by).

    python benchmarks/tucker_pays.py --task cifar10-resnet20 --data-dir ../shared/data --layers layer3. \\
        --steps 500 --out benchmarks/results/tucker-cifar10.json

Each file takes one fine-tuning (cifar10-resnet20, 500 steps: about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

NOISE = 0.03  # side-by-side latency medians of the same file differ by up to ~3% between rounds
RATIOS = (0.5, 0.25)


def factorized_plans(base, layers: list[str]) -> dict:
    """``{label: plan}``: the base, then each ratio of ``RATIOS`` by SVD and by Tucker-2 on ``layers``.

    >>> from autocompress.plan import LayerPlan, Plan
    >>> plans = factorized_plans(Plan(layers={"c": LayerPlan(bits=8)}), ["c"])
    >>> list(plans), plans["tucker2-25%"].layer("c")
    (['base', 'svd-50%', 'tucker2-50%', 'svd-25%', 'tucker2-25%'], LayerPlan(prune=0.0, bits=8, rank=0.25, decomposition='tucker2'))
    """
    plans = {"base": base}
    for ratio in RATIOS:
        for how in ("svd", "tucker2"):
            factorized = {name: dataclasses.replace(base.layer(name), rank=ratio, decomposition=how) for name in layers}
            plans[f"{how}-{ratio:.0%}"] = dataclasses.replace(base, layers={**dict(base.layers), **factorized})
    return plans


def beaten_by(entry: dict, others: dict[str, dict]) -> list[str]:
    """The labels of ``others`` at least as accurate, as small and no slower (within NOISE) than ``entry``.

    >>> a = {"test_accuracy": 0.9, "size_bytes": 100, "latency_ms": 1.0}
    >>> beaten_by(a, {"s": {"test_accuracy": 0.9, "size_bytes": 120, "latency_ms": 1.0},
    ...               "t": {"test_accuracy": 0.91, "size_bytes": 100, "latency_ms": 1.02}})
    ['t']
    """
    return [label for label, other in others.items()
            if other["test_accuracy"] >= entry["test_accuracy"] and other["size_bytes"] <= entry["size_bytes"]
            and other["latency_ms"] <= entry["latency_ms"] * (1 + NOISE)]


def main(argv=None) -> dict:
    import torch

    from autocompress import DistillConfig, evaluate, load_task
    from autocompress.compressors.pipeline import task_context
    from autocompress.evaluators.evaluate import evaluate_teacher
    from autocompress.plan import LayerPlan, Plan
    from autocompress.task import UsageError
    from remeasure import remeasure

    args = parse_args(argv)
    torch.set_num_threads(1)
    try:  # an unknown task or missing data: one line, before any fine-tuning
        task = load_task(args.task, data_dir=args.data_dir)
    except UsageError as exc:
        _refuse(str(exc))
    info = task_context(task).discovery
    layers = [layer.name for layer in info.layers if layer.name.startswith(args.layers)
              and any(value < 0 for value in layer.rank_ratios)]  # offered Tucker-2
    if not layers:
        _refuse(f"no convolution of {args.task} whose name starts with {args.layers!r} is offered Tucker-2 "
                "('autocompress inspect' lists each layer's rank ratios)")
    base = Plan(layers={layer.name: LayerPlan(bits=args.bits) for layer in info.layers})
    work = Path(args.work)
    evaluate_teacher(task, out_dir=work / "teacher")
    files, seconds = {}, {}
    for label, plan in factorized_plans(base, layers).items():
        started = time.perf_counter()
        evaluate(task, plan, out_dir=work / label, config=DistillConfig(steps=args.steps, seed=args.seed))
        seconds[label] = round(time.perf_counter() - started, 1)
        print(f"{label}: fine-tuned and exported in {seconds[label]:.0f} s", flush=True)
        files[("tucker", label, 0)] = work / label / "model.onnx"
    teacher, entries = remeasure(task, work / "teacher" / "model.onnx", files)
    measured = {key[1]: entry for key, entry in entries.items()}
    svd = {label: entry for label, entry in measured.items() if label.startswith("svd")}
    rows = [{"label": label, **entry, "seconds": seconds[label],
             "beaten_by": beaten_by(entry, svd) if label.startswith("tucker2") else None}
            for label, entry in measured.items()]
    result = {"task": args.task, "layers": layers, "base": f"every layer int{args.bits}", "steps": args.steps,
              "seed": args.seed, "teacher": teacher, "files": rows,
              "tucker2_pays": any(row["beaten_by"] == [] for row in rows),
              "command": "python benchmarks/tucker_pays.py " + " ".join(argv or sys.argv[1:]), "machine": machine()}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        verdict = "" if row["beaten_by"] is None else (
            "  pays (no SVD file beats it)" if not row["beaten_by"] else f"  beaten by {', '.join(row['beaten_by'])}")
        print(f"{row['label']:<13} {row['size_bytes']:>9,} B  {row['size_x']:5.2f}x smaller  "
              f"{row['latency_x']:4.2f}x faster  test {100 * row['test_accuracy']:.2f}% ({-row['drop_pt']:+.2f} pt vs teacher)"
              f"{verdict}")
    return result


def _refuse(message: str) -> None:
    print(f"tucker_pays.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="cifar10-resnet20", help="a built-in task (default: cifar10-resnet20)")
    parser.add_argument("--data-dir", help="the task's data folder, if it needs one")
    parser.add_argument("--layers", default="", help="factorize the convolutions whose name starts with this "
                                                     "(default: every one offered Tucker-2)")
    parser.add_argument("--bits", type=int, default=8, choices=(8, 4, 2), help="the base plan's bit-width (default 8)")
    parser.add_argument("--steps", type=int, default=500, help="fine-tuning steps of each file (default: 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/tucker-pays", help="where the fine-tuned files go")
    parser.add_argument("--out", required=True, help="the result JSON")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
