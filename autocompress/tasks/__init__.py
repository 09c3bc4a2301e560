"""Built-in tasks, looked up by name (``autocompress tasks``): the factories that
``autocompress.task.BUILTIN_TASK_SPECS`` names, one per task. Each task's module is imported
when it is used, not with this package: a trial of one task does not import what the others need
(scikit-learn, Pillow, transformers)."""

from autocompress.task import BUILTIN_TASK_SPECS, import_factory

_FACTORIES = {spec.partition(":")[2]: spec for spec in BUILTIN_TASK_SPECS.values()}


def builtin_tasks() -> dict:
    """Every built-in task's factory by name (importing each task's module)."""
    return {name: import_factory(spec) for name, spec in BUILTIN_TASK_SPECS.items()}


def __getattr__(name: str):
    """``make_digits_task`` and the other factories, imported on first use."""
    if name in _FACTORIES:
        return import_factory(_FACTORIES[name])
    if name == "BUILTIN_TASKS":
        return builtin_tasks()
    raise AttributeError(f"module 'autocompress.tasks' has no attribute {name!r}")


__all__ = ["BUILTIN_TASKS", "builtin_tasks", *_FACTORIES]
