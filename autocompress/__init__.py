"""autocompress: joint compression search whose numbers are measured on the shipped file."""

from autocompress.metrics import Metrics
from autocompress.plan import LayerPlan, Plan
from autocompress.task import Task, UsageError, accuracy, load_task

__all__ = ["LayerPlan", "Metrics", "Plan", "Task", "UsageError", "accuracy", "load_task"]
