"""The command line: parse, call the API, print. Bad input is one line on stderr and exit code 2.

    autocompress tasks
    autocompress inspect --task digits
    autocompress search  --task digits --trials 40 --out runs/digits
    autocompress best    runs/digits --max-latency 0.03ms --export shipped/
"""

from __future__ import annotations

import os
import shlex
import sys
import warnings
from pathlib import Path

from autocompress.cli_parser import join_negative_values, parser


def _budget(args):
    from autocompress.budget import Budget

    return Budget.parse(max_size=args.max_size, max_latency=args.max_latency, min_accuracy=args.min_accuracy)


def cmd_tasks(args) -> int:
    from autocompress.tasks import builtin_tasks

    tasks = builtin_tasks()
    width = max(map(len, tasks))
    for name, factory in tasks.items():
        print(f"{name:<{width}}  {(factory.__doc__ or '').strip().splitlines()[0]}")
    return 0


def cmd_inspect(args) -> int:
    from autocompress.inspection import inspect_task
    from autocompress.errors import UsageError
    from autocompress.plan import rank_from_knob, rank_kept_text

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
        ranks = ", ".join(rank_kept_text(**rank_from_knob(r)) for r in layer["rank_ratios"]) or \
            f"none ({layer['rank_reason']})"
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
        shown = [str(v) if isinstance(v, str) else "float" if v == 32 and name.startswith("bits/") else
                 f"{v:g} (Tucker-2)" if name.startswith("rank/") and v < 0 else f"{v:g}" for v in values]
        print(f"  {name:<32} {{{', '.join(shown)}}}")
    return 0


def _print_sensitivity(args) -> int:
    from autocompress.inspection import inspect_sensitivity
    from autocompress.search.sensitivity_table import format_table

    table = inspect_sensitivity(args.task, data_dir=args.data_dir, run_dir=args.run,
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
    where = f"stored in {args.run}" if args.run else "computed here"
    print(f"sensitivity of {args.task} ({where}): each knob value alone, the rest as the teacher")
    print(format_table(table))
    return 0


def _settings(args, base):
    """``base`` (defaults, or the stored settings on --resume) with the setting flags given."""
    from autocompress.search.setting_names import SEARCH_SETTING_GROUPS, in_group
    from autocompress.search.settings import SearchSettings

    data = base.to_dict()
    for setting in in_group(*SEARCH_SETTING_GROUPS):
        value = getattr(args, setting.dest)
        if value is None:
            continue
        if setting.kind == "list":
            value = [t.strip() for t in value.split(",") if t.strip()]
        if setting.kind == "profiles":
            value = {name: profile.to_dict() for name, profile in _named_profiles(value).items()}
        part, _, name = setting.keyword.rpartition(".")
        (data[part] if part else data)[name] = (not value) if setting.negated else value
    given = {k: v for k, v in _budget(args).to_dict().items() if v is not None}
    data["budget"].update(given)
    return SearchSettings.from_dict(data)


def _named_profiles(specs: list[str]) -> dict:
    """``--latency-profile`` flags as {name: LatencyProfile}; a name given twice is refused."""
    from autocompress.errors import UsageError
    from autocompress.evaluators.latency_profile import named_profile

    profiles = {}
    for spec in specs:
        name, profile = named_profile(spec)
        if name in profiles:
            raise UsageError(f"--latency-profile {spec}: the name {name!r} is given twice; give each profile its own")
        profiles[name] = profile
    return profiles


def _execution(args):
    """Where trials run: the flags given, the rest at ``Execution``'s defaults."""
    from autocompress.search.setting_names import EXECUTION_GROUP, in_group
    from autocompress.search.settings import Execution

    given = {s.keyword: getattr(args, s.dest) for s in in_group(EXECUTION_GROUP)}
    return Execution(**{keyword: value for keyword, value in given.items() if value is not None})


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
    from autocompress.search.settings import SearchSettings, SettingError
    from autocompress.search.storage import redact_argv, write_failure
    from autocompress.errors import UsageError

    if args.trials < 1:
        raise SettingError("trials", f"must be at least 1, got {args.trials}")
    execution = _execution(args)
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
                        command=shlex.join(["autocompress", *redact_argv(args.argv)]),
                        on_checkpoint=_refresh_report)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        reason = None if isinstance(exc, UsageError) else write_failure(exc)  # a UsageError says its own fix
        if reason is None:
            raise
        from autocompress.search.rundir import is_run_dir, resume_command

        again = ("continue with: " + resume_command(task_spec=args.task, out=out, trials=args.trials,
                                                    storage=args.storage, data_dir=args.data_dir)
                 if is_run_dir(Path(out)) else "run the same command again")
        raise UsageError(f"cannot write the results in {out} or its study ({reason}); every trial stored before is "
                         f"kept: free space or make it writable, then {again}") from exc
    failed = int((result.trials["state"] == "FAIL").sum())
    print(f"\nPareto front ({len(result.pareto)} of {len(result.trials)} trials; {failed} failed) "
          f"vs teacher: accuracy {result.teacher.accuracy:.4f}, {result.teacher.size_bytes / 1024:.1f} KB, "
          f"{result.teacher.latency_ms:.4f} ms")
    print(front_table(result.pareto, result.teacher, batch=settings.latency.batch))
    if settings.latency_profiles:
        from autocompress.evaluators.evaluate import fidelity_label
        from autocompress.search.text_tables import profile_fronts

        print(profile_fronts(result.trials, result.teacher, settings.latency_profiles,
                             fidelity=fidelity_label(settings.distill)))
    print(f"\nrun directory: {result.run_dir} (trials.csv, pareto.csv, artifacts/<trial>/model.onnx)")
    report = result.run_dir / REPORT_HTML
    if report.is_file():
        print(f"report: {report} (open it in a browser; it works offline)")
    return 0 if result.finished else 130


def cmd_best(args) -> int:
    from autocompress.search.best import NothingFeasible, load_run
    from autocompress.budget import Budget

    budget = _budget(args)
    run = load_run(args.run_dir)
    whose = ""
    if budget.is_empty and args.trial is None:  # no limits given: those the search was run under
        budget = Budget(**run.info["settings"].get("budget", {}))
        whose = "the run's budget: " if not budget.is_empty else ""
    if args.export:
        from autocompress.evaluators.verify import check_target  # (the measuring stack: only to export)

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
    for name, ms in best.metrics.latencies.items():  # the search's extra latency profiles
        ahead = teacher.latencies.get(name, float("nan"))
        print(f"  {'@' + name:<10} {ahead:>11.4f} ms {ms:>11.4f} ms  {ahead / ms:.2f}x faster")
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
    from autocompress.plan import rank_kept_text
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
        rank = rank_kept_text(row.rank, row.decomposition)
        bits = f"int{row.bits}" if row.bits else "float32"
        if row.dropped:  # its knobs apply to nothing
            bits, rank = "-", "-"
        elif row.group is None:
            kept = "all (not prunable)"
        print(f"  {row.name:<{width}} {kept:<28} {bits:<8} {rank}")


def _chosen(run, args):
    """The candidate named by --trial: a complete trial at the run's full fidelity."""
    from autocompress.errors import UsageError

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


def cmd_latency(args) -> int:
    from autocompress.errors import UsageError
    from autocompress.evaluators.latency_profile import LatencyProfile
    from autocompress.search.setting_names import LATENCY_GROUP, in_group

    given = {s.keyword.partition(".")[2]: getattr(args, s.dest) for s in in_group(LATENCY_GROUP)
             if s.kind != "profiles"}
    profiles = {"": LatencyProfile(**{name: value for name, value in given.items() if value is not None}),
                **_named_profiles(args.latency_profile or [])}
    if args.runs < 1:
        raise UsageError(f"--runs must be at least 1, got {args.runs}")
    if not os.path.isfile(args.model):
        raise UsageError(f"{args.model} is not a file; give an ONNX file (e.g. RUN/artifacts/N/model.onnx)")
    example = None
    if args.task:
        from autocompress import model_io
        from autocompress.task import load_task

        example = model_io.arrays(load_task(args.task, data_dir=args.data_dir).example_inputs)
    for name, profile in profiles.items():
        measured = profile.measure(args.model, example=example, runs=args.runs)
        threads = f"{measured['threads']} thread{'s' if measured['threads'] > 1 else ''}"
        print(f"{args.model}{'@' + name if name else ''}: {measured['latency_ms']:.4f} ms per run (interquartile "
              f"range {measured['latency_spread_ms']:.4f} ms) at batch {measured['batch']}, {threads}, provider "
              f"{measured['provider']}" + (f"; {measured['items_per_s']:,.0f} items/s" if measured["batch"] > 1 else ""))
    return 0


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


COMMANDS = {"tasks": cmd_tasks, "inspect": cmd_inspect, "search": cmd_search, "best": cmd_best, "latency": cmd_latency,
            "report": cmd_report, "dashboard": cmd_dashboard}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(join_negative_values(argv))
    args.argv = argv  # as given: run.json's command
    warnings.filterwarnings("ignore")
    from autocompress.errors import UsageError

    from autocompress.search.setting_names import SettingError, flag_for

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
