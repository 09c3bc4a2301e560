"""Evaluators: the ONNX exporter and the measurements of size, latency and accuracy."""

from autocompress.evaluators.evaluate import evaluate, evaluate_teacher, export_artifact, measure_artifact
from autocompress.evaluators.export import export_onnx

__all__ = ["evaluate", "evaluate_teacher", "export_artifact", "export_onnx", "measure_artifact"]
