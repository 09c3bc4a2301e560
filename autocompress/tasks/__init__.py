"""Built-in tasks, looked up by name (``autocompress tasks``): the factories that
``autocompress.task.BUILTIN_TASK_SPECS`` names, one per task."""

from autocompress.task import BUILTIN_TASK_SPECS, import_factory
from autocompress.tasks.cifar import make_resnet20_task, make_resnet56_task
from autocompress.tasks.digits import make_digits_task
from autocompress.tasks.minilm import make_minilm_task
from autocompress.tasks.minilm_hf import make_minilm_hf_task
from autocompress.tasks.mnist import make_mnist_task
from autocompress.tasks.mobilenet import make_mobilenetv2_task
from autocompress.tasks.sst2 import make_sst2_task

BUILTIN_TASKS = {name: import_factory(spec) for name, spec in BUILTIN_TASK_SPECS.items()}

__all__ = ["BUILTIN_TASKS", "make_digits_task", "make_mnist_task", "make_resnet20_task", "make_resnet56_task",
           "make_sst2_task", "make_minilm_task", "make_minilm_hf_task",
           "make_mobilenetv2_task"]
