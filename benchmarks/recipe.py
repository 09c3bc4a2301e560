"""One fixed recipe, fine-tuned under a wall-clock cap: how close to the teacher does it get?

Recipe (issue #13 item 2): every residual block's inner convolution (its first conv, whose output
channels are not tied to the residual stream) pruned 50%, every layer int8, on
cifar10-resnet20; fine-tuned by distillation with the task's defaults (augmentation, warm-up,
cosine decay) for as many steps as fit in ``--minutes``: a short probe measures the step time
on this machine, then the candidate is fine-tuned from the start for the steps that fit in what
is left. Accuracy is that of the exported ONNX file on the TEST split; teacher and candidate
files are re-measured side by side in this process for the size and latency ratios.

    nice -n 10 python benchmarks/recipe.py --data-dir ../shared/data            # 15 minutes
    python benchmarks/recipe.py --data-dir ../shared/data --minutes 3 --lr 1e-3 --out /tmp/r --no-write

Writes benchmarks/results/recipe.json and recipe.md (unless --no-write).
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

from benchmarks.common import RESULTS, machine, write_result  # noqa: E402
from benchmarks.remeasure import side_by_side  # noqa: E402

PROBE_STEPS = 20


def recipe_plan(task):
    """Every compressible layer int8; every pruning group (the blocks' inner convs) pruned 50%."""
    from autocompress.compressors.pipeline import task_context
    from autocompress.plan import LayerPlan, Plan

    info = task_context(task).discovery
    groups = {g.name for g in info.groups}
    return Plan(layers={layer.name: LayerPlan(bits=8, prune=0.5 if layer.name in groups else 0.0)
                        for layer in info.layers})


def _config(task, args):
    from autocompress.compressors.distill import DistillConfig
    from autocompress.compressors.pipeline import with_task_lr

    given = {k: getattr(args, k) for k in ("lr", "batch_size", "alpha", "optimizer", "warmup_fraction",
                                           "weight_decay", "temperature", "seed", "float_fraction", "feature_weight")
             if getattr(args, k) is not None}
    return with_task_lr(DistillConfig(**given), task)


def probe_step_s(task, plan, config) -> tuple[dict, float]:
    """({"float": s, "quantized": s} per fine-tuning step, seconds of the probe in all) from a
    short throwaway run: PROBE_STEPS float steps, then as many quantization-aware ones."""
    from autocompress.compressors import compress

    stamps = []
    start = time.perf_counter()
    compress(task, plan, config=dataclasses.replace(config, steps=2 * PROBE_STEPS, float_fraction=0.5),
             on_step=lambda step: stamps.append(time.perf_counter()))

    def per_step(phase):
        return (phase[-1] - phase[1]) / (len(phase) - 2)  # the first step of a phase warms up

    return ({"float": per_step(stamps[:PROBE_STEPS]), "quantized": per_step(stamps[PROBE_STEPS:])},
            time.perf_counter() - start)


def mean_step_s(step_s: dict, config) -> float:
    """Seconds per step of a fine-tuning whose first ``float_fraction`` of the steps run in float."""
    return config.float_fraction * step_s["float"] + (1 - config.float_fraction) * step_s["quantized"]


def run(args) -> dict:
    from autocompress.task import load_task
    from autocompress.evaluators.evaluate import ARTIFACT_NAME, evaluate, evaluate_teacher
    from autocompress.evaluators.measure import onnx_metric, onnx_session, size_bytes

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    out = Path(args.out)
    task = load_task("cifar10-resnet20", data_dir=args.data_dir)
    plan, config = recipe_plan(task), _config(task, args)
    teacher = evaluate_teacher(task, out_dir=out / "teacher")
    cap_s = args.minutes * 60
    phase_s, probe_s = probe_step_s(task, plan, config) if args.steps is None else (None, 0.0)
    step_s = mean_step_s(phase_s, config) if phase_s else None
    steps = args.steps or int((cap_s - probe_s - args.margin_s) / step_s)
    config = dataclasses.replace(config, steps=steps)
    stamps = []
    start = time.perf_counter()

    def progress(step: int) -> None:
        stamps.append(time.perf_counter())
        if step % 100 == 0 or step == steps:
            print(f"step {step}/{steps}: {probe_s + stamps[-1] - start:.0f} s of fine-tuning "
                  f"(cap {cap_s:.0f} s)", flush=True)

    print(f"probe: {f'{step_s:.3f} s/step' if step_s else 'none (--steps)'}; fine-tuning {steps} steps", flush=True)
    metrics = evaluate(task, plan, out_dir=out / "candidate", config=config, on_step=progress)
    fine_tune_s = probe_s + (stamps[-1] - start)
    paths = {name: str(out / name / ARTIFACT_NAME) for name in ("teacher", "candidate")}
    test = {name: onnx_metric(onnx_session(path), task.test, task.metric) for name, path in paths.items()}
    latency = side_by_side(paths, task.example_inputs, rounds=3, runs=300)  # both files alternately, here
    size = {name: size_bytes(path) for name, path in paths.items()}
    return {"task": task.name, "plan": json.loads(plan.to_json()), "distill": dataclasses.asdict(config),
            "teacher_test_accuracy": test["teacher"], "candidate_test_accuracy": test["candidate"],
            "gap_points": 100 * (test["teacher"] - test["candidate"]),
            "teacher_val_accuracy": teacher.accuracy, "candidate_val_accuracy": metrics.accuracy,
            "size_bytes": size, "size_ratio": size["teacher"] / size["candidate"],
            "latency_ms": latency, "latency_ratio": latency["teacher"] / latency["candidate"],
            "steps": steps, "probe_step_s": step_s, "probe_phase_step_s": phase_s,
            "fine_tune_wall_s": fine_tune_s, "cap_s": cap_s,
            "within_cap": fine_tune_s <= cap_s, "notes": metrics.notes,
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "machine": machine()}


def markdown(result: dict) -> str:
    d = result["distill"]
    return "\n".join([
        "# Recipe: inner convs pruned 50% + int8 on cifar10-resnet20, fine-tuned under a time cap",
        "",
        f"Command: `{result['command']}`. Machine: {result['machine']['cpus']} CPUs (shared).",
        "",
        "| | teacher | candidate |",
        "|---|---|---|",
        f"| test accuracy (ONNX file) | {result['teacher_test_accuracy']:.4f} | {result['candidate_test_accuracy']:.4f} |",
        f"| validation accuracy (ONNX file) | {result['teacher_val_accuracy']:.4f} | "
        f"{result['candidate_val_accuracy']:.4f} |",
        f"| size | {result['size_bytes']['teacher']:,} B | {result['size_bytes']['candidate']:,} B |",
        f"| latency (batch 1, side by side) | {result['latency_ms']['teacher']:.4f} ms | "
        f"{result['latency_ms']['candidate']:.4f} ms |",
        "",
        f"Gap: {result['gap_points']:.2f} points of test accuracy; {result['size_ratio']:.2f}x smaller, "
        f"{result['latency_ratio']:.2f}x faster.",
        f"Fine-tuning: {result['steps']} steps ("
        + (f"{result['probe_step_s']:.3f} s/step measured by a {PROBE_STEPS}-step probe" if result['probe_step_s']
           else "fixed by --steps, no probe")
        + f"), {result['fine_tune_wall_s']:.0f} s wall in all, probe included "
        f"(cap {result['cap_s']:.0f} s{'' if result['within_cap'] else ', EXCEEDED'}).",
        f"Settings: {d['optimizer']}, lr {d['lr']:g}, weight decay {d['weight_decay']:g}, batch {d['batch_size']}, "
        f"alpha {d['alpha']:g}, T {d['temperature']:g}, warm-up {d['warmup_fraction']:g} of the steps then "
        f"{d['schedule']}, augmentation {'on' if d['augment'] else 'off'}, "
        + (f"the first {d['float_fraction']:g} of the steps in float (then calibrated afresh), the rest "
           "quantization-aware." if d.get("float_fraction") else "quantization-aware throughout.")
        + (f" Feature distillation: weight {d['feature_weight']:g} on the MSE of the output layer's inputs."
           if d.get("feature_weight") else ""),
        "",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-clock cap of the fine-tuning")
    parser.add_argument("--margin-s", type=float, default=30.0, help="seconds of the cap kept free (load varies)")
    parser.add_argument("--steps", type=int, default=None, help="fixed steps instead of the time cap")
    for name, kind in (("lr", float), ("batch-size", int), ("alpha", float), ("optimizer", str),
                       ("warmup-fraction", float), ("weight-decay", float), ("temperature", float), ("seed", int),
                       ("float-fraction", float), ("feature-weight", float)):
        parser.add_argument(f"--{name}", type=kind, default=None, help="default: the task's / DistillConfig's")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the fine-tuning (default: "
                        "torch's); 1 for two variants side by side, one core each, under the same machine state")
    parser.add_argument("--result-name", default="recipe", help="the results file's name (benchmarks/results/NAME.json)")
    parser.add_argument("--out", default="/tmp/autocompress-recipe")
    parser.add_argument("--no-write", action="store_true", help="print the result, do not write benchmarks/results")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps({k: v for k, v in result.items() if k not in ("plan", "machine")}, indent=2, default=str))
    if not args.no_write:
        write_result(args.result_name, result)
        (RESULTS / f"{args.result_name}.md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
