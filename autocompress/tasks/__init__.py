"""Built-in tasks, looked up by name (``autocompress tasks``): the factories that
``autocompress.task.BUILTIN_TASK_SPECS`` names, one per task. Each task's module is imported
when it is used, not with this package (PEP 562): a trial of one task does not import what the
others need (scikit-learn, Pillow, transformers)."""

from autocompress.lazy import first_use
from autocompress.task import BUILTIN_TASK_SPECS, import_factory


def builtin_tasks() -> dict:
    """Every built-in task's factory by name (importing each task's module)."""
    return {name: import_factory(spec) for name, spec in BUILTIN_TASK_SPECS.items()}


_HOMES = {spec.partition(":")[2]: spec.partition(":")[0] for spec in BUILTIN_TASK_SPECS.values()}
__getattr__, __dir__ = first_use(__name__, _HOMES)
__all__ = ["builtin_tasks", *sorted(_HOMES)]
