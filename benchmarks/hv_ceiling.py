"""How much hypervolume a comparison leaves to win: the ceiling of its re-measured fronts.

No file can beat, at once, the best test accuracy, the smallest size and the lowest latency
that any strategy's re-measured front holds; so the hypervolume of that one imaginary point is
an upper bound on every front's (in the same teacher-relative objectives and reference point as
``compare.py``'s re-measured hypervolume). A goal such as "joint >= 1.15x random" cannot be met
when 1.15x random's hypervolume is above that ceiling: random has already taken almost all
there is.

    python benchmarks/hv_ceiling.py mnist-lenet5    # reads benchmarks/results/mnist-lenet5.json,
                                                    # writes benchmarks/results/mnist-lenet5.ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from autocompress.search.pareto import normalized_hypervolume  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def ceiling(result: dict) -> dict:
    """The ideal point of a compare.py result and its hypervolume; each strategy's median
    re-measured hypervolume as a fraction of it.

    >>> front = [{"test_accuracy": 0.9, "size_bytes": 50, "latency_ms": 0.5},
    ...          {"test_accuracy": 0.8, "size_bytes": 20, "latency_ms": 0.8}]
    >>> result = {"teacher_remeasured": {"test_accuracy": 0.9, "size_bytes": 100, "latency_ms": 1.0},
    ...           "strategies": {"a": {"front": front, "median_remeasured_hypervolume": 0.02}}}
    >>> out = ceiling(result)
    >>> out["ideal"], out["hypervolume"], out["fraction"]["a"]
    ({'accuracy': 0.9, 'size_bytes': 20, 'latency_ms': 0.5}, 0.02, 1.0)
    """
    teacher = result["teacher_remeasured"]
    points = [e for entry in result["strategies"].values() for e in entry.get("front", [])]
    if not points:
        raise ValueError("the result has no re-measured fronts: run compare.py first")
    ideal = {"accuracy": max(e["test_accuracy"] for e in points), "size_bytes": min(e["size_bytes"] for e in points),
             "latency_ms": min(e["latency_ms"] for e in points)}
    relative_to = {"accuracy": teacher["test_accuracy"], "size_bytes": teacher["size_bytes"],
                   "latency_ms": teacher["latency_ms"]}
    top = round(normalized_hypervolume(pd.DataFrame([ideal]), relative_to), 6)
    fraction = {name: round(entry["median_remeasured_hypervolume"] / top, 4) if top else None
                for name, entry in result["strategies"].items() if "median_remeasured_hypervolume" in entry}
    return {"ideal": ideal, "hypervolume": top, "fraction": fraction}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", help="the name of a benchmarks/results/<task>.json written by compare.py")
    parser.add_argument("--results", default=str(RESULTS), help="where <task>.json is; the ceiling is written there")
    args = parser.parse_args(argv)
    path = Path(args.results) / f"{args.task}.json"
    if not path.exists():
        parser.error(f"{path} does not exist: run benchmarks/compare.py --task {args.task} first")
    out = {"task": args.task, "command": f"python benchmarks/hv_ceiling.py {args.task}",
           **ceiling(json.loads(path.read_text()))}
    (Path(args.results) / f"{args.task}.ceiling.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"ceiling {out['hypervolume']:.5f} (ideal point {out['ideal']})")
    for name, share in out["fraction"].items():
        print(f"  {name:<15} {share:.1%} of it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
