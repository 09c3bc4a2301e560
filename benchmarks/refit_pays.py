"""Does the least-squares refit after pruning (compressors/reconstruct.py) pay? The CIFAR recipe
(every block's inner conv pruned 50%, every layer int8) built with and without it, scored on the
validation split before fine-tuning and after each of ``--steps`` distillation steps.

    python benchmarks/refit_pays.py --data-dir ../shared/data --steps 600      # about 5 minutes

"Without" is the same build with the refit skipped (pruning, then BatchNorm statistics
re-estimated, as before the refit existed). Writes benchmarks/results/refit-pays.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, write_result  # noqa: E402
from benchmarks.recipe import recipe_plan  # noqa: E402


def _accuracy(model, data) -> float:
    import torch

    from autocompress.model_io import forward

    right = total = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(data, batch_size=500):
            right += int((forward(model.eval(), x).argmax(1) == y).sum())
            total += len(y)
    return right / total


def one_build(task, plan, *, refit: bool, steps: int) -> dict:
    """Validation accuracy of the recipe built with or without the refit, before and after fine-tuning."""
    from autocompress.compressors import pipeline
    from autocompress.compressors.distill import DistillConfig

    real = pipeline.reconstruct_consumers
    pipeline.reconstruct_consumers = real if refit else (lambda *args, **kwargs: [])
    try:
        start = time.perf_counter()
        built = pipeline.build(task, plan)
        row = {"refit": refit, "build_s": round(time.perf_counter() - start, 2),
               "val_before_fine_tuning": _accuracy(built.model, task.val)}
    finally:
        pipeline.reconstruct_consumers = real
    if steps:
        config = dataclasses.replace(DistillConfig(), steps=steps)
        start = time.perf_counter()
        pipeline.fine_tune(task, built, config=config)
        row.update({f"val_after_{steps}_steps": _accuracy(built.model, task.val),
                    "fine_tune_s": round(time.perf_counter() - start, 1)})
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="refit_pays.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--steps", type=int, default=600, help="distillation steps after the build (0: none)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    from autocompress.task import UsageError, load_task

    try:  # missing data: one line, before any work
        task = load_task("cifar10-resnet20", data_dir=args.data_dir)
    except UsageError as exc:
        parser.error(str(exc))
    plan = recipe_plan(task)
    rows = [one_build(task, plan, refit=refit, steps=args.steps) for refit in (False, True)]
    result = {"task": task.name, "plan": "every block's inner conv pruned 50%, every layer int8",
              "teacher_val_accuracy": _accuracy(task.teacher, task.val), "rows": rows,
              "command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "machine": machine()}
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    if not args.no_write:
        write_result("refit-pays", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
