"""Two latency profiles in one search (issue #30): the search's own (1 thread, batch 1) and a named
one (default ``server``: 2 threads, batch 32), each with its front.

It runs ``autocompress search`` as a user would (``--latency-profile``, a wall-clock budget),
then, once the machine is quiet, measures the teacher's file and every file on either front
again in a SEPARATE process under both profiles, and reports: the two fronts, the plans on one
and not the other, how far each recorded latency is from its re-measure (goal: within 10%), and
what the extra profile costs a trial (its measurement's wall time, session included, against the
trials' median duration; goal: at most 20%).

    python benchmarks/profiles.py --task cifar10-resnet20 --data-dir ../shared/data --time-budget 1200

``--keep``: a run already in --out is not searched again (only re-measured).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

GOAL_REMEASURE, GOAL_EXTRA_COST = 0.10, 0.20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="cifar10-resnet20")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--time-budget", type=float, default=1200.0, help="seconds of search (default 1200)")
    p.add_argument("--profile", default="server:threads=2,batch=32", help="the extra profile, NAME:KEY=VALUE,...")
    p.add_argument("--out", default=None, help="run directory (default runs/bench-profiles-TASK)")
    p.add_argument("--keep", action="store_true", help="re-measure the run in --out without searching again")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="folder for the JSON and table")
    p.add_argument("--measure-files", default=None, help=argparse.SUPPRESS)  # the separate measuring process
    return p.parse_args(argv)


def measure_files(spec_path: str) -> None:
    """In the separate process: every file under every profile, interleaved; prints JSON."""
    from autocompress.evaluators.latency_profile import LatencyProfile

    spec = json.loads(Path(spec_path).read_text())
    profiles = {name: LatencyProfile.from_dict(p) for name, p in spec["profiles"].items()}
    measured = {key: {} for key in spec["files"]}
    for name, profile in profiles.items():
        for key, path in spec["files"].items():
            clock = time.perf_counter()
            ms = profile.measure(path)["latency_ms"]
            measured[key][name] = {"latency_ms": ms, "wall_s": time.perf_counter() - clock}
    print(json.dumps(measured))


def search(args, out: Path) -> float:
    command = [sys.executable, "-m", "autocompress.cli", "search", "--task", args.task, "--trials", "1000",
               "--time-budget", str(args.time_budget), "--latency-profile", args.profile, "--out", str(out)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    clock = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - clock


def remeasure(run, name: str, files: dict[str, str]) -> dict:
    from common import wait_until_quiet

    from autocompress.evaluators.latency_profile import LatencyProfile

    wait_until_quiet()
    stored = run.info["settings"]
    profiles = {"own": LatencyProfile.from_dict(stored["latency"]),
                name: LatencyProfile.from_dict(stored["latency_profiles"][name])}
    spec = Path(run.path) / "profiles-remeasure.json"
    spec.write_text(json.dumps({"profiles": {k: p.to_dict() for k, p in profiles.items()}, "files": files}))
    proc = subprocess.run([sys.executable, __file__, "--measure-files", str(spec)], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(args, run, name: str, wall_s: float | None) -> dict:
    from common import machine

    own, other = run.front(None), run.front(name)
    numbers = sorted(set(own["number"]) | set(other["number"]))
    trials = run.trials.set_index("number")
    files = {"teacher": str(run.teacher_artifact)}
    files.update({str(n): str(run.candidate(int(n)).artifact) for n in numbers})
    again = remeasure(run, name, files)
    recorded = {"teacher": {"own": run.teacher.latency_ms, name: run.teacher.latencies[name]}}
    recorded.update({str(n): {"own": float(trials.loc[n, "latency_ms"]),
                              name: float(trials.loc[n, f"latency_ms@{name}"])} for n in numbers})
    errors = {key: {p: round(abs(again[key][p]["latency_ms"] - recorded[key][p]) / recorded[key][p], 4)
                    for p in ("own", name)} for key in files}
    worst = max(e for per in errors.values() for e in per.values())
    complete = run.candidates
    duration = float(complete["duration_s"].median())
    extra_s = float(sorted(again[key][name]["wall_s"] for key in files if key != "teacher")[len(numbers) // 2])
    return {
        "task": args.task, "profile": args.profile, "command": " ".join(sys.argv), "search_wall_s": wall_s,
        "complete_trials": int(len(complete)),
        "teacher": {"accuracy": run.teacher.accuracy, "size_bytes": run.teacher.size_bytes, **recorded["teacher"]},
        "fronts": {"own": [int(n) for n in own["number"]], name: [int(n) for n in other["number"]]},
        "only_on_own": sorted(int(n) for n in set(own["number"]) - set(other["number"])),
        f"only_on_{name}": sorted(int(n) for n in set(other["number"]) - set(own["number"])),
        "rows": [{"trial": int(n), "accuracy": float(trials.loc[n, "accuracy"]),
                  "size_bytes": int(trials.loc[n, "size_bytes"]), "plan": run.candidate(int(n)).plan.summary(),
                  "recorded": recorded[str(n)], "remeasured": {p: again[str(n)][p]["latency_ms"] for p in ("own", name)},
                  "relative_error": errors[str(n)]} for n in numbers],
        "teacher_relative_error": errors["teacher"],
        "worst_relative_error": worst, "goal_remeasure_met": worst <= GOAL_REMEASURE,
        "median_trial_s": duration, "extra_profile_measure_s": round(extra_s, 3),
        "extra_cost_share": round(extra_s / max(duration - extra_s, 1e-9), 4),
        "goal_extra_cost_met": extra_s / max(duration - extra_s, 1e-9) <= GOAL_EXTRA_COST,
        "machine": machine(),
    }


def table(result: dict, name: str) -> str:
    lines = [f"| trial | plan | accuracy | size | own latency (ms) | {name} latency (ms) | own front | {name} front |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['trial']} | {r['plan']} | {r['accuracy']:.4f} | {r['size_bytes'] / 1024:.1f} KB | "
                     f"{r['recorded']['own']:.4f} | {r['recorded'][name]:.3f} | "
                     f"{'yes' if r['trial'] in result['fronts']['own'] else '-'} | "
                     f"{'yes' if r['trial'] in result['fronts'][name] else '-'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.measure_files:
        measure_files(args.measure_files)
        return 0
    from autocompress.evaluators.latency_profile import named_profile
    from autocompress.search.best import load_run

    name = named_profile(args.profile)[0]
    out = Path(args.out or ROOT / "runs" / f"bench-profiles-{args.task}")
    wall_s = None if (args.keep and (out / "run.json").is_file()) else search(args, out)
    result = report(args, load_run(out), name, wall_s)
    results = Path(args.results)
    (results / f"profiles-{args.task}.json").write_text(json.dumps(result, indent=1) + "\n")
    (results / f"profiles-{args.task}.md").write_text(
        f"# Two latency profiles on {args.task}\n\n`{result['command']}`\n\n{table(result, name)}\n")
    print(table(result, name))
    print(f"\nonly on the own front: {result['only_on_own']}; only on {name}'s: {result[f'only_on_{name}']}")
    print(f"worst re-measure error {result['worst_relative_error']:.1%} (goal {GOAL_REMEASURE:.0%}); the extra "
          f"profile costs {result['extra_profile_measure_s']:.2f} s of a {result['median_trial_s']:.1f} s trial "
          f"({result['extra_cost_share']:.1%}, goal {GOAL_EXTRA_COST:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
