"""compare.py's strategies that are fixed plans, not searches: each plan evaluated exactly as a
trial is (``autocompress.evaluate``: the exported file's bytes, its pinned ONNX Runtime latency,
its validation accuracy), in one folder per candidate.

  uniform-int8  every layer int8, post-training (calibration only, no fine-tuning)
  prune50-int8  50% of every group's channels pruned + int8, fine-tuned like a trial
  manual        Torch-Pruning global magnitude pruning at 30/50/70% + int8, fine-tuned like a
                trial (``manual.py``): three candidates

``run_fixed`` writes ``OUT/result.json`` and ``OUT/<candidate>/model.onnx``; ``stored_fixed``
reads them back as a trials table, so the scores are computed as for a search.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

FIXED = ("uniform-int8", "prune50-int8", "manual")
TRIAL_THREADS = 1  # torch threads of a search's trial (one CPU per trial by default)


def fixed_plans(name: str, task) -> dict:
    """``{candidate name: (plan, fine-tuned?)}`` of one fixed strategy."""
    from autocompress.compressors.pipeline import task_context
    from autocompress.search.first_trials import warm_start_plans
    from autocompress.spaces.space import SearchSpace
    from manual import manual_plans

    if name == "manual":
        return {label: (plan, True) for label, plan in manual_plans(task).items()}
    int8, prune50_int8 = warm_start_plans(SearchSpace(task_context(task).discovery))[:2]  # the search's recipes
    if name == "uniform-int8":
        return {"int8": (int8, False)}
    if name == "prune50-int8":
        return {"prune50-int8": (prune50_int8, True)}
    raise ValueError(f"unknown fixed strategy {name!r}; choose one of: {', '.join(FIXED)}")


def run_fixed(name: str, *, task_spec: str, data_dir: str | None, steps: int, seed: int, out: Path) -> dict:
    """Evaluate every plan of strategy ``name`` as a trial (``steps`` of distillation where it
    fine-tunes, torch on one thread as in a trial); the wall time counts everything from loading
    the task."""
    from autocompress import DistillConfig, evaluate, load_task
    from autocompress.evaluators.evaluate import evaluate_teacher, fidelity_label

    torch.set_num_threads(TRIAL_THREADS)
    clock = time.perf_counter()
    task = load_task(task_spec, data_dir=data_dir)
    teacher = evaluate_teacher(task, out_dir=out / "teacher")
    candidates = []
    for label, (plan, tuned) in fixed_plans(name, task).items():
        config = DistillConfig(steps=steps if tuned else 0, seed=seed)
        metrics = evaluate(task, plan, out_dir=out / label, config=config)
        candidates.append({"name": label, "plan": json.loads(plan.to_json()), "metrics": metrics.to_dict(),
                           "fidelity": fidelity_label(config)})
    result = {"strategy": name, "teacher": teacher.to_dict(), "candidates": candidates,
              "wall_s": round(time.perf_counter() - clock, 2)}
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def stored_fixed(out: Path) -> dict:
    """A fixed strategy's result as ``run_fixed`` stored it, its candidates as a trials table
    (``number`` = position) with each candidate's file under ``files``."""
    import pandas as pd

    result = json.loads((out / "result.json").read_text())
    rows = [{"number": i, "state": "COMPLETE", "name": c["name"], **c["metrics"]}
            for i, c in enumerate(result["candidates"])]
    files = {i: out / c["name"] / "model.onnx" for i, c in enumerate(result["candidates"])}
    return result | {"trials": pd.DataFrame(rows), "files": files, "teacher_file": out / "teacher" / "model.onnx"}
