"""Do quantized layers pay? Latency of quantized layers and whole models against float, in ONNX Runtime.

    python benchmarks/layer_kernels.py [--data-dir ../shared/data] [--out benchmarks/results/kernels.json]
                                 [--tasks digits mnist-lenet5 cifar10-resnet20 sst2-transformer]
                                 [--stand-ins TASK ...] [--skip-layers]

Layers: a Conv (3x3 64->64 on 32x32, 1x1 64->64 on 32x32, depthwise 3x3 on 64x32x32) or a Linear
(768->768 on 128 tokens, 512->512) alone, quantized at 8, 4 and 2 bits the way a trial exports it
(calibrated, frozen, exported): its latency over the float layer's, and its file bytes (and the
bytes of its stored weights alone) over the int8 file's.

Models: each task's teacher and its uniform-int8 plan (the search's first warm-start recipe,
calibration only: DistillConfig(steps=0)), and the same plan at 4 and at 2 bits, exported by
this code ("after") and by the code at the branch ``main`` ("before", extracted with ``git
archive`` and run in a subprocess): the speed-up over float of each, and the validation metric
of each file. ``--stand-ins`` measures a task on a stand-in teacher of the same architecture
that needs no training run (benchmarks/kernel_tasks.py), for when the real one is not cached.

Every latency ratio comes from one process measuring its files side by side: rounds of
``latency_ms`` (batch 1, 1 thread, pinned; 100 runs each) interleaved over the files, the median
of the round medians per file.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from autocompress.compressors.quantize import calibrate, freeze, prepare_qat  # noqa: E402
from autocompress.evaluators.export import export_onnx  # noqa: E402
from autocompress.evaluators.measure import onnx_session  # noqa: E402
from kernel_tasks import STAND_INS  # noqa: E402
from remeasure import ROUNDS, RUNS, side_by_side  # noqa: E402

LAYERS = {
    "conv3x3 64->64 @32x32": (lambda: nn.Conv2d(64, 64, 3, padding=1), (1, 64, 32, 32)),
    "conv1x1 64->64 @32x32": (lambda: nn.Conv2d(64, 64, 1), (1, 64, 32, 32)),
    "depthwise3x3 64 @32x32": (lambda: nn.Conv2d(64, 64, 3, padding=1, groups=64), (1, 64, 32, 32)),
    "linear 768->768 seq128": (lambda: nn.Linear(768, 768), (1, 128, 768)),
    "linear 512->512": (lambda: nn.Linear(512, 512), (1, 512)),
}
TASKS = ("digits", "mnist-lenet5", "cifar10-resnet20", "sst2-transformer")


def _spread(values: list[float]) -> float:
    return float((max(values) - min(values)) / np.median(values))


def _weight_bytes(path: str) -> int:
    """Bytes of the stored integer weights alone (the file also holds scales, bias, graph)."""
    import onnx

    return sum(len(t.raw_data) for t in onnx.load(path).graph.initializer if t.name.endswith("weight_quantized"))


def export_layer(make, shape, bits: int | None, path: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(make()).eval()
    x = torch.randn(shape)
    specs = None
    if bits:
        prepare_qat(model, {"0": bits})
        calibrate(model, [torch.randn((8,) + shape[1:])])
        model, specs = freeze(model)
    export_onnx(model, x, path, specs)


def layer_results(out_dir: Path) -> dict:
    results = {}
    for name, (make, shape) in LAYERS.items():
        paths = {}
        for bits in (None, 8, 4, 2):
            paths[f"int{bits}" if bits else "float"] = path = str(out_dir / f"layer-{len(results)}-{bits}.onnx")
            export_layer(make, shape, bits, path)
        latency = side_by_side(paths, torch.randn(shape))
        results[name] = {
            "latency_ms": latency,
            "latency_vs_float": {k: latency[k] / latency["float"] for k in paths if k != "float"},
            "bytes": {k: os.path.getsize(p) for k, p in paths.items()},
            "bytes_vs_int8": {k: os.path.getsize(paths[k]) / os.path.getsize(paths["int8"]) for k in ("int4", "int2")},
            "weight_bytes_vs_int8": {k: _weight_bytes(paths[k]) / _weight_bytes(paths["int8"]) for k in ("int4", "int2")},
        }
        print(f"{name:26s} latency vs float " + " ".join(f"{k} {v:.2f}x" for k, v in
                                                          results[name]["latency_vs_float"].items())
              + "  bytes vs int8 " + " ".join(f"{k} {v:.2f}" for k, v in results[name]["bytes_vs_int8"].items()),
              flush=True)
    return results


EXPORT_SCRIPT = """
import sys
from autocompress import DistillConfig, LayerPlan, Plan, load_task
from autocompress.compressors.pipeline import compress, task_context
from autocompress.evaluators.evaluate import export_artifact
from autocompress.search.first_trials import warm_start_plans
from autocompress.spaces.space import SearchSpace
task = load_task(sys.argv[1], data_dir=sys.argv[2] or None)
int8 = warm_start_plans(SearchSpace(task_context(task).discovery))[0]
for bits, path in zip((8, 4, 2, None), sys.argv[3:]):
    plan = Plan() if bits is None else Plan(layers={name: LayerPlan(bits=bits) for name, _ in int8.layers},
                                            importance=int8.importance)
    export_artifact(compress(task, plan, config=DistillConfig(steps=0)), task.example_inputs, path)
"""


def export_models(code_dir: Path, task: str, data_dir: str | None, paths: list[str]) -> None:
    """Export the uniform int8, int4, int2 plans and the float teacher of ``task`` (as many as
    ``paths`` names, in that order) with the code in ``code_dir``."""
    env = dict(os.environ, PYTHONPATH=f"{code_dir}{os.pathsep}{ROOT / 'benchmarks'}")
    data_dir = str(Path(data_dir).resolve()) if data_dir else ""  # the subprocess runs in code_dir
    subprocess.run([sys.executable, "-c", EXPORT_SCRIPT, task, data_dir, *paths], env=env, check=True,
                   cwd=code_dir)


def model_results(tasks: list[str], data_dir: str | None, out_dir: Path, before_dir: Path,
                  stand_ins: list[str]) -> dict:
    from autocompress.task import load_task
    from autocompress.evaluators.measure import onnx_metric

    results = {}
    for name in tasks:
        clock = time.perf_counter()
        spec = STAND_INS[name] if name in stand_ins else name
        kinds = ("float", "before", "after", "before-int4", "after-int4", "before-int2", "after-int2")
        paths = {k: str(out_dir / f"{name}-{k}.onnx") for k in kinds}
        export_models(ROOT, spec, data_dir, [paths[k] for k in ("after", "after-int4", "after-int2", "float")])
        export_models(before_dir, spec, data_dir, [paths[k] for k in ("before", "before-int4", "before-int2")])
        task = load_task(spec, data_dir=data_dir)
        latency = side_by_side(paths, task.example_inputs)
        metric = {k: onnx_metric(onnx_session(p), task.val, task.metric) for k, p in paths.items()}
        results[name] = {
            "teacher": f"stand-in {spec} (see benchmarks/kernel_tasks.py)" if name in stand_ins else "the task's own",
            "latency_ms": latency,
            "int8_speedup_vs_float": {k: latency["float"] / latency[k] for k in ("before", "after")},
            "int4_int2_speedup_vs_float": {k: latency["float"] / latency[k] for k in kinds[3:]},
            "bytes": {k: os.path.getsize(p) for k, p in paths.items()},
            "val_metric": metric,
            "seconds": time.perf_counter() - clock,
        }
        speedups = {k: latency["float"] / latency[k] for k in kinds[1:]}
        print(f"{name:18s} speed-up over float: " + " ".join(f"{k} {v:.2f}x" for k, v in speedups.items())
              + "; val metric " + " ".join(f"{k} {v:.4f}" for k, v in metric.items()), flush=True)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "kernels.json"))
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--skip-layers", action="store_true")
    parser.add_argument("--stand-ins", nargs="*", default=[], choices=sorted(STAND_INS),
                        help="tasks measured on a stand-in teacher (same architecture, no training run)")
    args = parser.parse_args(argv)
    import onnxruntime

    main_commit = subprocess.run(["git", "rev-parse", "main"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    payload = {"command": " ".join(sys.argv), "onnxruntime": onnxruntime.__version__, "torch": torch.__version__, "cpus": os.cpu_count(),
               "load_average_at_start": os.getloadavg(), "before_commit": main_commit, "after_commit": head,
               "method": f"{ROUNDS} interleaved rounds x {RUNS} runs of latency_ms (batch 1, 1 thread, pinned); "
                         "median of round medians"}
    with tempfile.TemporaryDirectory() as tmp:
        out_dir, before_dir = Path(tmp), Path(tmp) / "main"
        before_dir.mkdir()
        archive = subprocess.run(["git", "archive", main_commit], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before_dir)], input=archive, check=True)
        if not args.skip_layers:
            payload["layers"] = layer_results(out_dir)
        payload["models"] = model_results(args.tasks, args.data_dir, out_dir, before_dir, args.stand_ins)
    payload["load_average_at_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
