"""Built-in tasks, looked up by name (``autocompress tasks``)."""

from autocompress.tasks.digits import make_digits_task

BUILTIN_TASKS = {"digits": make_digits_task}

__all__ = ["BUILTIN_TASKS", "make_digits_task"]
