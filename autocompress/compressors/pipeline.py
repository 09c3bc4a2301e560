"""``compress(task, plan)``: replay one plan on the teacher, no search involved.

student depth (drop blocks) -> attention heads and structured pruning per group (x student
width) -> least-squares refit of the layers that lost inputs (``reconstruct.py``) -> BatchNorm
statistics re-estimated, then folded -> low-rank factorization -> quantization-aware fine-tuning
with distillation from the teacher. The result holds the fine-tuned fake-quantized model;
``evaluators.export_artifact`` writes the ONNX file that is measured and shipped.

Example:
    >>> from autocompress import Plan, LayerPlan, load_task
    >>> task = load_task("digits")                                           # doctest: +SKIP
    >>> result = compress(task, Plan(layers={"fc": LayerPlan(bits=8)}))       # doctest: +SKIP
    >>> result.notes                                                          # doctest: +SKIP
    []
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from autocompress.compressors.checks import checked
from autocompress.compressors.distill import DEFAULT_LR, DistillConfig, TeacherTargets, distill, teacher_targets
from autocompress.compressors.fold import fold_batchnorm, recalibrate_batchnorm
from autocompress.compressors.heads import prune_heads
from autocompress.compressors.lowrank import factorize
from autocompress.compressors.prune import prune_groups
from autocompress.compressors.quantize import calibrate, prepare_qat
from autocompress.compressors.reconstruct import reconstruct_consumers
from autocompress.compressors.student import drop_blocks
from autocompress.compressors.tables import rows_read, trim_tables
from autocompress.plan import Plan
from autocompress.spaces.layers import Discovery, discover
from autocompress.task import Task, UsageError

CALIBRATION_BATCHES, CALIBRATION_BATCH_SIZE = 4, 64
BN_BATCHES = 16  # training batches that re-estimate BatchNorm statistics after a structural change
RECONSTRUCT_BATCHES = 8  # of those, the ones that refit the layers that lost inputs (reconstruct.py)


@dataclass
class TaskContext:
    """What every candidate of one task shares, computed once per process (per device)."""

    discovery: Discovery
    _targets: TeacherTargets | None = None
    _table_rows: dict | None = None  # tables.rows_read of the teacher, traced once
    _on_device: dict = field(default_factory=dict)  # str(device) -> (teacher copy, its targets or None)

    def teacher(self, task: Task, device: torch.device | None) -> nn.Module:
        """The teacher on ``device``: ``task.teacher`` itself on the CPU, else a copy made once."""
        if device is None or device.type == "cpu":
            return task.teacher
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = (copy.deepcopy(task.teacher).to(device).eval(), None)
        return self._on_device[key][0]

    def table_rows(self, task: Task) -> dict[str, int]:
        """The embedding rows each table of the teacher can ever read (``tables.rows_read``)."""
        if self._table_rows is None:
            self._table_rows = rows_read(task.teacher, task.example_inputs)
        return self._table_rows

    def targets(self, task: Task, device: torch.device | None = None) -> TeacherTargets:
        """The teacher's outputs on the train split (computed where ``device`` says, kept there)."""
        if device is None or device.type == "cpu":
            if self._targets is None:
                self._targets = teacher_targets(task.teacher, task.train, head=self.discovery.head)
            return self._targets
        teacher, targets = self._on_device.get(str(device)) or (self.teacher(task, device), None)
        if targets is None:
            targets = teacher_targets(teacher, task.train, head=self.discovery.head, device=device)
            self._on_device[str(device)] = (teacher, targets)
        return targets


_contexts: "weakref.WeakKeyDictionary[nn.Module, TaskContext]" = weakref.WeakKeyDictionary()


def share_discovery(task: Task, discovery: Discovery) -> None:
    """Give ``task`` the discovery another process already made of the same teacher (a search's
    workers get the driver's: discovery and its checks can take longer than a trial)."""
    if task.teacher not in _contexts:
        _contexts[task.teacher] = TaskContext(discovery)


def task_context(task: Task) -> TaskContext:
    context = _contexts.get(task.teacher)
    if context is None:
        found = discover(task.teacher, task.example_inputs, blocks=task.blocks)
        context = TaskContext(checked(task.teacher, task.example_inputs, found))
        _contexts[task.teacher] = context
    return context


@dataclass
class Compressed:
    model: nn.Module  # fine-tuned, eval mode; quantized layers are FakeQuantLayers (tables: FakeQuantEmbeddings)
    notes: list[str] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def _train_batches(task: Task, count: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = torch.utils.data.DataLoader(task.train, batch_size=size, shuffle=False)
    return [batch for batch, _ in zip(loader, range(count))]


def with_task_lr(config: DistillConfig, task: Task) -> DistillConfig:
    """``config`` with its learning rate settled: its own, else the task's, else the default."""
    return dataclasses.replace(config, lr=config.lr or task.distill_lr or DEFAULT_LR)


def _check_plan_names(plan: Plan, info: Discovery) -> None:
    """A plan may name only the layers and groups the search space has, and its stages."""
    unknown = plan.unknown_names(layers={layer.name for layer in info.layers} | {group.name for group in info.groups},
                                 stages=info.stages)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise UsageError(f"the plan names {shown}, which this model's search space does not have (not a layer of "
                         "it, or one left out: 'autocompress inspect' lists both); was the plan made for another model?")


def build(task: Task, plan: Plan) -> Compressed:
    """The structure ``plan`` describes, built on a copy of the teacher and calibrated, not yet
    fine-tuned: its exported file already has the final size and latency."""
    context = task_context(task)
    info = context.discovery
    _check_plan_names(plan, info)
    model = copy.deepcopy(task.teacher).eval()
    trimmed = trim_tables(model, task.example_inputs, rows=context.table_rows(task))
    notes = [f"kept rows {after} of {before} of {name} (the others are never read)"
             for name, (before, after) in trimmed.items()]
    dropped = drop_blocks(model, plan, info.stages)
    if dropped:
        notes.append(f"dropped blocks {', '.join(dropped)}")
    keep = {g.name: plan.width * (1 - plan.layer(g.name).prune) for g in info.groups}
    keep = {name: k for name, k in keep.items() if k < 1}
    heads = {g.name: keep.pop(g.name) for g in info.groups if g.unit == "heads" and g.name in keep}
    if heads:  # a heads group is named after its q layer: "<attention>.q"
        by_module = {name.rpartition(".")[0]: k for name, k in heads.items()}
        changed = prune_heads(model, task.example_inputs, keep=by_module,
                              importance=plan.importance)
        notes += [f"pruned heads of {name} {before}->{after}" for name, (before, after) in changed.items()]
    if keep:
        batches = _train_batches(task, 1, CALIBRATION_BATCH_SIZE)
        changed = prune_groups(model, task.example_inputs, keep=keep, head=info.head,
                               group_of={m: g.name for g in info.groups for m in g.members},
                               importance=plan.importance, batch=batches[0])
        notes += [f"pruned {name} {before}->{after}" for name, (before, after) in changed.items()]
    if dropped or keep or heads:  # the teacher's BN statistics no longer fit the changed structure
        bn_batches = [x for x, _ in _train_batches(task, BN_BATCHES, CALIBRATION_BATCH_SIZE)]
        refitted = reconstruct_consumers(model, task.teacher, bn_batches[:RECONSTRUCT_BATCHES])
        notes += [f"refitted {', '.join(refitted)} to the teacher's outputs (least squares)"] if refitted else []
        recalibrate_batchnorm(model, bn_batches)
    model = fold_batchnorm(model, task.example_inputs)
    skipped = factorize(model, {name: lp.rank for name, lp in plan.layers if lp.rank not in (None, 1.0)},
                        tucker={name for name, lp in plan.layers if lp.decomposition == "tucker2"})
    notes += [f"low-rank skipped for {name}: {why}" for name, why in skipped.items()]
    prepare_qat(model, {name: lp.bits for name, lp in plan.layers if lp.bits}, kernels=plan.kernels)
    calibrate(model, [x for x, _ in _train_batches(task, CALIBRATION_BATCHES, CALIBRATION_BATCH_SIZE)])
    return Compressed(model.eval(), notes)


def fine_tune(task: Task, built: Compressed, *, config: DistillConfig = DistillConfig(),
              on_step: Callable[[int], None] | None = None, checkpoint: str | None = None,
              device: torch.device | None = None) -> Compressed:
    """Fine-tune a built candidate in place by distillation from the teacher (``config.steps``
    steps; none: post-training, calibration only). ``checkpoint``: a file the fine-tuning
    continues from if it exists and is saved to (see ``distill``). With ``config.augment`` and a
    task that augments, the teacher runs on every augmented batch; otherwise its outputs are
    cached once per task. ``device``: fine-tune there (a GPU: the teacher and its outputs live
    there too); the model comes back on the CPU for export."""
    if config.steps:
        config = with_task_lr(config, task)
        context = task_context(task)
        augment = task.augment if config.augment else None
        teacher = context.teacher(task, device) if augment is not None else context.targets(task, device)
        built.losses = distill(built.model, task.train, teacher, config, head=context.discovery.head,
                               on_step=on_step, augment=augment, checkpoint=checkpoint, device=device)
    built.model.eval()
    return built


def compress(task: Task, plan: Plan, *, config: DistillConfig = DistillConfig(),
             on_step: Callable[[int], None] | None = None, checkpoint: str | None = None) -> Compressed:
    """Apply ``plan`` to a copy of the teacher and fine-tune it; the teacher is not changed."""
    return fine_tune(task, build(task, plan), config=config, on_step=on_step, checkpoint=checkpoint)


__all__ = ["Compressed", "build", "compress", "fine_tune", "share_discovery", "task_context"]
