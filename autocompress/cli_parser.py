"""The command line's commands, flags and help (argparse): what ``autocompress --help`` says.
A usage mistake is one line naming the fix, like every other bad input.

Example:
    >>> args = parser().parse_args(join_negative_values(["best", "runs/x", "--max-size", "-5KB"]))
    >>> args.command, args.max_size
    ('best', '-5KB')
"""

from __future__ import annotations

import argparse

from autocompress.search.setting_names import (BUDGET_GROUP, EXECUTION_GROUP, LATENCY_GROUP, RUNGS_GROUP, SCAN_GROUP,
                                               SETTINGS_GROUP, in_group)

EXAMPLES = """examples:
  autocompress tasks
  autocompress inspect --task digits
  autocompress search --task digits --out runs/digits
  autocompress search --task mypackage.mytask:make_task --trials 100 --sampler nsga2 --out runs/mine
  autocompress inspect --task digits --sensitivity --run runs/digits
  autocompress best runs/digits --max-size 80KB --min-accuracy 0.98 --export shipped/
  autocompress latency runs/digits/artifacts/3/model.onnx --latency-threads 2 --latency-batch 32
  autocompress report runs/digits --png slides/
  autocompress dashboard runs/digits
"""


VALUE_FLAGS = tuple(setting.flag for setting in in_group(BUDGET_GROUP))  # a negative value is the budget's to refuse


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and the fix), like every other bad input, and a
    flag is spelled out: '--no-guid' is refused, not silently taken for '--no-guide'."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"autocompress: error: {message}; see '{self.prog} --help'\n")


def join_negative_values(argv: list[str]) -> list[str]:
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


def parser() -> argparse.ArgumentParser:
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
    _add_latency(sub)
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
    add_settings(settings, SETTINGS_GROUP)
    search_p.add_argument("--out", default=None, help="run directory (default: runs/<task>)")
    search_p.add_argument("--resume", action="store_true",
                          help="continue the search stored in --out, with its stored settings and storage")
    budget_args(search_p.add_argument_group("budget (a setting: steers the search; any budget can also be asked later "
                                            "with 'best')"))
    _execution_args(search_p)


def _execution_args(search_p) -> None:
    run = search_p.add_argument_group("where trials run (Ray)")
    add_settings(run, EXECUTION_GROUP)
    run.add_argument("--storage", default=None, metavar="URL",
                     help="database URL for the study (e.g. postgresql://USER:PASSWORD@HOST/DB); default: "
                          "study.db in the run directory. A resume gives the same URL again (the password is never "
                          "stored)")


def _budget_spending_args(search_p) -> None:
    rungs = search_p.add_argument_group("successive halving (settings too: how fine-tuning is spent across plans)")
    add_settings(rungs, RUNGS_GROUP)
    settings = search_p.add_argument_group(
        "sensitivity scan and proposals (settings too: run.json stores them; before the first trial, each knob value "
        "alone is measured like a trial and stored as sensitivity.csv)")
    add_settings(settings, SCAN_GROUP)
    add_settings(search_p.add_argument_group(
        "latency profile (a setting too: every latency of the search, the teacher's included, is measured so; "
        "'autocompress latency' measures any file the same way)"), LATENCY_GROUP)


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


def _add_latency(sub) -> None:
    latency_p = sub.add_parser("latency", help="measure any ONNX file's latency and throughput: threads, batch, "
                                               "execution provider",
                               description="Measure the latency of an ONNX file as a search measures it (median of "
                                           "--runs runs after a warm-up), under a latency profile: ONNX Runtime's "
                                           "threads, the batch and the execution provider; with a batch above 1, "
                                           "the throughput too. Inputs: the task's example inputs (--task), or "
                                           "zeros shaped by the file's inputs.")
    latency_p.add_argument("model", metavar="MODEL.onnx", help="the file to measure (e.g. RUN/artifacts/N/model.onnx)")
    add_settings(latency_p, LATENCY_GROUP)
    latency_p.add_argument("--runs", type=int, default=300, help="timed runs (default: 300)")
    latency_p.add_argument("--task", default=None, help="take the inputs from this task's example inputs (needed "
                                                        "where an input has a dimension only an example sets)")
    latency_p.add_argument("--data-dir", default=None, help="the task's data folder, if it needs one")


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
    add_settings(group, BUDGET_GROUP)


KINDS = {"int": int, "float": float, "str": None, "list": None, "profiles": None}


def add_settings(group, name: str) -> None:
    """The flags of the settings declared in group ``name`` (``setting_names.SETTINGS``). Their
    default is None: not given (a resume keeps the stored value; otherwise the setting's own default)."""
    for setting in in_group(name):
        if setting.kind == "switch":
            group.add_argument(setting.flag, action="store_const", const=True, default=None, help=setting.help)
            continue
        if setting.kind == "profiles":
            group.add_argument(setting.flag, action="append", default=None, metavar=setting.metavar,
                               help=setting.help)
            continue
        options = {"type": KINDS[setting.kind]} if KINDS[setting.kind] else {}
        if setting.choices:
            options["choices"] = list(setting.choices)
        group.add_argument(setting.flag, default=None, metavar=setting.metavar, help=setting.help, **options)
