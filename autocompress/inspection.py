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


def inspect_sensitivity(task: str, *, data_dir: str | None = None, run_dir: str | None = None,
                        progress=lambda line: None):
    """The sensitivity scan of ``task`` (a built-in name or ``package.module:function``): the one
    stored in ``run_dir`` (a search's --out) if given, else computed here (each knob value alone,
    one after another; about a minute for digits).

    >>> inspect_sensitivity("digits", run_dir="/nonexistent")
    Traceback (most recent call last):
    ...
    autocompress.task.UsageError: /nonexistent is not a run directory (no run.json); give the --out of a search
    """
    from autocompress.search import sensitivity
    from autocompress.search.rundir import SENSITIVITY_CSV, read_run_json
    from autocompress.spaces.space import SearchSpace

    if run_dir is not None:
        stored = read_run_json(run_dir).get("task") or {}
        if task not in (stored.get("name"), stored.get("spec")):
            raise UsageError(f"--run {run_dir} holds a search of task {stored.get('spec') or stored.get('name')!r}, "
                             f"not {task!r}; give that --task, or drop --run to compute the scan here")
        table = sensitivity.read_table(run_dir)
        if table is None:
            raise UsageError(f"--run {run_dir} has no {SENSITIVITY_CSV} (its search ran with --no-sensitivity, or "
                             "before the scan existed); drop --run to compute the scan here")
        return table
    loaded = load_task(task, data_dir=data_dir)
    return sensitivity.scan_in_process(loaded, SearchSpace(_discovery(loaded)), progress=progress)
