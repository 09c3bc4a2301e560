"""Compressors: student depth/width, structured pruning, low-rank, quantization, distillation.

Each is a small config or plan entry plus a function; ``compress(task, plan)`` chains them.
"""

from autocompress.compressors.distill import DistillConfig
from autocompress.compressors.pipeline import Compressed, compress

__all__ = ["Compressed", "DistillConfig", "compress"]
