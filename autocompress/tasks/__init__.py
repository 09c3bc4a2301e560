"""Built-in tasks, looked up by name (``autocompress tasks``)."""

from autocompress.tasks.cifar import make_resnet20_task, make_resnet56_task
from autocompress.tasks.digits import make_digits_task
from autocompress.tasks.minilm import make_minilm_task
from autocompress.tasks.mnist import make_mnist_task
from autocompress.tasks.sst2 import make_sst2_task

BUILTIN_TASKS = {"digits": make_digits_task, "mnist-lenet5": make_mnist_task,
                 "cifar10-resnet20": make_resnet20_task, "cifar10-resnet56": make_resnet56_task,
                 "sst2-transformer": make_sst2_task, "sst2-minilm": make_minilm_task}

__all__ = ["BUILTIN_TASKS", "make_digits_task", "make_mnist_task", "make_resnet20_task", "make_resnet56_task",
           "make_sst2_task", "make_minilm_task"]
