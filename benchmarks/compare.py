"""The joint search against what a user would do instead, at equal wall-clock budget.

    python benchmarks/compare.py --task mnist-lenet5 --data-dir ../shared/data --time-budget 180 --seeds 0 1 2 \\
        --keep /tmp/cmp-mnist
    python benchmarks/compare.py --task cifar10-resnet20 --data-dir ../shared/data --time-budget 1800 --steps 1000 \\
        --seeds 0 --strategy-seeds joint=0,1 random=0,1 --keep /tmp/cmp-cifar     # in pieces: the same command again

Strategies:
  joint         the joint space (prune x quant x low-rank x student), TPE + local search around the
                front, warm-started, sensitivity scan first (the product's default)
  joint-proposals the same, every other new plan proposed by the scan's predictor (--proposals)
  joint-rungs   the same with successive halving (--min-steps steps/9, eta 3)
  joint-tpe     the same without local search: every new plan from TPE (--no-local-search)
  joint-unguided the same with local search's neighbours taken at random, not chosen by the scan (--no-guide)
  random        random sampling over the same joint space (no scan, no local search: it uses neither)
  prune-only, quant-only, lowrank-only, student-only
                TPE over one technique's knobs (the rest stay at the teacher's), no warm start, no
                sensitivity scan, no local search
  uniform-int8  one plan: every layer int8, post-training (calibration only, no fine-tuning)
  prune50-int8  one plan: 50% of every group's channels pruned + int8, fine-tuned like a trial
  manual        Torch-Pruning global magnitude pruning at 30/50/70% + int8, fine-tuned like a trial

Every search gets the same wall-clock budget (``--time-budget``, passed to the search; ``--trials``
only caps it); the fixed plans take what they take, and their wall time is recorded. After all
runs, the final fronts are measured again side by side (``remeasure.py``): teacher and every
front candidate's exported file timed interleaved in this process, their accuracy that of the
file on the TEST split. With ``--keep DIR`` the same command again reuses every finished run and
continues unfinished ones; a larger ``--time-budget`` extends kept searches for the seconds
they have left; a run made with other settings is refused (``keep.py``).

Writes RESULTS/<task>.json, <task>.md and <task>.png (RESULTS: ``--results``, default
benchmarks/results) and copies the report of the joint search (first seed) to reports/<task>.html.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import RESULTS, machine, run_search, wait_until_quiet  # noqa: E402
from compare_report import headline, markdown, plot  # noqa: E402
from fixed_plans import FIXED, run_fixed, stored_fixed  # noqa: E402
from keep import check_reuse, record_request  # noqa: E402
from remeasure import ROUNDS, RUNS, remeasure  # noqa: E402

from autocompress.search.pareto import normalized_hypervolume, pareto_front  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = ("joint-proposals", "joint-rungs", "joint-tpe", "joint-unguided")  # the joint search less one of its parts: asked for by name
MIN_STEPS = "STEPS/9"  # in a strategy's flags: --steps // 9 (rungs of steps/9, steps/3, steps at eta 3)
SEARCHES = {
    "joint": ["--sampler", "tpe"],
    "joint-proposals": ["--sampler", "tpe", "--proposals"],
    "joint-rungs": ["--sampler", "tpe", "--min-steps", MIN_STEPS],
    "joint-tpe": ["--sampler", "tpe", "--no-local-search"],
    "joint-unguided": ["--sampler", "tpe", "--no-guide"],
    "random": ["--sampler", "random", "--no-warm-start", "--no-sensitivity", "--no-local-search"],
    "prune-only": ["--techniques", "prune", "--no-warm-start", "--no-sensitivity", "--no-local-search"],
    "quant-only": ["--techniques", "quant", "--no-warm-start", "--no-sensitivity", "--no-local-search"],
    "lowrank-only": ["--techniques", "lowrank", "--no-warm-start", "--no-sensitivity", "--no-local-search"],
    "student-only": ["--techniques", "student", "--no-warm-start", "--no-sensitivity", "--no-local-search"],
}
TRIALS_CAP = 100_000  # with a time budget and no --trials: the budget alone stops a search


def scores(trials, teacher: dict, fidelity: str | None) -> dict:
    """Hypervolume and the best ratios within 1 accuracy point of the teacher, from the numbers
    the run stored (validation accuracy, latency measured during the run)."""
    front = pareto_front(trials, fidelity=fidelity)
    done = trials[trials["state"] == "COMPLETE"]
    if fidelity is not None:
        done = done[done["fidelity"] == fidelity]
    close = done[done["accuracy"] >= teacher["accuracy"] - 0.01]
    best = lambda col: round(float((close[col] / teacher[col]).min()), 5) if len(close) else None  # noqa: E731
    return {"hypervolume": round(normalized_hypervolume(front, teacher), 6), "size_ratio_1pt": best("size_bytes"),
            "latency_ratio_1pt": best("latency_ms"), "complete": int(len(done)), "front": front}


def stored_search(out: Path, wall_s: float | None = None) -> dict:
    """A finished search's run.json and trials, with each trial's file under ``files``."""
    import pandas as pd

    from datetime import datetime

    run = json.loads((out / "run.json").read_text())
    seconds = (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()
    if len(run.get("sessions", [])) > 1:  # resumed (or extended) later: the hours between sessions are not its time
        seconds = searched_s(run)
    trials = pd.read_csv(out / "trials.csv")
    files = {int(n): out / "artifacts" / str(int(n)) / "model.onnx" for n in trials["number"]}
    return {"run": run, "trials": trials, "wall_s": wall_s if wall_s is not None else seconds, "files": files,
            "teacher_file": out / "teacher" / "model.onnx"}


def request(name: str, seed: int, args) -> dict:
    """What makes one run of one strategy: kept runs are reused only for the same request."""
    searching = name in SEARCHES
    return {"task": args.task, "strategy": name, "seed": seed, "steps": args.steps,
            "trials": args.trials if searching else None, "time_budget_s": args.time_budget if searching else None,
            "workers": args.workers if searching else None, "flags": SEARCHES.get(name, []),
            "budget": (budget_flags(args) or None) if searching else None}


def budget_flags(args) -> list[str]:
    """The user's budget (``--max-size``, ``--max-latency``), given to every search alike."""
    return [*(["--max-size", args.max_size] if args.max_size else []),
            *(["--max-latency", args.max_latency] if args.max_latency else [])]


def search_cli(name: str, seed: int, args, out: Path, *, time_budget: float | None = None) -> list[str]:
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    budget = ["--time-budget", str(time_budget or args.time_budget)] if args.time_budget else []
    return ["--task", args.task, *data, "--trials", str(args.trials), "--steps", str(args.steps), "--seed", str(seed),
            "--workers", str(args.workers), *budget, *budget_flags(args), *_flags(name, args.steps), "--out", str(out)]


def _flags(name: str, steps: int) -> list[str]:
    """A search strategy's flags, ``MIN_STEPS`` spelled out for these steps.

    >>> _flags("joint-rungs", 300)
    ['--sampler', 'tpe', '--min-steps', '33']
    """
    return [str(max(1, steps // 9)) if flag == MIN_STEPS else flag for flag in SEARCHES[name]]


def run_one(name: str, seed: int, args, work: Path) -> dict:
    """One strategy at one seed, run now or reused from ``--keep``: its teacher, trials table,
    fidelity, wall time, files and command."""
    out = work / f"{name}-{seed}"
    started = check_reuse(out, request(name, seed, args))
    if not started:
        record_request(out, request(name, seed, args))
    if name in FIXED:
        if not (out / "result.json").is_file():
            wait_until_quiet(timeout_s=args.quiet_timeout)  # an earlier search's Ray processes would skew latency
            shutil.rmtree(out, ignore_errors=True)
            run_fixed(name, task_spec=args.task, data_dir=args.data_dir, steps=args.steps, seed=seed, out=out)
        run = stored_fixed(out)
        return run | {"fidelity": None, "command": f"fixed plans ({name}), {args.steps} fine-tuning steps"}
    cli = search_cli(name, seed, args, out)
    left_s = budget_left(out, args)
    if left_s is None or left_s > 0:
        wait_until_quiet(timeout_s=args.quiet_timeout)
        if (out / "run.json").is_file():  # a kept run that stopped early continues with what its budget has left
            cli = search_cli(name, seed, args, out, time_budget=left_s) + ["--resume"]
        wall = run_search(cli)["wall_s"]
    run = stored_search(out, None if left_s == 0 else wall)
    command = "autocompress search " + " ".join(search_cli(name, seed, args, out)[:-2]).replace(
        f"--seed {seed}", "--seed SEED")
    return run | {"teacher": run["run"]["teacher"], "fidelity": run["run"]["settings"]["fidelity"], "command": command}


def searched_s(run: dict) -> float:
    """Seconds a search's trial phase ran, over all its sessions (what ``--time-budget`` limits)."""
    return round(sum(session["wall_s"] for session in run.get("sessions", [])), 2)


def budget_left(out: Path, args) -> float | None:
    """Seconds of ``--time-budget`` a kept search has left (0: it is done, nothing to run: its budget
    is spent or it stored the ``--trials`` asked for); None for a new search, or one without a time
    budget that has not finished."""
    if not (out / "run.json").is_file():
        return None
    run = json.loads((out / "run.json").read_text())
    sessions = run.get("sessions") or [{}]
    if sessions[-1].get("trials", 0) >= args.trials:
        return 0
    if args.time_budget is None:
        return 0 if "finished_at" in run else None
    left = args.time_budget - searched_s(run)
    return 0 if left < 0.02 * args.time_budget else round(left, 1)


def strategy_entry(name: str, runs: dict[int, dict], args) -> dict:
    """Today's keys of one strategy (in-run scores per seed) plus its ``budget_s``."""
    entry = {"hypervolume": [], "best_size_ratio_1pt": [], "best_latency_ratio_1pt": [],
             "trials": args.trials if name in SEARCHES else len(next(iter(runs.values()))["trials"]),
             "seeds": list(runs), "wall_s": [], "complete_trials": [], "command": next(iter(runs.values()))["command"],
             "budget_s": args.time_budget if name in SEARCHES else None, "searched_s": []}
    for seed, run in runs.items():
        s = scores(run["trials"], run["teacher"], run["fidelity"])
        entry["hypervolume"].append(s["hypervolume"])
        entry["best_size_ratio_1pt"].append(s["size_ratio_1pt"])
        entry["best_latency_ratio_1pt"].append(s["latency_ratio_1pt"])
        entry["complete_trials"].append(s["complete"])
        entry["wall_s"].append(round(run["wall_s"], 1))
        entry["searched_s"].append(searched_s(run["run"]) if name in SEARCHES else None)
        print(f"{name:<13} seed {seed}: in-run hypervolume {s['hypervolume']:.5f}, {s['complete']} complete, "
              f"{run['wall_s']:.0f} s", flush=True)
    entry["median_hypervolume"] = statistics.median(entry["hypervolume"])
    return entry


def front_files(runs: dict[str, dict[int, dict]]) -> dict[tuple, Path]:
    """``(strategy, seed, trial) -> model.onnx`` of every seed's final front."""
    files = {}
    for name, by_seed in runs.items():
        for seed, run in by_seed.items():
            for number in scores(run["trials"], run["teacher"], run["fidelity"])["front"]["number"]:
                path = run["files"][int(number)]
                if path.is_file():
                    files[(name, seed, int(number))] = path
    return files


def add_fronts(strategies: dict, runs: dict, args) -> dict:
    """Measure every final front again side by side with the teacher; adds ``front``, the
    re-measured hypervolumes and ``headline`` per strategy. Returns the teacher re-measured."""
    from autocompress.task import load_task

    task = load_task(args.task, data_dir=args.data_dir)
    first = next(iter(next(iter(runs.values())).values()))
    wait_until_quiet(timeout_s=args.quiet_timeout)
    teacher, entries = remeasure(task, first["teacher_file"], front_files(runs), rounds=args.rounds, runs=args.runs)
    relative_to = {"accuracy": teacher["test_accuracy"], "size_bytes": teacher["size_bytes"],
                   "latency_ms": teacher["latency_ms"]}
    for (name, seed, trial), e in entries.items():
        if name in FIXED:  # which plan: global30, int8, ...
            table = runs[name][seed]["trials"]
            e["plan"] = str(table.loc[table["number"] == trial, "name"].iloc[0])
    for name, entry in strategies.items():
        entry["front"] = [e for (strategy, _, _), e in entries.items() if strategy == name]
        entry["remeasured_hypervolume"] = [_hypervolume([e for e in entry["front"] if e["seed"] == seed], relative_to)
                                           for seed in entry["seeds"]]
        entry["median_remeasured_hypervolume"] = statistics.median(entry["remeasured_hypervolume"])
        entry["headline"] = headline(entry["front"])
    return teacher


def _hypervolume(front: list[dict], teacher: dict) -> float:
    import pandas as pd

    frame = pd.DataFrame([{"accuracy": e["test_accuracy"], "size_bytes": e["size_bytes"],
                           "latency_ms": e["latency_ms"]} for e in front], columns=["accuracy", "size_bytes",
                                                                                     "latency_ms"])
    return round(normalized_hypervolume(frame, teacher), 6)


def compare(args) -> dict:
    """Run (or reuse) every strategy and seed, re-measure the fronts, write the results."""
    work = Path(args.keep or tempfile.mkdtemp(prefix=f"autocompress-compare-{args.task}-"))
    runs = {name: {seed: run_one(name, seed, args, work) for seed in args.seeds_of.get(name, args.seeds)}
            for name in args.strategies}
    strategies = {name: strategy_entry(name, by_seed, args) for name, by_seed in runs.items()}
    teachers = [run["teacher"] for by_seed in runs.values() for run in by_seed.values()]
    remeasured = add_fronts(strategies, runs, args)
    pool = {name: e["headline"] for name, e in strategies.items()  # the product's own, when it ran
            if e["headline"] and (name == "joint" or "joint" not in strategies)}
    best = max(pool, key=lambda name: pool[name]["size_x"] * pool[name]["latency_x"], default=None)
    result = {
        "task": args.task,
        "teacher": {k: teachers[0][k] for k in ("accuracy", "size_bytes", "latency_ms")},
        "teacher_latency_ms_all_runs": [t["latency_ms"] for t in teachers],
        "teacher_remeasured": remeasured,
        "command": "python benchmarks/compare.py " + " ".join(args.argv),
        "machine": machine(),
        "steps": args.steps,
        "time_budget_s": args.time_budget,
        "remeasure": {"rounds": args.rounds, "runs": args.runs, "split": "test",
                      "method": "teacher and every front file in one process, interleaved rounds of latency_ms "
                                "(batch 1, 1 thread, pinned); median of the round medians"},
        "headline": {"strategy": best, **pool[best]} if best else None,
        "strategies": strategies,
    }
    write(result, Path(args.results), work if "joint" in runs else None, args)
    return result


def write(result: dict, results: Path, work: Path | None, args) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{args.task}.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    (results / f"{args.task}.md").write_text(markdown(result))
    plot(result, results / f"{args.task}.png")
    report = work / f"joint-{args.seeds_of.get('joint', args.seeds)[0]}" / "report.html" if work else None
    if report and report.is_file() and args.reports:
        Path(args.reports).mkdir(parents=True, exist_ok=True)
        shutil.copy(report, Path(args.reports) / f"{args.task}.html")
    print(markdown(result))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="compare.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="wall-clock budget of every search (the comparison's fairness; give it)")
    parser.add_argument("--trials", type=int, default=None,
                        help=f"cap on trials per search (default: {TRIALS_CAP} with --time-budget, else 40)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategy-seeds", nargs="+", default=[], metavar="NAME=S,S",
                        help="other seeds for some strategies, e.g. joint=0,1 random=0,1 (the rest: --seeds)")
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps per candidate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-size", default=None, metavar="SIZE",
                        help="a size budget given to every search (e.g. 135KB): plans over it are measured, not "
                             "fine-tuned; default none")
    parser.add_argument("--max-latency", default=None, metavar="TIME",
                        help="a latency budget given to every search (e.g. 0.2ms); default none")
    parser.add_argument("--strategies", nargs="+", default=[s for s in [*SEARCHES, *FIXED] if s not in ABLATIONS],
                        choices=[*SEARCHES, *FIXED], help="default: all but the ablations " + ", ".join(ABLATIONS))
    parser.add_argument("--keep", default=None, help="keep the run directories here (default: a temporary folder); "
                        "the same command again reuses every finished run in it and runs the rest; a larger "
                        "--time-budget extends the kept searches")
    parser.add_argument("--results", default=str(RESULTS), help="where <task>.json/.md/.png go")
    parser.add_argument("--reports", default=str(ROOT / "reports"), help="where the joint search's report goes")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds of the side-by-side timing")
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs per file per round")
    parser.add_argument("--quiet-timeout", type=float, default=120.0,
                        help="seconds to wait at most for an idle machine before each run and the re-measurement")
    args = parser.parse_args(argv)
    _check_numbers(args, parser)
    if args.keep and Path(args.keep).exists() and not Path(args.keep).is_dir():
        parser.error(f"--keep {args.keep}: a file, not a folder; give a folder (it is made if missing)")
    if args.trials is None:
        args.trials = TRIALS_CAP if args.time_budget else 40
    args.argv = list(argv)
    args.seeds_of = dict(_strategy_seeds(item, parser) for item in args.strategy_seeds)
    return args


# flag -> (smallest value allowed, whether the smallest itself is allowed); argparse checks the types
BOUNDS = {"time_budget": (0, False), "trials": (1, True), "steps": (0, True), "workers": (1, True),
          "seeds": (0, True), "rounds": (1, True), "runs": (1, True), "quiet_timeout": (0, True)}


def _check_numbers(args, parser) -> None:
    """Every number flag finite and in range, or one line naming the flag (argparse's exit 2)."""
    for dest, (least, inclusive) in BOUNDS.items():
        values = getattr(args, dest)
        for value in values if isinstance(values, list) else [values]:
            if value is not None and (not math.isfinite(value) or value < least or (value == least and not inclusive)):
                bound = f"{'at least' if inclusive else 'above'} {least}"
                parser.error(f"--{dest.replace('_', '-')} {value}: must be a finite number {bound}")


def _strategy_seeds(item: str, parser) -> tuple[str, list[int]]:
    name, _, seeds = item.partition("=")
    if name not in [*SEARCHES, *FIXED] or not re.fullmatch(r"\d+(,\d+)*", seeds):
        parser.error(f"--strategy-seeds {item!r}: give NAME=SEED[,SEED...] with a strategy name, e.g. joint=0,1")
    return name, [int(s) for s in seeds.split(",")]


def main(argv: list[str] | None = None) -> int:
    from autocompress.task import UsageError, load_task

    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        load_task(args.task, data_dir=args.data_dir)  # an unknown task or missing data: said now, not after hours
    except UsageError as exc:
        print(f"compare.py: error: {exc}", file=sys.stderr)
        return 2
    compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
