"""The joint search against what a user would do instead, at equal trials and seeds.

    python benchmarks/compare.py --task mnist-lenet5 --data-dir ../shared/data --trials 40 --seeds 0 1 2

Strategies:
  joint         the joint space (prune x quant x low-rank x student), TPE, warm-started (the product's default)
  random        random sampling over the same joint space (no sensitivity scan: it uses none)
  prune-only, quant-only, lowrank-only, student-only
                TPE over one technique's knobs (the rest stay at the teacher's), no warm start, no
                sensitivity scan
  uniform-int8  one plan: every layer int8, post-training (calibration only, no fine-tuning)
  prune50-int8  one plan: 50% of every group's channels pruned + int8, fine-tuned like a trial

With --keep DIR, an interrupted benchmark continues where it stopped. Scores, per strategy and seed, over complete full-fidelity trials: hypervolume in normalized
objectives (1 - accuracy/teacher accuracy, size ratio, latency ratio; reference (0.05, 1, 1)),
and the best size ratio and latency ratio within 1 accuracy point of the teacher. Writes
benchmarks/results/<task>.json, <task>.md and <task>.png, and copies the report of the joint
search (first seed) to reports/<task>.html.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, machine, run_search, wait_until_quiet

from autocompress.search.pareto import normalized_hypervolume, pareto_front

ROOT = Path(__file__).resolve().parents[1]
SEARCHES = {
    "joint": ["--sampler", "tpe"],
    "random": ["--sampler", "random", "--no-warm-start", "--no-sensitivity"],
    "prune-only": ["--techniques", "prune", "--no-warm-start", "--no-sensitivity"],
    "quant-only": ["--techniques", "quant", "--no-warm-start", "--no-sensitivity"],
    "lowrank-only": ["--techniques", "lowrank", "--no-warm-start", "--no-sensitivity"],
    "student-only": ["--techniques", "student", "--no-warm-start", "--no-sensitivity"],
}
RECIPES = ("uniform-int8", "prune50-int8")


def scores(trials, teacher: dict, fidelity: str) -> dict:
    """Hypervolume and the best ratios within 1 accuracy point of the teacher."""
    front = pareto_front(trials, fidelity=fidelity)
    done = trials[(trials["state"] == "COMPLETE") & (trials["fidelity"] == fidelity)]
    close = done[done["accuracy"] >= teacher["accuracy"] - 0.01]
    best = lambda col: round(float((close[col] / teacher[col]).min()), 5) if len(close) else None  # noqa: E731
    return {"hypervolume": round(normalized_hypervolume(front, teacher), 6), "size_ratio_1pt": best("size_bytes"),
            "latency_ratio_1pt": best("latency_ms"), "complete": int(len(done))}


def run_recipe(name: str, *, task_spec: str, data_dir: str | None, steps: int, seed: int, out: Path) -> dict:
    """One fixed plan, evaluated here exactly as a trial is (file size, pinned ORT latency, val accuracy)."""
    import pandas as pd

    from autocompress import DistillConfig, evaluate, load_task
    from autocompress.compressors.pipeline import task_context
    from autocompress.evaluators.evaluate import evaluate_teacher, fidelity_label
    from autocompress.spaces.space import SearchSpace

    clock = time.perf_counter()
    task = load_task(task_spec, data_dir=data_dir)
    info = task_context(task).discovery
    int8, prune50_int8 = SearchSpace(info).warm_start_plans()[:2]  # the search's own known recipes
    plan, config = ((int8, DistillConfig(steps=0, seed=seed)) if name == "uniform-int8"
                    else (prune50_int8, DistillConfig(steps=steps, seed=seed)))
    teacher = evaluate_teacher(task, out_dir=out / "teacher")
    metrics = evaluate(task, plan, out_dir=out / "candidate", config=config)
    result = {"teacher": teacher.to_dict(), "candidate": metrics.to_dict(), "fidelity": fidelity_label(config),
              "wall_s": time.perf_counter() - clock}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result


def stored_recipe(out: Path) -> dict:
    """A recipe's result as run_recipe stored it, with its one candidate as a trials table."""
    import pandas as pd

    result = json.loads((out / "result.json").read_text())
    return result | {"trials": pd.DataFrame([{"number": 0, "state": "COMPLETE", **result["candidate"]}])}


def stored_search(out: Path, wall_s: float | None = None) -> dict:
    import pandas as pd

    from datetime import datetime

    run = json.loads((out / "run.json").read_text())
    seconds = (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()
    return {"run": run, "trials": pd.read_csv(out / "trials.csv"), "wall_s": wall_s if wall_s is not None else seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps per candidate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategies", nargs="+", default=[*SEARCHES, *RECIPES])
    parser.add_argument("--keep", default=None, help="keep the run directories here (default: a temporary folder); "
                        "the same command again reuses every finished run in it and runs the rest")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix=f"autocompress-compare-{args.task}-"))
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    strategies, teachers = {}, []
    for name in args.strategies:
        entry = {"hypervolume": [], "best_size_ratio_1pt": [], "best_latency_ratio_1pt": [], "trials": args.trials,
                 "seeds": args.seeds, "wall_s": [], "complete_trials": []}
        for seed in args.seeds:
            out = work / f"{name}-{seed}"
            if name in SEARCHES:
                cli = ["--task", args.task, *data, "--trials", str(args.trials), "--steps", str(args.steps),
                       "--seed", str(seed), "--workers", str(args.workers), *SEARCHES[name], "--out", str(out)]
                finished = (out / "run.json").is_file() and "finished_at" in json.loads((out / "run.json").read_text())
                resume = ["--resume"] if (out / "run.json").is_file() and not finished else []
                if not finished:
                    wait_until_quiet()
                run = stored_search(out) if finished else run_search(cli + resume)  # --keep: finished runs are reused
                teacher, trials, fidelity = run["run"]["teacher"], run["trials"], run["run"]["settings"]["fidelity"]
                entry["command"] = "autocompress search " + " ".join(cli[:-2]).replace(f"--seed {seed}", "--seed SEED")
                if name == "joint" and seed == args.seeds[0]:
                    (ROOT / "reports").mkdir(exist_ok=True)
                    shutil.copy(out / "report.html", ROOT / "reports" / f"{args.task}.html")
            else:
                if not (out / "result.json").is_file():
                    wait_until_quiet()  # the previous search's Ray processes would skew the latency
                    run_recipe(name, task_spec=args.task, data_dir=args.data_dir, steps=args.steps, seed=seed, out=out)
                run = stored_recipe(out)
                teacher, trials, fidelity = run["teacher"], run["trials"], run["fidelity"]
                entry["trials"] = 1
            teachers.append(teacher)
            s = scores(trials, teacher, fidelity)
            entry["hypervolume"].append(s["hypervolume"])
            entry["best_size_ratio_1pt"].append(s["size_ratio_1pt"])
            entry["best_latency_ratio_1pt"].append(s["latency_ratio_1pt"])
            entry["complete_trials"].append(s["complete"])
            entry["wall_s"].append(round(run["wall_s"], 1))
            print(f"{name:<13} seed {seed}: hypervolume {s['hypervolume']:.5f}, within 1 pt: size ratio "
                  f"{s['size_ratio_1pt']}, latency ratio {s['latency_ratio_1pt']}, {run['wall_s']:.0f} s", flush=True)
        entry["median_hypervolume"] = statistics.median(entry["hypervolume"])
        strategies[name] = entry
    first = teachers[0]
    result = {
        "task": args.task,
        "teacher": {k: first[k] for k in ("accuracy", "size_bytes", "latency_ms")},
        "teacher_latency_ms_all_runs": [t["latency_ms"] for t in teachers],
        "command": "python benchmarks/compare.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "steps": args.steps,
        "strategies": strategies,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.task}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.task}.md").write_text(markdown(result))
    plot(result, RESULTS / f"{args.task}.png")
    print(markdown(result))
    return 0


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def markdown(result: dict) -> str:
    t = result["teacher"]
    lines = [f"# {result['task']}: joint search vs alternatives",
             "",
             f"Teacher: accuracy {t['accuracy']:.4f}, {t['size_bytes']:,} B, {t['latency_ms']:.4f} ms. "
             f"Command: `{result['command']}`. Machine: {result['machine']['cpus']} CPUs. "
             f"Fine-tuning: {result['steps']} steps per candidate.",
             "",
             "| strategy | trials x seeds | hypervolume (median; per seed) | best size within 1 pt | "
             "best latency within 1 pt | wall time per seed |",
             "|---|---|---|---|---|---|"]
    for name, e in result["strategies"].items():
        size, latency = _median(e["best_size_ratio_1pt"]), _median(e["best_latency_ratio_1pt"])
        lines.append(
            f"| {name} | {e['trials']} x {len(e['seeds'])} | {e['median_hypervolume']:.5f}; "
            f"{', '.join(f'{v:.5f}' for v in e['hypervolume'])} | "
            f"{f'{1 / size:.1f}x smaller' if size else 'none'} | {f'{1 / latency:.2f}x faster' if latency else 'none'} | "
            f"{statistics.median(e['wall_s']):.0f} s |")
    lines += ["", "Hypervolume: normalized objectives (1 - accuracy/teacher accuracy, size/teacher size, "
              "latency/teacher latency), reference point (0.05, 1, 1); larger is better. \"Within 1 pt\": "
              "complete full-fidelity candidates whose validation accuracy is at most 1 point below the "
              "teacher's; medians over seeds.", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["strategies"])
    fig, ax = plt.subplots(figsize=(8, 4), dpi=150)
    for i, name in enumerate(names):
        values = result["strategies"][name]["hypervolume"]
        ax.bar(i, statistics.median(values), color="#1f5fbf" if name == "joint" else "#9aa5b1")
        ax.scatter([i] * len(values), values, color="black", s=12, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("hypervolume (normalized)")
    ax.set_title(f"{result['task']}: median over seeds (dots: each seed)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
