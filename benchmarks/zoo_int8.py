"""Does uniform int8 pay on the zoo's convolutional networks? Float and int8 files, side by side.

For each CNN of the test suite's model zoo (``tests/fixtures/zoo.py``: torchvision and
hand-written architectures at small width), the search's own uniform-int8 warm start (every
layer the space offers a bit-width, int8, post-training calibration, no fine-tuning) and the
unquantized teacher are exported exactly as a trial's files are, then timed side by side in one
process (``remeasure.side_by_side``: batch 1, one thread, pinned, interleaved rounds). Also
recorded: which operators ONNX Runtime runs in the int8 file (a float ``Conv`` left in it means
an int8 chain was broken) and the int8 file's agreement with the teacher's top-1 on the
validation split.

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
    from autocompress.spaces.space import SearchSpace
    from tests.fixtures.zoo import make_task

    task = make_task(name)
    int8 = SearchSpace(task_context(task).discovery).warm_start_plans()[0]
    config = autocompress.DistillConfig(steps=0)
    metrics = {label: autocompress.evaluate(task, plan, out_dir=folder / label, config=config)
               for label, plan in (("float", autocompress.Plan()), ("int8", int8))}
    paths = {label: str(folder / label / "model.onnx") for label in metrics}
    latency = side_by_side(paths, task.example_inputs)
    return {"float_ms": round(latency["float"], 4), "int8_ms": round(latency["int8"], 4),
            "speedup": round(latency["float"] / latency["int8"], 3),
            "size_x": round(metrics["float"].size_bytes / metrics["int8"].size_bytes, 2),
            "int8_val_metric": round(metrics["int8"].accuracy, 4), "float_val_metric": round(metrics["float"].accuracy, 4),
            "int8_layers": len(int8.layers), "int8_kernels": kernel_counts(paths["int8"])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(CNNS), choices=CNNS, help="zoo models to measure")
    args = parser.parse_args(argv)
    results, start = {}, time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            results[name] = measure(name, Path(tmp) / name)
            print(name, results[name], flush=True)
    slower = [n for n, r in results.items() if r["speedup"] < 1.0]
    write_result("zoo_int8", {"command": "PYTHONPATH=. python benchmarks/zoo_int8.py " + " ".join(argv or sys.argv[1:]),
                              "machine": machine(), "seconds": round(time.time() - start), "models": results,
                              "int8_slower_than_float": slower})


if __name__ == "__main__":
    main()
