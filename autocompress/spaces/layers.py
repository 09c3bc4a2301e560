"""Layer discovery: which layers can be compressed, how channels are coupled, and why not.

Pruning ratios belong to dependency groups (Torch-Pruning's DepGraph): a residual add ties the
output channels of several convolutions together, so they are pruned together. A group is
named after its first member layer in module order, which stays stable when a student drops
blocks.

Example:
    >>> from torch import nn
    >>> import torch
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> info = discover(net, torch.randn(1, 4))
    >>> [g.name for g in info.groups], info.head
    (['0'], '2')
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from autocompress.compressors.heads import attention_modules, projection_names

COMPRESSIBLE_TYPES = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class Group:
    """Output channels of ``members`` that are pruned together (``channels`` of them); for an
    attention module's q/k/v (``unit`` "heads"), its heads, pruned whole."""

    name: str
    members: tuple[str, ...]
    channels: int
    unit: str = "channels"


@dataclass(frozen=True)
class Layer:
    """One Conv2d or Linear layer: its weight shape and which knobs apply to it."""

    name: str
    kind: str  # "conv" or "linear"
    shape: tuple[int, ...]  # weight shape
    group: str | None  # the dependency group its output channels belong to
    rank_ratios: tuple[float, ...]  # factorization ratios that save parameters
    rank_reason: str = ""  # why low-rank is not offered, when it is not


@dataclass(frozen=True)
class Discovery:
    layers: tuple[Layer, ...]
    groups: tuple[Group, ...]
    head: str  # the output layer: its outputs are the classes, never pruned
    stages: dict[str, tuple[str, ...]] = field(default_factory=dict)  # stage -> droppable blocks
    not_compressible: dict[str, str] = field(default_factory=dict)  # module name -> reason

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)


RANK_RATIOS = (0.5, 0.25)


def factorized_params(shape: tuple[int, ...], rank: int) -> int:
    """Weights of the two factors of a layer of weight ``shape`` at ``rank``."""
    out_features, fan_in = shape[0], int(torch.tensor(shape[1:]).prod())
    return rank * (fan_in + out_features)


def full_rank(shape: tuple[int, ...]) -> int:
    return min(shape[0], int(torch.tensor(shape[1:]).prod()))


def rank_for(shape: tuple[int, ...], ratio: float) -> int:
    return max(1, round(ratio * full_rank(shape)))


def saves_params(shape: tuple[int, ...], ratio: float) -> bool:
    return factorized_params(shape, rank_for(shape, ratio)) < int(torch.tensor(shape).prod())


def _rank_knob(module: nn.Module, shape: tuple[int, ...]) -> tuple[tuple[float, ...], str]:
    if isinstance(module, nn.Conv2d) and module.groups != 1:
        return (), "grouped/depthwise convolution: factorization not supported"
    ratios = tuple(r for r in RANK_RATIOS if saves_params(shape, r))
    if ratios:
        return ratios, ""
    r = rank_for(shape, RANK_RATIOS[0])
    return (), (f"rank {r} factors hold {factorized_params(shape, r)} weights vs "
                f"{int(torch.tensor(shape).prod())} unfactorized: would not save parameters")


def find_head(model: nn.Module, example_inputs: torch.Tensor) -> str:
    """The output layer: the Conv2d/Linear whose output is the model's output, else the last Linear."""
    outputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: outputs.__setitem__(n, out))
             for n, m in model.named_modules() if isinstance(m, COMPRESSIBLE_TYPES)]
    try:
        with torch.no_grad():
            final = model(example_inputs)
    finally:
        for h in hooks:
            h.remove()
    for name, out in outputs.items():
        if out is final:
            return name
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("cannot find the output layer: the model has no Linear layer producing its output")
    return linears[-1]


def _outputs(module: nn.Module) -> int:
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features


def dependency_groups(model: nn.Module, example_inputs: torch.Tensor, *, head: str
                      ) -> tuple[list[Group], dict[str, str]]:
    """The prunable channel groups of ``model`` (the head's outputs excluded), and the groups
    refused with why: members with different output counts are coupled through an operation
    Torch-Pruning cannot map channel by channel (such as a zero-padding "option A" shortcut).
    The q/k/v outputs of attention modules are not channel groups: ``attention_groups`` has
    their heads."""
    names = {m: n for n, m in model.named_modules()}
    modules = dict(model.named_modules())
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
    order = {n: i for i, n in enumerate(modules)}
    groups, refused = [], {}
    ignored = [modules[head]] + [modules[n] for n in projection_names(model)]
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=COMPRESSIBLE_TYPES):
        members = []
        for dep, _ in group:
            module = dep.target.module
            if (isinstance(module, COMPRESSIBLE_TYPES) and graph.is_out_channel_pruning_fn(dep.handler)
                    and module in names):
                members.append(names[module])
        members = sorted(set(members), key=order.__getitem__)
        channels = _outputs(group[0].dep.target.module)
        if any(_outputs(modules[m]) != channels for m in members):
            refused[f"{members[0]} (outputs)"] = (
                f"not pruned: coupled with {len(members) - 1} layers of other widths through an operation "
                "Torch-Pruning cannot map channel by channel (e.g. a zero-padding shortcut)")
            continue
        groups.append(Group(name=members[0], members=tuple(members), channels=channels))
    return sorted(groups, key=lambda g: order[g.name]), refused


def attention_groups(model: nn.Module) -> list[Group]:
    """One group per SelfAttention module: its heads, named after its q layer."""
    groups = []
    for name, attn in attention_modules(model).items():
        members = tuple(f"{name}.{p}" if name else p for p in ("q", "k", "v"))
        groups.append(Group(name=members[0], members=members, channels=attn.num_heads, unit="heads"))
    return groups


def block_stages(model: nn.Module, example_inputs: torch.Tensor, blocks: tuple[str, ...]
                 ) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Group droppable blocks by parent module; a block whose output shape differs is refused."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple] = {}

    def record(name):
        return lambda mod, inp, out: shapes.__setitem__(name, (tuple(inp[0].shape), tuple(out.shape)))

    hooks = [modules[b].register_forward_hook(record(b)) for b in blocks]
    try:
        with torch.no_grad():
            model(example_inputs)
    finally:
        for h in hooks:
            h.remove()
    stages: dict[str, list[str]] = {}
    refused = {}
    for block in blocks:
        shape_in, shape_out = shapes.get(block, (None, None))
        if shape_in is None or shape_in != shape_out:
            refused[block] = f"cannot drop: input shape {shape_in} != output shape {shape_out}"
            continue
        stages.setdefault(block.rpartition(".")[0] or block, []).append(block)
    return {s: tuple(b) for s, b in stages.items()}, refused


def discover(model: nn.Module, example_inputs: torch.Tensor, *, blocks: tuple[str, ...] = ()) -> Discovery:
    """Everything the search space needs to know about ``model``."""
    model.eval()
    head = find_head(model, example_inputs)
    groups, skipped = dependency_groups(model, example_inputs, head=head)
    order = {n: i for i, n in enumerate(dict(model.named_modules()))}
    groups = sorted(groups + attention_groups(model), key=lambda g: order[g.name])
    group_of = {member: g.name for g in groups for member in g.members}
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, COMPRESSIBLE_TYPES):
            shape = tuple(module.weight.shape)
            ratios, reason = _rank_knob(module, shape)
            kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
            layers.append(Layer(name, kind, shape, group_of.get(name), ratios, reason))
        elif not list(module.children()) and any(True for _ in module.parameters(recurse=False)):
            if not isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):  # follow their group
                skipped[name] = f"{type(module).__name__} layers are not compressed (only Conv2d and Linear)"
    stages, refused = block_stages(model, example_inputs, blocks)
    skipped.update(refused)
    if head not in group_of:
        skipped.setdefault(f"{head} (outputs)", "output layer: its outputs are the classes, never pruned")
    return Discovery(tuple(layers), tuple(groups), head, stages, skipped)
