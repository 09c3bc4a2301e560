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

from autocompress.compat import before_torchvision

before_torchvision()  # torchvision's models import beside the CPU torch (see compat.py); no torch loaded here

from autocompress.lazy import first_use  # noqa: E402

# What ``autocompress.X`` names, imported on first use (PEP 562): a Ray worker importing one
# module of the package does not pay for the controller, Optuna and pandas (a second per process).
_HOMES = {
    "Budget": "autocompress.budget", "Candidate": "autocompress.search.best", "Compressed": "autocompress.compressors",
    "DistillConfig": "autocompress.compressors", "Execution": "autocompress.search.settings",
    "LatencyProfile": "autocompress.evaluators.latency_profile",
    "LayerPlan": "autocompress.plan", "Metrics": "autocompress.metrics", "NothingFeasible": "autocompress.search.best",
    "Plan": "autocompress.plan", "Run": "autocompress.search.best", "SearchResult": "autocompress.search.controller",
    "SearchSettings": "autocompress.search.settings", "SelfAttention": "autocompress.modules",
    "Task": "autocompress.task", "UsageError": "autocompress.errors", "accuracy": "autocompress.task",
    "compress": "autocompress.compressors", "evaluate": "autocompress.evaluators.evaluate",
    "export_artifact": "autocompress.evaluators.evaluate", "inspect_task": "autocompress.inspection",
    "load_run": "autocompress.search.best", "load_task": "autocompress.task",
    "predict": "autocompress.evaluators.measure",
}


# the functions whose errors were written for the CLI: here they name keywords, not flags
_SPOKEN = {"compress", "evaluate", "export_artifact", "inspect_task", "load_run", "load_task", "predict"}


_first_use, __dir__ = first_use(__name__, _HOMES)


def __getattr__(name: str):
    value = _first_use(name)
    if name in _SPOKEN:
        from autocompress.search.setting_names import spoken_to_python

        value = spoken_to_python(value)
        globals()[name] = value
    return value


import autocompress.search as _search_package  # noqa: E402,F401  first, so that the name below stays the function


def search(task, **options):
    """Search the joint compression space of ``task``: ``autocompress.search.controller.search``,
    whose docstring gives every option (imported here on first use, with Optuna and pandas)."""
    from autocompress.search.controller import search as run
    from autocompress.search.setting_names import spoken_to_python

    return spoken_to_python(run)(task, **options)


__all__ = ["Budget", "Candidate", "Compressed", "DistillConfig", "Execution", "LatencyProfile", "LayerPlan", "Metrics",
           "NothingFeasible",
           "Plan", "Run", "SearchResult", "SearchSettings", "SelfAttention", "Task", "UsageError", "accuracy", "compress",
           "evaluate", "export_artifact", "inspect_task", "load_run", "load_task", "predict", "search"]
