"""Does this machine's speed drift? One ONNX file measured back to back, as a search measures a
latency (``timed_runs``: batch 1, 1 thread, median of 300 runs after 20), on each core in turn,
``--rounds`` times. A quiet, steady machine gives the same figure every time; where it does not,
latencies measured minutes apart (a trial's, the teacher's at the search's start) disagree by as
much, whatever the search does, and only a measurement against a reference interleaved in time
(``remeasure.side_by_side``) sees past it.

    python benchmarks/machine_drift.py FILE.onnx --rounds 12 --out benchmarks/results/machine-drift.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def drift(path: str, rounds: int) -> dict:
    """Per core: the medians (ms) of ``rounds`` measurements, and the highest over the lowest."""
    from autocompress.evaluators.latency_profile import TIMED_RUNS, WARMUP_RUNS, LatencyProfile, timed_runs
    from autocompress.evaluators.measure import onnx_session

    session = onnx_session(path)
    feed = LatencyProfile().feed(session)  # zeros shaped by the file's inputs, batch 1
    cores = sorted(os.sched_getaffinity(0))
    medians = {core: [] for core in cores}
    try:
        for _ in range(rounds):
            for core in cores:
                os.sched_setaffinity(0, {core})
                medians[core].append(round(timed_runs(session, feed, warmup=WARMUP_RUNS, runs=TIMED_RUNS,
                                                      pin=False)[0], 4))
    finally:
        os.sched_setaffinity(0, set(cores))
    return {str(core): {"medians_ms": values, "highest_over_lowest": round(max(values) / min(values), 3)}
            for core, values in medians.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="an ONNX file")
    parser.add_argument("--rounds", type=int, default=12, help="measurements per core")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = {"file": args.file, "started": started, "cores": drift(args.file, args.rounds),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "command": "python benchmarks/machine_drift.py " + shlex.join(argv if argv is not None else sys.argv[1:])}
    for core, row in result["cores"].items():
        print(f"core {core}: {row['medians_ms']} (highest / lowest {row['highest_over_lowest']})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
