"""Evaluators: the ONNX exporter and the measurements of size, latency and accuracy.

Its names are imported on first use (PEP 562): the latency actor, which imports
``evaluators.latency_profile`` only, does not load torch. ``evaluate()`` is imported from its
module (``autocompress.evaluators.evaluate``, which shares its name) or as ``autocompress.evaluate``.
"""

from autocompress.lazy import first_use

_HOMES = {"evaluate_teacher": "evaluate", "export_artifact": "evaluate", "measure_artifact": "evaluate",
          "export_onnx": "export"}

__getattr__, __dir__ = first_use(__name__, _HOMES)
__all__ = sorted(_HOMES)
