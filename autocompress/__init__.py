"""autocompress: joint compression search whose numbers are measured on the shipped file.

Example:
    >>> import autocompress
    >>> task = autocompress.load_task("digits")                                  # doctest: +SKIP
    >>> result = autocompress.search(task, trials=20, out="runs/digits")         # doctest: +SKIP
    >>> result.pareto[["number", "accuracy", "size_bytes", "latency_ms"]]         # doctest: +SKIP
"""

from autocompress.compressors import Compressed, DistillConfig, compress
from autocompress.evaluators import evaluate, export_artifact
from autocompress.metrics import Metrics
from autocompress.plan import LayerPlan, Plan
from autocompress.search import Execution, SearchResult, SearchSettings, search
from autocompress.search.best import Run, load_run
from autocompress.search.budget import Budget
from autocompress.evaluators.measure import predict
from autocompress.task import Task, UsageError, accuracy, load_task

__all__ = ["Budget", "Compressed", "DistillConfig", "Execution", "LayerPlan", "Metrics", "Plan", "Run", "SearchResult",
           "SearchSettings", "Task",
           "UsageError", "accuracy", "compress", "evaluate", "export_artifact", "load_run", "load_task", "predict",
           "search"]
