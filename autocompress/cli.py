"""The command line: parse, call the API, print. Bad input is one line on stderr and exit code 2.

    autocompress tasks
    autocompress inspect --task digits
    autocompress search  --task digits --trials 40 --out runs/digits
    autocompress best    runs/digits --max-latency 0.03ms --export shipped/
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
import warnings

EXAMPLES = """examples:
  autocompress tasks
  autocompress inspect --task digits
  autocompress search --task digits --out runs/digits
  autocompress search --task mypackage.mytask:make_task --trials 100 --sampler nsga2 --out runs/mine
  autocompress inspect --task digits --sensitivity --run runs/digits
  autocompress best runs/digits --max-size 80KB --min-accuracy 0.98 --export shipped/
  autocompress report runs/digits --png slides/
  autocompress dashboard runs/digits
"""


VALUE_FLAGS = ("--max-size", "--max-latency", "--min-accuracy")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and the fix), like every other bad input, and a
    flag is spelled out: '--no-guid' is refused, not silently taken for '--no-guide'."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"autocompress: error: {message}; see '{self.prog} --help'\n")


def _join_negative_values(argv: list[str]) -> list[str]:
    """'--max-size -5KB' -> '--max-size=-5KB', so the value is checked (and refused) as a budget
    instead of argparse taking '-5KB' for an option."""
    joined, i = [], 0
    while i < len(argv):
        if argv[i] in VALUE_FLAGS and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            joined.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            joined.append(argv[i])
            i += 1
    return joined


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="autocompress", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Find the best compressed version of a trained model: one search over per-layer "
                    "pruning, bit-width, low-rank rank and a distilled student; every number is measured "
                    "on the exported ONNX file.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("tasks", help="list the built-in tasks")

    inspect_p = sub.add_parser("inspect", help="show the compressible layers, dependency groups and search space",
                               description="Show what a search of the task would compress: the Conv2d, Linear "
                                           "and Embedding layers, the groups whose channels are pruned together, "
                                           "the droppable blocks, what is not compressed and why, and every "
                                           "search parameter. "
                                           "With --sensitivity: how much each knob value alone changes accuracy, "
                                           "size and latency.")
    _task_args(inspect_p)
    inspect_p.add_argument("--sensitivity", action="store_true",
                           help="print the sensitivity scan instead: every knob value applied alone (the rest as "
                                "the teacher), calibrated, exported and measured like a trial; accuracy on the first "
                                "512 validation samples, size and latency against the teacher. Computed here (about "
                                "a minute for digits) unless --run gives a search that stored it")
    inspect_p.add_argument("--run", default=None, metavar="RUN_DIR",
                           help="with --sensitivity: print the scan stored in this search's run directory "
                                "(sensitivity.csv) instead of computing it")

    _add_search(sub)
    _budget_spending_args(sub.choices["search"])
    _add_best(sub)
    _add_report_and_dashboard(sub)
    return parser


def _task_args(p) -> None:
    p.add_argument("--task", required=True,
                   help="a built-in task name (see 'autocompress tasks') or package.module:function "
                        "returning an autocompress.Task")
    p.add_argument("--data-dir", default=None, help="folder with the task's data files (built-ins that need them)")



def _add_search(sub) -> None:
    search_p = sub.add_parser("search", help="run a joint compression search and print the Pareto front",
                              description="Run a joint compression search; every trial is stored the moment it "
                                          "finishes. One search per --out at a time.")
    _task_args(search_p)
    search_p.add_argument("--trials", type=int, default=40,
                          help="number of candidates to evaluate (default: 40; with --resume: continue until this many)")
    settings = search_p.add_argument_group(
        "settings (they shape the results; run.json stores them and --resume restores them: give them again "
        "on --resume only with the stored values)")
    settings.add_argument("--sampler", default=None, help="tpe | nsga2 | random (default: tpe)")
    settings.add_argument("--seed", type=int, default=None, help="seed of the sampler and of fine-tuning (default: 0)")
    settings.add_argument("--steps", type=int, default=None,
                          help="distillation fine-tune steps per candidate (default: 300)")
    settings.add_argument("--lr", type=float, default=None,
                          help="learning rate of the fine-tuning (default: the task's, else 2e-3)")
    settings.add_argument("--importance", default=None, choices=["l1", "l2", "taylor"],
                          help="channel importance for structured pruning (default: l1)")
    settings.add_argument("--feature-distill", type=float, default=None, metavar="WEIGHT",
                          help="weight of feature-based distillation (inputs of the output layer); default 0 = off")
    settings.add_argument("--optimizer", default=None, choices=["adamw", "sgd"],
                          help="fine-tuning optimizer: adamw, or sgd with Nesterov momentum 0.9 (default: adamw)")
    settings.add_argument("--warmup", type=float, default=None, metavar="FRACTION",
                          help="fraction of the fine-tuning steps spent warming the learning rate up before its "
                               "cosine decay (default: 0.05)")
    settings.add_argument("--no-augment", action="store_const", const=True, default=None,
                          help="fine-tune without the task's training augmentation (e.g. CIFAR crops and flips)")
    settings.add_argument("--amp", default=None, choices=["bf16"], help="fine-tune in bfloat16 autocast on the "
                          "trials' GPUs (needs --gpus-per-trial, Ampere or later); default: full precision")
    settings.add_argument("--techniques", default=None, metavar="LIST",
                          help="knob families to search, comma-separated: prune, quant (bit-widths), lowrank, "
                               "student (depth and width); default all, jointly")
    settings.add_argument("--no-warm-start", action="store_const", const=True, default=None,
                          help="do not try the known recipes (int8; 50%% prune + int8; shallow int4 student; int4 "
                               "with the first and last layers int8) first")
    settings.add_argument("--no-local-search", action="store_const", const=True, default=None,
                          help="every new plan from the sampler alone; by default every other one is a "
                               "neighbour (one or two knob steps) of a plan on the measured front")
    settings.add_argument("--no-guide", action="store_const", const=True, default=None,
                          help="local search takes a neighbour at random; by default, with the sensitivity scan, "
                               "of 16 neighbours the one the scan predicts will add most to the front")
    search_p.add_argument("--out", default=None, help="run directory (default: runs/<task>)")
    search_p.add_argument("--resume", action="store_true",
                          help="continue the search stored in --out, with its stored settings and storage")
    budget_args(search_p.add_argument_group("budget (a setting: steers the search; any budget can also be asked later "
                                            "with 'best')"))
    _execution_args(search_p)


def _execution_args(search_p) -> None:
    run = search_p.add_argument_group("where trials run (Ray)")
    run.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                     help="trials evaluated at once (capped to the CPUs available; default: one per CPU)")
    run.add_argument("--address", default=None,
                     help="join an existing Ray cluster at HOST:PORT (started with 'ray start --head'); default: local Ray")
    run.add_argument("--cpus-per-trial", type=float, default=1.0,
                     help="CPUs (and torch/ONNX Runtime threads) per trial (default: 1)")
    run.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPU share a trial fine-tunes on, at most 1 "
                     "(0.25: four trials per GPU); export and latency stay on the CPU (default: 0)")
    run.add_argument("--trial-timeout", type=float, default=None, metavar="SECONDS",
                     help="stop a trial still fine-tuning after this long and store it as failed")
    run.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                     help="stop the search this long after it starts, the sensitivity scan included (no scan batch "
                          "starts after a third of it), whatever --trials says (running trials are stored as "
                          "interrupted; --resume runs them again)")
    run.add_argument("--latency-resource", default=None, metavar="NAME",
                     help="measure every latency (and the teacher's) on the Ray node carrying this custom "
                          "resource, one at a time")
    run.add_argument("--storage", default=None, metavar="URL",
                     help="database URL for the study (e.g. postgresql://USER:PASSWORD@HOST/DB); default: "
                          "study.db in the run directory. A resume gives the same URL again (the password is never "
                          "stored)")


def _budget_spending_args(search_p) -> None:
    rungs = search_p.add_argument_group("successive halving (settings too: how fine-tuning is spent across plans)")
    rungs.add_argument("--min-steps", type=int, default=None, metavar="STEPS",
                       help="fine-tune every new plan for STEPS steps first (rung 0); the best 1 in --eta of a rung "
                            "(non-dominated on accuracy, size, latency) continue to STEPS x eta, ... up to --steps, "
                            "from where they stopped (default: off, every plan gets --steps)")
    rungs.add_argument("--eta", type=int, default=None, metavar="N",
                       help="the reduction factor: 1 in N results of a rung goes up (default: 3)")
    settings = search_p.add_argument_group(
        "sensitivity scan and proposals (settings too: run.json stores them; before the first trial, each knob value "
        "alone is measured like a trial and stored as sensitivity.csv)")
    settings.add_argument("--no-sensitivity", action="store_const", const=True, default=None,
                          help="skip the sensitivity scan (e.g. for a baseline search); no --proposals then")
    settings.add_argument("--sensitivity-steps", type=int, default=None, metavar="STEPS",
                          help="fine-tuning steps of each sensitivity cell (default: 0, calibration only)")
    settings.add_argument("--proposals", action="store_const", const=True, default=None,
                          help="every other new plan is the one the scan's predictor expects to extend the front "
                               "most (refit as trials finish); default off: on digits its plans have not yet "
                               "beaten the sampler's (see the README)")


def _add_best(sub) -> None:
    best_p = sub.add_parser("best", help="the best stored candidate under a budget; --export ships it, re-measured",
                            description="Answer a budget from a run's stored results without re-running anything: "
                                        "the preferred complete full-fidelity candidate within it, against the "
                                        "teacher, with every layer's plan. Budgets: size of the ONNX file, median "
                                        "batch-1 latency in ONNX Runtime (1 pinned thread), validation accuracy.")
    best_p.add_argument("run_dir", metavar="RUN_DIR", help="the --out of a search")
    budget_args(best_p)
    best_p.add_argument("--prefer", default="accurate", choices=["accurate", "smallest", "fastest"],
                        help="among feasible candidates: highest accuracy (ties: smaller, then faster), "
                             "smallest, or fastest (default: accurate)")
    best_p.add_argument("--export", metavar="DIR", default=None,
                        help="write model.onnx, plan.json, metrics.json and MODEL_CARD.md into DIR (new or empty, "
                             "outside the run directory), measured again: the file must be the one recorded")
    best_p.add_argument("--trial", type=int, default=None, metavar="N",
                        help="take trial N (e.g. picked in the report) instead of choosing under a budget")
    best_p.add_argument("--data-dir", default=None, help="the task's data folder, if it needs one")


def _add_report_and_dashboard(sub) -> None:
    report_p = sub.add_parser("report", help="write the interactive HTML report of a run (one offline file)",
                              description="Write the run's report: Pareto plots, a budget filter, per-layer plans, "
                                          "search progress and run facts, in one HTML file that works offline "
                                          "(also for a search still running).")
    report_p.add_argument("run_dir", metavar="RUN_DIR", help="the --out of a search")
    report_p.add_argument("-o", "--output", default=None, metavar="FILE",
                          help="where to write it (default: RUN_DIR/report.html)")
    report_p.add_argument("--png", default=None, metavar="DIR",
                          help="also write the main plots as PNG files into DIR (for slides)")
    dash_p = sub.add_parser("dashboard", help="serve optuna-dashboard on the run's study (a live view during a search)")
    dash_p.add_argument("run_dir", metavar="RUN_DIR", help="the --out of a search")
    dash_p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    dash_p.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default 127.0.0.1: reach it from a laptop through an SSH tunnel)")
    dash_p.add_argument("--storage", default=None, metavar="URL",
                        help="the study's database URL, when the search used --storage (its password is not stored)")


def budget_args(group) -> None:
    group.add_argument("--max-size", default=None, metavar="SIZE", help="e.g. 50KB, 1.5MiB (KB = 1000 B, KiB = 1024 B)")
    group.add_argument("--max-latency", default=None, metavar="TIME", help="e.g. 2ms, 250us, 0.01s")
    group.add_argument("--min-accuracy", default=None, metavar="ACC", help="e.g. 0.97 or 97%%")


def _budget(args):
    from autocompress.budget import Budget

    return Budget.parse(max_size=args.max_size, max_latency=args.max_latency, min_accuracy=args.min_accuracy)


def cmd_tasks(args) -> int:
    from autocompress.tasks import BUILTIN_TASKS

    width = max(map(len, BUILTIN_TASKS))
    for name, factory in BUILTIN_TASKS.items():
        print(f"{name:<{width}}  {(factory.__doc__ or '').strip().splitlines()[0]}")
    return 0


def cmd_inspect(args) -> int:
    from autocompress.inspection import inspect_task
    from autocompress.task import UsageError

    if args.run is not None and not args.sensitivity:
        raise UsageError("--run goes with --sensitivity (it names the search whose scan to print); add --sensitivity")
    if args.sensitivity:
        return _print_sensitivity(args)
    info = inspect_task(args.task, data_dir=args.data_dir)
    task = info["task"]
    print(f"task {task['name']}: {task['description'] or task['name']}")
    splits = task["splits"]
    print(f"teacher: {task['params']:,} parameters; splits train {splits['train']}, val {splits['val']}, "
          f"test {splits['test']}\n")
    print("compressible layers:")
    print(f"  {'layer':<22} {'kind':<9} {'weight shape':<18} {'prune group':<18} rank ratios")
    for layer in info["layers"]:
        ranks = ", ".join(f"{r:g}" for r in layer["rank_ratios"]) or f"none ({layer['rank_reason']})"
        print(f"  {layer['name']:<22} {layer['kind']:<9} {str(tuple(layer['shape'])):<18} "
              f"{layer['group'] or '-':<18} {ranks}")
    print("\ndependency groups (output channels, or attention heads, pruned together):")
    for group in info["groups"]:
        print(f"  {group['name']:<22} {group['channels']:>5} {group['unit']:<8} {', '.join(group['members'])}")
    print("\nstudent depth (droppable residual blocks per stage):")
    for stage, blocks in (info["stages"] or {"-": []}).items():
        print(f"  {stage:<22} {', '.join(blocks) or 'none declared (Task.blocks)'}")
    print("\nnot compressed:")
    for name, why in (info["not_compressed"] or {"-": "nothing"}).items():
        print(f"  {name:<22} {why}")
    shares = info["coverage"]
    print(f"\ncoverage of the {shares['weights']:,} weights of Conv/Linear/Embedding/attention/recurrent layers:")
    for technique in ("quantized", "pruned", "factorized", "pruned or factorized"):
        print(f"  {technique:<22} {shares[technique]:>7.1%}")
    print(f"\nsearch space: {len(info['space'])} parameters")
    for name, values in info["space"].items():
        shown = [str(v) if isinstance(v, str) else "float" if v == 32 and name.startswith("bits/") else f"{v:g}"
                 for v in values]
        print(f"  {name:<32} {{{', '.join(shown)}}}")
    return 0


def _print_sensitivity(args) -> int:
    from autocompress.inspection import inspect_sensitivity
    from autocompress.search.sensitivity import format_table

    table = inspect_sensitivity(args.task, data_dir=args.data_dir, run_dir=args.run,
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
    where = f"stored in {args.run}" if args.run else "computed here"
    print(f"sensitivity of {args.task} ({where}): each knob value alone, the rest as the teacher")
    print(format_table(table))
    return 0


# search flag (its argparse dest) -> the SearchSettings keyword it sets
SETTING_FLAGS = {"sampler": "sampler", "seed": "seed", "steps": "distill.steps", "lr": "distill.lr",
                 "importance": "importance", "feature_distill": "distill.feature_weight", "techniques": "techniques",
                 "no_warm_start": "warm_start", "min_steps": "min_steps", "eta": "eta", "optimizer": "distill.optimizer",
                 "warmup": "distill.warmup_fraction", "no_augment": "distill.augment", "amp": "distill.amp",
                 "no_sensitivity": "sensitivity", "sensitivity_steps": "sensitivity_steps", "proposals": "proposals",
                 "no_local_search": "local_search", "no_guide": "guide"}
NEGATED_FLAGS = ("no_warm_start", "no_augment", "no_sensitivity", "no_local_search", "no_guide")  # given: the setting they name is False


def _settings(args, base):
    """``base`` (defaults, or the stored settings on --resume) with the setting flags given."""
    from autocompress.budget import Budget
    from autocompress.search.settings import SearchSettings, distill_config

    data = base.to_dict()
    for dest, keyword in SETTING_FLAGS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if dest == "techniques":
            value = [t.strip() for t in value.split(",") if t.strip()]
        part, _, name = keyword.rpartition(".")
        (data[part] if part else data)[name] = (not value) if dest in NEGATED_FLAGS else value
    given = {k: v for k, v in _budget(args).to_dict().items() if v is not None}
    data["budget"].update(given)
    return SearchSettings(**{**data, "techniques": tuple(data["techniques"]), "distill": distill_config(data["distill"]),
                             "budget": Budget(**data["budget"])})


def _refresh_report(out: Path) -> None:
    """Write report.html; a report that cannot be written never costs the search anything."""
    from autocompress.reports import write_report

    try:
        write_report(out)
    except Exception as exc:  # noqa: BLE001 - the results are stored; only the page is missing
        print(f"warning: report.html not refreshed ({type(exc).__name__}: {str(exc)[:200]}); "
              f"write it later with: autocompress report {shlex.quote(str(out))}")


def cmd_search(args) -> int:
    from autocompress.task import load_task
    from autocompress.search import front_table, search
    from autocompress.search.rundir import REPORT_HTML, read_run_json
    from autocompress.search.settings import Execution, SearchSettings, SettingError
    from autocompress.search.storage import redact_argv, write_failure
    from autocompress.task import UsageError

    if args.trials < 1:
        raise SettingError("trials", f"must be at least 1, got {args.trials}")
    execution = Execution(workers=args.workers, address=args.address, cpus_per_trial=args.cpus_per_trial,
                          gpus_per_trial=args.gpus_per_trial, trial_timeout_s=args.trial_timeout,
                          latency_resource=args.latency_resource, time_budget_s=args.time_budget)
    out = args.out
    if args.resume and out is None:
        raise SettingError("out", "is needed with --resume: give the run directory to continue")
    stored = SearchSettings.from_dict(read_run_json(Path(out), resume=True)["settings"]) if args.resume else None
    settings = _settings(args, stored or SearchSettings())
    task = load_task(args.task, data_dir=args.data_dir)
    out = out or os.path.join("runs", task.name)
    try:
        result = search(task, settings=settings, trials=args.trials, out=out, resume=args.resume,
                        execution=execution, storage=args.storage, task_spec=args.task, data_dir=args.data_dir,
                        command=shlex.join(["autocompress", *redact_argv(sys.argv[1:])]),
                        on_checkpoint=_refresh_report)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        reason = write_failure(exc)
        if reason is None:
            raise
        from autocompress.search.rundir import is_run_dir

        again = ("continue with: " + shlex.join(["autocompress", "search", "--task", args.task, "--out", str(out),
                                                  "--trials", str(args.trials), "--resume"])
                 if is_run_dir(Path(out)) else "run the same command again")
        raise UsageError(f"cannot write the results in {out} or its study ({reason}); every trial stored before is "
                         f"kept: free space or make it writable, then {again}") from exc
    failed = int((result.trials["state"] == "FAIL").sum())
    print(f"\nPareto front ({len(result.pareto)} of {len(result.trials)} trials; {failed} failed) "
          f"vs teacher: accuracy {result.teacher.accuracy:.4f}, {result.teacher.size_bytes / 1024:.1f} KB, "
          f"{result.teacher.latency_ms:.4f} ms")
    print(front_table(result.pareto, result.teacher))
    print(f"\nrun directory: {result.run_dir} (trials.csv, pareto.csv, artifacts/<trial>/model.onnx)")
    report = result.run_dir / REPORT_HTML
    if report.is_file():
        print(f"report: {report} (open it in a browser; it works offline)")
    return 0 if result.finished else 130


def cmd_best(args) -> int:
    from autocompress.evaluators.verify import check_target
    from autocompress.search.best import NothingFeasible, load_run
    from autocompress.budget import Budget

    budget = _budget(args)
    run = load_run(args.run_dir)
    whose = ""
    if budget.is_empty and args.trial is None:  # no limits given: those the search was run under
        budget = Budget(**run.info["settings"].get("budget", {}))
        whose = "the run's budget: " if not budget.is_empty else ""
    if args.export:
        check_target(args.export, run_dir=run.path)  # refused before anything is chosen or measured
    try:
        best = run.best(budget=budget, prefer=args.prefer) if args.trial is None else _chosen(run, args)
    except NothingFeasible as exc:
        print(f"autocompress: error: {exc}", file=sys.stderr)
        if not exc.nearest.empty:
            print("nearest candidates (by how much each misses the limit named):")
            print(exc.nearest.to_string(index=False))
        return 2
    teacher = run.teacher
    if args.trial is None:
        print(f"best of {run.path} under {whose}{budget.describe()} (prefer {args.prefer}): trial {best.number}")
    else:
        print(f"trial {best.number} of {run.path}, as chosen")
    print(f"  {'':<10} {'teacher':>14} {'trial ' + str(best.number):>14}  ratio")
    print(f"  {'accuracy':<10} {teacher.accuracy:>14.4f} {best.accuracy:>14.4f}  "
          f"{(best.accuracy - teacher.accuracy) * 100:+.1f} pt")
    print(f"  {'size':<10} {teacher.size_bytes:>12,} B {best.size_bytes:>12,} B  "
          f"{teacher.size_bytes / best.size_bytes:.1f}x smaller")
    print(f"  {'latency':<10} {teacher.latency_ms:>11.4f} ms {best.latency_ms:>11.4f} ms  "
          f"{teacher.latency_ms / best.latency_ms:.2f}x faster")
    print(f"  plan: {best.plan.summary()}")
    _print_layers(run, best.plan)
    if not args.export:  # the trial itself: the same budget may pick another once the run grows
        print(f"  ship it: {shlex.join(['autocompress', 'best', args.run_dir, '--trial', str(best.number)])} "
              "--export DIR")
        return 0
    report = run.export(best, args.export, data_dir=args.data_dir)
    m, r = report["measured"], report["recorded"]
    print(f"exported to {args.export}: model.onnx, plan.json, metrics.json, MODEL_CARD.md; re-measured here:")
    print(f"  size      {m['size_bytes']:,} B, as recorded")
    print(f"  accuracy  {m['accuracy_val']:.4f} on validation (recorded {r['accuracy_val']:.4f}); "
          f"{m['accuracy_test']:.4f} on the test split the search never saw (teacher "
          f"{report['teacher']['accuracy_test']:.4f})")
    print(f"  {report['latency_note']}")
    print(f"  speed-up over the teacher measured now, side by side: {report['speedup']['now']:.2f}x "
          f"(recorded {report['speedup']['recorded']:.2f}x)")
    return 0


def _print_layers(run, plan) -> None:
    """Every layer's real effect: output channels kept (through its pruning group and the
    student width), weight bits, rank kept, and whether the student drops its block."""
    from autocompress.reports.layer_plan import layer_plan

    model = run.info.get("model") or {}
    if not model.get("layers"):
        return
    rows = layer_plan(plan, layers=model["layers"], stages=model.get("stages"), groups=model.get("groups"),
                      channels=model.get("channels"))
    width = max(len(row.name) for row in rows) + 2
    print(f"  {'layer':<{width}} {'output channels kept':<28} {'weights':<8} rank kept")
    for row in rows:
        kept = f"{row.channels[1]} of {row.channels[0]}" if row.channels else f"{row.kept:.0%}"
        via = f" via {row.group}" if row.group and row.group != row.name and row.kept < 1 else ""
        kept = "dropped block" if row.dropped else kept + via
        rank = "full" if row.rank in (None, 1.0) else f"{row.rank:.0%}"
        bits = f"int{row.bits}" if row.bits else "float32"
        if row.dropped:  # its knobs apply to nothing
            bits, rank = "-", "-"
        elif row.group is None:
            kept = "all (not prunable)"
        print(f"  {row.name:<{width}} {kept:<28} {bits:<8} {rank}")


def _chosen(run, args):
    """The candidate named by --trial: a complete trial at the run's full fidelity."""
    from autocompress.task import UsageError

    if any(v is not None for v in (args.max_size, args.max_latency, args.min_accuracy)):
        raise UsageError("--trial names the candidate itself; drop --max-size/--max-latency/--min-accuracy, "
                         "or drop --trial to choose under the budget")
    rows = run.candidates[run.candidates["number"] == args.trial]
    if rows.empty:
        numbers = run.candidates["number"].astype(int).tolist()
        raise UsageError(f"--trial {args.trial}: not a complete full-fidelity trial of {run.path} (lower rungs and "
                         f"failed trials cannot be shipped); candidates: {', '.join(map(str, numbers[:20]))}"
                         + (" ..." if len(numbers) > 20 else ""))
    return run.candidate(args.trial)


def cmd_report(args) -> int:
    import time

    from autocompress.reports import write_report
    from autocompress.reports.png import PNG_NAMES

    clock = time.perf_counter()
    path = write_report(args.run_dir, args.output, png_dir=args.png)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - clock:.1f} s); "
          "one file, works offline: open it in any browser")
    if args.png:
        print(f"plots: {', '.join(str(Path(args.png) / name) for name in PNG_NAMES)}")
    return 0


def cmd_dashboard(args) -> int:
    from autocompress.reports.dashboard import serve_dashboard
    from autocompress.search.best import load_run

    try:
        serve_dashboard(load_run(args.run_dir), host=args.host, port=args.port, storage=args.storage)
    except KeyboardInterrupt:
        print("dashboard stopped")
    return 0


COMMANDS = {"tasks": cmd_tasks, "inspect": cmd_inspect, "search": cmd_search, "best": cmd_best,
            "report": cmd_report, "dashboard": cmd_dashboard}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    warnings.filterwarnings("ignore")
    from autocompress.task import UsageError

    from autocompress.search.settings import SettingError, flag_for

    try:
        return COMMANDS[args.command](args)
    except SettingError as exc:  # the Python keyword, said as the flag that sets it
        print(f"autocompress: error: {flag_for(exc.name)} {exc.problem}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"autocompress: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `autocompress best RUN | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # Ctrl-C before a search started storing anything (a search handles its own)
        print("autocompress: stopped (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
