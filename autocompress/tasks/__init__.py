"""Built-in tasks, looked up by name (``autocompress tasks``)."""

from autocompress.tasks.digits import make_digits_task
from autocompress.tasks.mnist import make_mnist_task

BUILTIN_TASKS = {"digits": make_digits_task, "mnist-lenet5": make_mnist_task}

__all__ = ["BUILTIN_TASKS", "make_digits_task", "make_mnist_task"]
