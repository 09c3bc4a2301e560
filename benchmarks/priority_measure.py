"""Does the priority of the measuring process matter? The search's meter (``timed_runs`` as
``latency_ms`` calls it: batch 1, 1 thread pinned to the last core) on one ONNX file, alone and beside an ordinary (nice 0) Python
loop pinned to that same core, in a process at each niceness given (Ray starts its workers, the
latency actor among them, at nice 15 unless ``RAY_worker_niceness`` says otherwise).

    python benchmarks/priority_measure.py runs/x/artifacts/0/model.onnx --nice 15 0 \\
        --out benchmarks/results/priority-measure.json

Each niceness runs in a child process (a process cannot lower its own niceness back). Run it on a
quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time

LOOP = "while True: pass"


def child(path: str, nice: int) -> dict:
    """In this process, at ``nice``: two measurements alone, two beside the loop, seconds each."""
    from autocompress.evaluators.latency_profile import TIMED_RUNS, WARMUP_RUNS, LatencyProfile, timed_runs
    from autocompress.evaluators.measure import onnx_session

    os.nice(nice)
    session = onnx_session(path)
    feed = LatencyProfile().feed(session)  # zeros shaped by the file's inputs, batch 1

    def measured() -> float:  # as latency_ms measures: pinned to the last core
        return round(timed_runs(session, feed, warmup=WARMUP_RUNS, runs=TIMED_RUNS, pin=True)[0], 4)

    alone = [measured() for _ in range(2)]
    core = str(max(os.sched_getaffinity(0)))
    loop = subprocess.Popen(["taskset", "-c", core, "nice", "-n", str(-nice), sys.executable, "-c", LOOP])
    try:
        time.sleep(0.3)
        clock = time.perf_counter()
        beside = [measured() for _ in range(2)]
        seconds = round((time.perf_counter() - clock) / 2, 2)
    finally:
        loop.kill()
        loop.wait()
    return {"measurer_nice": nice, "alone_ms": alone, "beside_a_nice0_loop_ms": beside, "seconds_each": seconds}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.file, args.child)))
        return {}
    rows = []
    for nice in args.nice:
        out = subprocess.run([sys.executable, __file__, args.file, "--child", str(nice)], check=True,
                             capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1])
    result = {"file": args.file, "rows": rows, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "command": "python benchmarks/priority_measure.py " + shlex.join(argv if argv is not None else sys.argv[1:])}
    if args.out:
        with open(args.out, "w") as f:
            f.write(json.dumps(result, indent=2) + "\n")
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="an ONNX file")
    parser.add_argument("--nice", type=int, nargs="+", default=[15, 0], help="niceness of the measuring process")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
