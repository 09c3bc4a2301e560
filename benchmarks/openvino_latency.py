"""ONNX files under the CPU and the OpenVINO execution providers, side by side in one process
(issue #30). ``onnxruntime-openvino`` replaces ``onnxruntime`` in an environment, so this runs in a
venv of its own that has no torch: it loads ``evaluators/latency_profile.py`` alone, the same
measurement a search makes (``LatencyProfile.measure``: median of the timed runs, inputs of zeros).

    python3 -m venv ovenv && ovenv/bin/pip install onnxruntime-openvino numpy
    ovenv/bin/python benchmarks/openvino_latency.py RUN/teacher/model.onnx RUN/artifacts/0/model.onnx ...
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"cpu 1 thread batch 1": {}, "openvino 1 thread batch 1": {"provider": "openvino"},
            "cpu 2 threads batch 32": {"threads": 2, "batch": 32},
            "openvino 2 threads batch 32": {"provider": "openvino", "threads": 2, "batch": 32}}


def _latency_profile():
    """evaluators/latency_profile.py without the evaluators package (which imports torch)."""
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("latency_profile", ROOT / "autocompress/evaluators/latency_profile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["latency_profile"] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="ONNX files (a run's teacher/model.onnx, artifacts/N/model.onnx)")
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median of each file's medians")
    p.add_argument("--out", default=None, help="write the figures here as JSON")
    args = p.parse_args(argv)
    import numpy as np
    import onnxruntime as ort

    lp = _latency_profile()
    profiles = {name: lp.LatencyProfile(**kw) for name, kw in PROFILES.items()}
    medians = {f: {name: [] for name in profiles} for f in args.files}
    for _ in range(args.rounds):
        for f in args.files:
            for name, profile in profiles.items():
                medians[f][name].append(profile.measure(f, runs=args.runs)["latency_ms"])
    result = {"onnxruntime": ort.__version__, "providers": ort.get_available_providers(), "runs": args.runs,
              "rounds": args.rounds, "command": " ".join(sys.argv),
              "files": {f: {name: round(float(np.median(v)), 4) for name, v in per.items()} for f, per in medians.items()}}
    for f, row in result["files"].items():
        print(f, "  ".join(f"{name}: {ms:.4f} ms" for name, ms in row.items()))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
