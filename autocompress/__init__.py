"""autocompress: joint compression search whose numbers are measured on the shipped file.

``autocompress.search`` runs the search into a run directory (see its docstring);
``load_run(...).best(...)`` answers a budget from it and ``Run.export`` ships the answer,
measured again. One plan can also be evaluated by hand:

Example:
    >>> import os, tempfile
    >>> import autocompress
    >>> task = autocompress.load_task("digits")
    >>> info = autocompress.inspect_task(task)              # the layers, groups and search space
    >>> info["head"], len(info["layers"])
    ('fc', 11)
    >>> plan = autocompress.Plan(layers={"fc": autocompress.LayerPlan(bits=8)})
    >>> out = tempfile.mkdtemp()
    >>> metrics = autocompress.evaluate(task, plan, out_dir=out, config=autocompress.DistillConfig(steps=0))
    >>> metrics.size_bytes == os.path.getsize(os.path.join(out, "model.onnx"))
    True
"""

from autocompress.compat import allow_torchvision_models

allow_torchvision_models()  # torchvision's models import beside the CPU torch (see compat.py)

from autocompress.compressors import Compressed, DistillConfig, compress
from autocompress.evaluators import evaluate, export_artifact
from autocompress.metrics import Metrics
from autocompress.modules import SelfAttention
from autocompress.plan import LayerPlan, Plan
from autocompress.search import Execution, SearchResult, SearchSettings, search
from autocompress.search.best import Candidate, NothingFeasible, Run, load_run
from autocompress.budget import Budget
from autocompress.evaluators.measure import predict
from autocompress.inspection import inspect_task
from autocompress.task import Task, UsageError, accuracy, load_task

__all__ = ["Budget", "Candidate", "Compressed", "DistillConfig", "Execution", "LayerPlan", "Metrics", "NothingFeasible",
           "Plan", "Run", "SearchResult", "SearchSettings", "SelfAttention", "Task", "UsageError", "accuracy", "compress",
           "evaluate", "export_artifact", "inspect_task", "load_run", "load_task", "predict", "search"]
