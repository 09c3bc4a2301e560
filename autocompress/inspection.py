"""What the search would see in a task: its compressible layers, dependency groups, droppable
blocks, what is left alone and why, and every search parameter with its values, as plain data
(``autocompress inspect`` prints it).

Example:
    >>> info = inspect_task("digits")
    >>> info["head"], info["stages"]["stage1"], info["space"]["bits/fc"]  # 32 = float weights
    ('fc', ['stage1.0', 'stage1.1'], [32, 8, 4, 2])
    >>> info["layers"][0]
    {'name': 'stem.0', 'kind': 'conv', 'shape': [32, 1, 3, 3], 'group': 'stem.0', 'rank_ratios': [0.5, 0.25], 'rank_reason': ''}
"""

from __future__ import annotations

from autocompress.task import Task, UsageError, load_task


def _values(dist) -> list:
    """The values a distribution offers (categorical choices, or the steps of a numeric range)."""
    values = getattr(dist, "choices", None)
    if values is not None:
        return list(values)
    step = getattr(dist, "step", 1) or 1
    return [round(dist.low + i * step, 4) for i in range(int(round((dist.high - dist.low) / step)) + 1)]


def _discovery(task: Task):
    from autocompress.compressors.pipeline import task_context

    try:
        return task_context(task).discovery
    except ValueError as exc:  # layer discovery refuses models it cannot map (e.g. no output layer found)
        raise UsageError(f"task {task.name!r}: {' '.join(str(exc).split())}; end the teacher's forward with the "
                         "Linear (or Conv2d) layer whose output is the model's output") from None


def inspect_task(task: Task | str, *, data_dir: str | None = None) -> dict:
    """The search space of ``task`` (a Task, a built-in name or ``package.module:function``)."""
    from autocompress.spaces.space import SearchSpace

    if isinstance(task, str):
        task = load_task(task, data_dir=data_dir)
    elif data_dir is not None:
        raise UsageError("data_dir= only helps load a task given by name; pass the name, or no data_dir=")
    info = _discovery(task)
    space = SearchSpace(info)
    return {
        "task": {"name": task.name, "description": task.description,
                 "params": sum(p.numel() for p in task.teacher.parameters()),
                 "splits": {split: task.num_examples(split) for split in ("train", "val", "test")}},
        "head": info.head,
        "layers": [{"name": layer.name, "kind": layer.kind, "shape": list(layer.shape), "group": layer.group,
                    "rank_ratios": list(layer.rank_ratios), "rank_reason": layer.rank_reason}
                   for layer in info.layers],
        "groups": [{"name": group.name, "channels": group.channels, "unit": group.unit,
                    "members": list(group.members)} for group in info.groups],
        "stages": {stage: list(blocks) for stage, blocks in info.stages.items()},
        "not_compressed": dict(info.not_compressible),
        "space": {name: _values(dist) for name, dist in space.distributions().items()},
    }
