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

import torch
from torch import nn

from autocompress.arguments import expect
from autocompress.modules import SelfAttention
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


WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Embedding, nn.MultiheadAttention, nn.RNNBase,
                 SelfAttention)


def _weight_layers(model: nn.Module) -> dict[str, int]:
    """{name: weights} of the Conv/Linear/Embedding/attention/recurrent layers of ``model``,
    outermost only (an attention's own Linears count once, as its part)."""
    found: dict[str, int] = {}
    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_LAYERS) and not any(name.startswith(f"{outer}.") for outer in found):
            found[name] = sum(p.numel() for p in module.parameters())
    return found


def coverage(model: nn.Module, info) -> dict:
    """The share of the weights of the model's Conv/Linear/Embedding/attention/recurrent layers
    that each technique can touch: quantized (a bit-width knob), pruned (a member of a channel or
    head group), factorized (a rank knob), pruned or factorized.

    >>> from autocompress.spaces.layers import discover
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> shares = coverage(net, discover(net, torch.randn(1, 4)))
    >>> shares["weights"], shares["quantized"], shares["pruned"]   # layer 0's 40 weights of 67 are pruned
    (67, 1.0, 0.597)
    """
    modules = dict(model.named_modules())
    weights = {name: sum(p.numel() for p in modules[name].parameters()) for name in modules}
    total = sum(_weight_layers(model).values())
    quantized = {layer.name for layer in info.layers}
    pruned = {m for g in info.groups for m in g.members if m in modules}
    factorized = {layer.name for layer in info.layers if layer.rank_ratios}
    share = lambda names: round(sum(weights[n] for n in names) / total, 4) if total else 0.0  # noqa: E731
    return {"weights": total, "quantized": share(quantized), "pruned": share(pruned),
            "factorized": share(factorized), "pruned or factorized": share(pruned | factorized)}


def inspect_task(task: Task | str, *, data_dir: str | None = None) -> dict:
    """The search space of ``task`` (a Task, a built-in name or ``package.module:function``)."""
    from autocompress.evaluators.evaluate import check_teacher_exports
    from autocompress.spaces.space import SearchSpace

    expect("inspect_task", "task", task, (Task, str), how="a Task, or a task name such as 'digits'")
    if isinstance(task, str):
        task = load_task(task, data_dir=data_dir)
    elif data_dir is not None:
        raise UsageError("data_dir= only helps load a task given by name; pass the name, or no data_dir=")
    info = _discovery(task)
    check_teacher_exports(task)  # as search would: an operator ONNX lacks is said here, not after the scan
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
        "coverage": coverage(task.teacher, info),
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
    autocompress.errors.UsageError: /nonexistent is not a run directory (no run.json); give the --out of a search
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
