"""Does uniform int8 pay on the zoo's convolutional networks? Float and int8 files, side by side.

For each CNN of the test suite's model zoo (``tests/fixtures/zoo.py``: torchvision and
hand-written architectures at small width), the sensitivity scan's two whole-model cells
(every layer the space offers a bit-width at int8, post-training calibration, no fine-tuning):
on int8 kernels, and on float kernels (``Plan.kernels``: int8 weights widened at load), and
the unquantized teacher are exported exactly as a trial's files are, then timed side by side in
one process (``remeasure.side_by_side``: batch 1, one thread, pinned, interleaved rounds).
``kernels`` is what a search picks from the same two cells of its scan (the faster; the
predictor's rule), ``speedup`` uniform int8's speed on them. Also recorded: which operators
ONNX Runtime runs in the int8-kernel file (a float ``Conv`` left in it means an int8 chain was
broken) and each file's validation metric.

    PYTHONPATH=. python benchmarks/zoo_int8.py                       # every CNN of the zoo
    PYTHONPATH=. python benchmarks/zoo_int8.py --models resnet18 mobilenet_v2

Writes ``benchmarks/results/zoo_int8.json``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import machine, write_result  # noqa: E402
from remeasure import side_by_side  # noqa: E402

CNNS = ("resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2", "squeezenet1_1",
        "densenet", "regnet", "convnext", "conv_head", "conv1d_audio", "conv1d_text")


def kernel_counts(path: str) -> dict[str, int]:
    """Operator counts of the graph ONNX Runtime runs (all optimizations, as latency is measured)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(Path(path).with_suffix(".optimized.onnx"))
    options.log_severity_level = 3
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    graph = onnx.load(options.optimized_model_filepath).graph
    counts = collections.Counter(node.op_type for node in graph.node)
    return {op: counts[op] for op in ("Conv", "QLinearConv", "MatMul", "Gemm", "QGemm", "MatMulInteger",
                                      "QuantizeLinear", "DequantizeLinear") if counts[op]}


def measure(name: str, folder: Path) -> dict:
    import autocompress
    from autocompress.compressors.pipeline import task_context
    from autocompress.search.sensitivity import EVERY_LAYER_INT8, EVERY_LAYER_INT8_FLOAT, Cell, cell_plan
    from autocompress.spaces.space import SearchSpace
    from tests.fixtures.zoo import make_task

    task = make_task(name)
    space = SearchSpace(task_context(task).discovery)
    plans = {"float": autocompress.Plan(), "int8": cell_plan(space, Cell(EVERY_LAYER_INT8, 8)),
             "int8_on_float": cell_plan(space, Cell(EVERY_LAYER_INT8_FLOAT, 8))}
    config = autocompress.DistillConfig(steps=0)
    metrics = {label: autocompress.evaluate(task, plan, out_dir=folder / label, config=config)
               for label, plan in plans.items()}
    paths = {label: str(folder / label / "model.onnx") for label in metrics}
    latency = side_by_side(paths, task.example_inputs)
    kernels = "float" if latency["int8_on_float"] < latency["int8"] else "int8"
    chosen = "int8_on_float" if kernels == "float" else "int8"
    return {"float_ms": round(latency["float"], 4), "int8_ms": round(latency["int8"], 4),
            "int8_on_float_ms": round(latency["int8_on_float"], 4),
            "int8_kernels_speedup": round(latency["float"] / latency["int8"], 3),
            "float_kernels_speedup": round(latency["float"] / latency["int8_on_float"], 3),
            "kernels": kernels, "speedup": round(latency["float"] / latency[chosen], 3),
            "size_x": round(metrics["float"].size_bytes / metrics[chosen].size_bytes, 2),
            "float_val_metric": round(metrics["float"].accuracy, 4),
            "int8_val_metric": round(metrics["int8"].accuracy, 4),
            "int8_on_float_val_metric": round(metrics["int8_on_float"].accuracy, 4),
            "int8_layers": len(plans["int8"].layers), "int8_kernels": kernel_counts(paths["int8"])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(CNNS), choices=CNNS, help="zoo models to measure")
    args = parser.parse_args(argv)
    results, start = {}, time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            results[name] = measure(name, Path(tmp) / name)
            print(name, results[name], flush=True)
    write_result("zoo_int8", {"command": "PYTHONPATH=. python benchmarks/zoo_int8.py " + " ".join(argv or sys.argv[1:]),
                              "machine": machine(), "seconds": round(time.time() - start), "models": results,
                              "int8_kernels_slower_than_float": [n for n, r in results.items()
                                                                 if r["int8_kernels_speedup"] < 1.0],
                              "slowest_uniform_int8_as_searched": min(r["speedup"] for r in results.values())})


if __name__ == "__main__":
    main()
