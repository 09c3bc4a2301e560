"""Layer discovery: which layers can be compressed, how channels are coupled, and why not.

Pruning ratios belong to dependency groups (Torch-Pruning's DepGraph): a residual add ties the
output channels of several convolutions together, so they are pruned together; through a
concatenation, each branch's channels map by index to their slice of it. A group is named after
its first member layer in module order, which stays stable when a student drops blocks.

Example:
    >>> from torch import nn
    >>> import torch
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> info = discover(net, torch.randn(1, 4))
    >>> [g.name for g in info.groups], info.head
    (['0'], '2')
    >>> text = nn.Sequential(nn.Embedding(100, 8), nn.Flatten(), nn.Linear(16, 2))
    >>> [(layer.name, layer.kind) for layer in discover(text, torch.tensor([[1, 2]])).layers]
    [('0', 'embedding'), ('2', 'linear')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from autocompress.model_io import Inputs, call, forward, output_tensor
from autocompress.spaces.attention import Heads, find_heads, projection_layers
from autocompress.spaces.dependency import build_graph, walk_groups
from autocompress.spaces.embeddings import embeddings_left_float
from autocompress.errors import UsageError

CONV_TYPES = (nn.Conv1d, nn.Conv2d)
COMPRESSIBLE_TYPES = CONV_TYPES + (nn.Linear,)
RECURRENT_TYPES = (nn.LSTM, nn.GRU, nn.RNN)  # a bit-width for their weights; their hidden units pruned
PRUNED_TYPES = COMPRESSIBLE_TYPES + RECURRENT_TYPES  # layers whose output channels a group can hold


@dataclass(frozen=True)
class Group:
    """Output channels of ``members`` that are pruned together (``channels`` of them); for an
    attention module's q/k/v (``unit`` "heads"), its heads, pruned whole. ``stripes``: a grouped
    convolution among them splits the channels into that many equal chunks, and every chunk
    loses the same positions (``channel_stripes``), so channels go ``stripes`` at a time."""

    name: str
    members: tuple[str, ...]
    channels: int
    unit: str = "channels"
    stripes: int = 1


@dataclass(frozen=True)
class Layer:
    """One Conv1d/Conv2d, Linear, Embedding or recurrent layer: its weight shape and which knobs
    apply to it (an embedding has a bit-width only: its width follows the model's, and a table is
    not factorized; a recurrent layer (LSTM, GRU, RNN) has a bit-width for its weights, and its
    shape is the number of those weights)."""

    name: str
    kind: str  # "conv", "linear", "embedding" or "recurrent"
    shape: tuple[int, ...]  # weight shape
    group: str | None  # the dependency group its output channels belong to
    rank_ratios: tuple[float, ...]  # the rank/ knob's values that save parameters (negative: Tucker-2)
    rank_reason: str = ""  # why low-rank is not offered, when it is not


@dataclass(frozen=True)
class Discovery:
    layers: tuple[Layer, ...]
    groups: tuple[Group, ...]
    head: str  # the output layer: its outputs are the model's outputs, never pruned
    stages: dict[str, tuple[str, ...]] = field(default_factory=dict)  # stage -> droppable blocks
    not_compressible: dict[str, str] = field(default_factory=dict)  # module name -> reason

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)


RANK_RATIOS = (0.5, 0.25)
ALL_GROUPS = "every channel group"  # the key of the reason when no group can be pruned at all
EMBEDDING_RANK = "an embedding is a lookup table: quantized, not factorized"
RECURRENT_RANK = "a recurrent layer: its weights are quantized (per row) and its hidden units pruned, not factorized"


def factorized_params(shape: tuple[int, ...], rank: int) -> int:
    """Weights of the two factors of a layer of weight ``shape`` at ``rank``."""
    out_features, fan_in = shape[0], int(torch.tensor(shape[1:]).prod())
    return rank * (fan_in + out_features)


def full_rank(shape: tuple[int, ...]) -> int:
    return min(shape[0], int(torch.tensor(shape[1:]).prod()))


def rank_for(shape: tuple[int, ...], ratio: float) -> int:
    return max(1, round(ratio * full_rank(shape)))


def tucker_ranks(shape: tuple[int, ...], ratio: float) -> tuple[int, int]:
    """(input, output) channels of a Tucker-2 core of a convolution of weight ``shape`` at ``ratio``,
    each at most what the other side's channels x the kernel can span.

    >>> tucker_ranks((64, 64, 3, 3), 0.5), tucker_ranks((64, 3, 3, 3), 0.25)
    ((32, 32), (1, 9))
    """
    kernel = math.prod(shape[2:])
    inner, outer = max(1, round(ratio * shape[1])), max(1, round(ratio * shape[0]))
    outer = min(outer, inner * kernel)
    return min(inner, outer * kernel), outer


def tucker_params(shape: tuple[int, ...], ratio: float) -> int:
    """Weights of the three convolutions of a Tucker-2 decomposition (1x1 in, core, 1x1 out).

    >>> tucker_params((64, 64, 3, 3), 0.5), factorized_params((64, 64, 3, 3), 32), 64 * 64 * 9
    (13312, 20480, 36864)
    """
    inner, outer = tucker_ranks(shape, ratio)
    return shape[1] * inner + inner * outer * int(torch.tensor(shape[2:]).prod()) + outer * shape[0]


def saves_params(shape: tuple[int, ...], ratio: float) -> bool:
    return factorized_params(shape, rank_for(shape, ratio)) < int(torch.tensor(shape).prod())


def rank_choices(shape: tuple[int, ...], *, tucker: bool) -> tuple[float, ...]:
    """The ``rank/<layer>`` values (``plan.rank_knob``: negative for Tucker-2) that store
    fewer weights than the layer, fewest kept last; Tucker-2 only where ``tucker`` (a convolution
    with a kernel larger than 1x1: for a 1x1 kernel it is the SVD with one more layer).

    >>> rank_choices((64, 64, 3, 3), tucker=True)
    (0.5, -0.5, 0.25, -0.25)
    >>> rank_choices((10, 400), tucker=False)
    (0.5, 0.25)
    """
    size = int(torch.tensor(shape).prod())
    kept = {r: factorized_params(shape, rank_for(shape, r)) for r in RANK_RATIOS}
    if tucker:
        kept |= {-r: tucker_params(shape, r) for r in RANK_RATIOS}
    return tuple(sorted((value for value, params in kept.items() if params < size), key=lambda v: -kept[v]))


def _rank_knob(module: nn.Module, shape: tuple[int, ...]) -> tuple[tuple[float, ...], str]:
    if isinstance(module, CONV_TYPES) and module.groups != 1:
        return (), "grouped/depthwise convolution: factorization not supported"
    ratios = rank_choices(shape, tucker=isinstance(module, CONV_TYPES) and math.prod(shape[2:]) > 1)
    if ratios:
        return ratios, ""
    r = rank_for(shape, RANK_RATIOS[0])
    return (), (f"rank {r} factors hold {factorized_params(shape, r)} weights vs "
                f"{int(torch.tensor(shape).prod())} unfactorized: would not save parameters")


def find_head(model: nn.Module, example_inputs: Inputs) -> str:
    """The output layer: the Conv/Linear layer whose output is the model's output, else the last
    one the forward pass runs (a softmax, a pooling or a scale may follow it: a SqueezeNet's 1x1
    convolution with pooling after it). Its outputs are never pruned. A teacher that runs no
    Conv/Linear layer is refused with a UsageError.

    >>> find_head(nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)), torch.randn(1, 4))
    '0'
    """
    calls: list[tuple[str, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: calls.append((n, out)))
             for n, m in model.named_modules() if isinstance(m, COMPRESSIBLE_TYPES)]
    try:
        with torch.no_grad():
            final = forward(model, example_inputs)
    finally:
        for h in hooks:
            h.remove()
    if not calls:
        raise UsageError("the teacher runs no Conv1d, Conv2d or Linear layer, so there is nothing to compress; "
                         "give a model built from those layers")
    return next((n for n, o in calls if o is final), calls[-1][0])


def out_channels(module: nn.Module) -> int:
    if isinstance(module, RECURRENT_TYPES):
        return module.hidden_size * (2 if module.bidirectional else 1)
    return module.out_channels if isinstance(module, CONV_TYPES) else module.out_features


def channel_stripes(graph: tp.DependencyGraph, group: tp.Group, channels: int) -> int:
    """Into how many equal chunks the grouped convolutions (not depthwise ones) among ``group``'s
    layers split its ``channels``: each group of such a convolution must keep as many channels as
    the others, so every chunk loses the same positions (1: none; the least common multiple of
    their group counts where there are several).

    >>> net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=4))
    >>> graph = tp.DependencyGraph().build_dependency(net, torch.randn(1, 3, 6, 6))
    >>> channel_stripes(graph, graph.get_pruning_group(net[0], tp.prune_conv_out_channels, [0]), 8)
    4
    """
    counts = [module.groups for item in group for module in [item.dep.target.module]
              if isinstance(module, CONV_TYPES) and module.groups > 1
              and not module.groups == module.in_channels == module.out_channels]
    counts += [2 for item in group if isinstance(item.dep.target.module, RECURRENT_TYPES)
               and item.dep.target.module.bidirectional and graph.is_out_channel_pruning_fn(item.dep.handler)]
    stripes = math.lcm(*counts) if counts else 1
    return stripes if channels % stripes == 0 else 1


def _layer_outputs(graph: tp.DependencyGraph, group: tp.Group, names: dict[nn.Module, str]) -> list:
    """The items of ``group`` that prune output channels of Conv/Linear/recurrent layers of the model."""
    return [item for item in group if isinstance(item.dep.target.module, PRUNED_TYPES)
            and item.dep.target.module in names and graph.is_out_channel_pruning_fn(item.dep.handler)]


def _maps_every_channel(graph: tp.DependencyGraph, group: tp.Group, names: dict[nn.Module, str]) -> bool:
    """Whether Torch-Pruning's index mapping (through concatenations, residual adds ...) reaches
    every output channel of every layer of ``group`` exactly once. It does not where an operation
    it passes channels through unchanged really moves them, such as a zero-padding of channels:
    there a 16-channel root reaches only channels 0-15 of a 32-channel layer."""
    return all(sorted(item.idxs) == list(range(out_channels(item.dep.target.module)))
               for item in _layer_outputs(graph, group, names))


def _rooted_at_widest(graph: tp.DependencyGraph, group: tp.Group, names: dict[nn.Module, str]) -> tp.Group:
    """``group`` walked again from its widest layer: rooted at one branch of a concatenation that
    is added to a wider tensor, a walk reaches only that branch's part of the wider layer."""
    widest = max((item.dep.target.module for item in _layer_outputs(graph, group, names)), key=out_channels)
    handler = graph.get_pruner_of_module(widest).prune_out_channels
    return graph.get_pruning_group(widest, handler, list(range(out_channels(widest))))


def _pads_channels(grad_fn) -> bool:
    """Whether an autograd node is a constant padding of dimension 1 of a 4-D tensor (channels)."""
    pad = tuple(getattr(grad_fn, "_saved_pad", ())) if type(grad_fn).__name__.startswith("ConstantPadNd") else ()
    return any(pad[4:6])


def _why_unmapped(group: tp.Group, root: str, members: tuple[str, ...], modules: dict[str, nn.Module]) -> str:
    others = [m for m in members if m != root]
    named = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
    widths = " of other widths" if len({out_channels(modules[m]) for m in members}) > 1 else ""
    padded = any(_pads_channels(getattr(item.dep.target, "grad_fn", None)) for item in group)
    through = ("a zero-padding of channels (torch.nn.functional.pad, as in an option-A shortcut), which "
               "Torch-Pruning cannot map channel by channel" if padded else
               "an operation Torch-Pruning cannot map channel by channel (e.g. a zero-padding shortcut, or "
               "concatenations whose channels do not line up)")
    count = f"{len(others)} layer{'s' if len(others) != 1 else ''}"
    return f"not pruned: coupled with {count}{widths} ({named}) through {through}"


def coupled_channels(model: nn.Module, example_inputs: Inputs, *, head: str, only: set[str] | None = None,
                     attention: dict[str, Heads] | None = None
                     ) -> tuple[tp.DependencyGraph, list[tuple[tp.Group, tuple[str, ...]]], dict[str, str]]:
    """Torch-Pruning's dependency walk, in one place for discovery and pruning: the graph; for
    each group of coupled output channels, the Torch-Pruning group and the Conv2d/Linear layers
    whose outputs those channels are, in module order; and the groups refused, with why.

    Channels coupled through a concatenation are mapped by index (Torch-Pruning's concat index
    mapping): branches concatenated and added to a wider tensor form one group whose channels
    are the wider tensor's, each branch owning its slice. A group is refused where that mapping
    does not reach every output channel of each of its layers exactly once (a zero-padding
    shortcut). ``only``: walk just the groups of these layers. The head's outputs and the q/k/v
    outputs of attention modules (``attention``, found here unless given; pruned as whole
    heads, ``compressors.heads``) are left out."""
    modules = dict(model.named_modules())
    names = {m: n for n, m in modules.items()}
    order = {n: i for i, n in enumerate(modules)}
    graph, failed = build_graph(model, example_inputs)
    if graph is None:
        return None, [], {ALL_GROUPS: failed}
    attention = find_heads(model, example_inputs) if attention is None else attention
    ignored = [modules[head]] + [modules[n] for n in projection_layers(attention)]

    def members_of(group: tp.Group) -> tuple[str, ...]:
        return tuple(sorted({names[item.dep.target.module] for item in _layer_outputs(graph, group, names)},
                            key=order.__getitem__))

    found: dict[tuple[str, ...], tp.Group] = {}
    refused: dict[tuple[str, ...], tuple[str, str]] = {}  # members -> (root, why)
    roots = None if only is None else {modules[n] for n in only if n in modules}
    walked, slow = walk_groups(graph, ignored=ignored, root_types=PRUNED_TYPES, roots=roots)
    for group in walked:
        members = members_of(group)
        if not _maps_every_channel(graph, group, names):
            rerooted = _rooted_at_widest(graph, group, names)
            if not _maps_every_channel(graph, rerooted, names) or any(
                    item.dep.target.module in ignored for item in _layer_outputs(graph, rerooted, names)):
                root = names[group[0].dep.target.module]
                refused[members] = (root, _why_unmapped(group, root, members, modules))
                continue
            group, members = rerooted, members_of(rerooted)
        found.setdefault(members, group)
    taken = {m for members in found for m in members}
    why = {f"{root} (outputs)": reason for members, (root, reason) in refused.items() if not set(members) <= taken}
    why.update({f"{names[m]} (outputs)": reason for m, reason in slow.items() if m in names})
    return graph, [(group, members) for members, group in found.items()], why


def dependency_groups(model: nn.Module, example_inputs: Inputs, *, head: str, attention: dict[str, Heads] | None = None
                      ) -> tuple[list[Group], dict[str, str]]:
    """The prunable channel groups of ``model`` (the head's outputs excluded), and the groups
    refused with why (``coupled_channels``). A group's channels are those of the root of its
    Torch-Pruning walk: for branches concatenated and added to a wider tensor, the wider one's.
    The q/k/v outputs of attention modules are not channel groups: ``attention_groups`` has
    their heads."""
    order = {n: i for i, n in enumerate(dict(model.named_modules()))}
    graph, found, refused = coupled_channels(model, example_inputs, head=head, attention=attention)
    names = {m: n for n, m in model.named_modules()}
    groups = [Group(name=members[0], members=members + _coupled_tables(graph, group, names), channels=channels,
                    stripes=channel_stripes(graph, group, channels))
              for group, members in found for channels in [out_channels(group[0].dep.target.module)]]
    return sorted(groups, key=lambda g: order[g.name]), refused


def _coupled_tables(graph: tp.DependencyGraph, group: tp.Group, names: dict[nn.Module, str]) -> tuple[str, ...]:
    """The embeddings whose vectors lose the channels ``group`` loses (a model-width group): members
    after the group's layers, so the group keeps its name."""
    return tuple(dict.fromkeys(names[item.dep.target.module] for item in group
                               if isinstance(item.dep.target.module, nn.Embedding)
                               and graph.is_out_channel_pruning_fn(item.dep.handler)))


def attention_groups(found: dict[str, Heads]) -> list[Group]:
    """One group per attention module (``spaces.attention.find_heads``): its heads, named after
    its q layer."""
    return [Group(name=heads.q, members=(heads.q, heads.k, heads.v), channels=heads.heads, unit="heads")
            for heads in found.values()]


def block_stages(model: nn.Module, example_inputs: Inputs, blocks: tuple[str, ...]
                 ) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Group droppable blocks by parent module; a block whose output shape differs is refused."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple] = {}

    def record(name):
        return lambda mod, inp, out: shapes.__setitem__(name, (tuple(inp[0].shape), tuple(out.shape)))

    hooks = [modules[b].register_forward_hook(record(b)) for b in blocks]
    try:
        with torch.no_grad():
            call(model, example_inputs)
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


def discover(model: nn.Module, example_inputs: Inputs, *, blocks: tuple[str, ...] = ()) -> Discovery:
    """Everything the search space needs to know about ``model``."""
    model.eval()
    head = find_head(model, example_inputs)
    attention = find_heads(model, example_inputs)  # traced once: the groups leave its q/k/v out
    groups, skipped = dependency_groups(model, example_inputs, head=head, attention=attention)
    order = {n: i for i, n in enumerate(dict(model.named_modules()))}
    groups = sorted(groups + attention_groups(attention), key=lambda g: order[g.name])
    group_of = {member: g.name for g in groups for member in g.members}
    left_float = embeddings_left_float(model, example_inputs)
    skipped.update(left_float)
    layers = []
    for name, module in model.named_modules():
        if name in left_float:
            continue
        if isinstance(module, nn.Embedding):
            shape = tuple(module.weight.shape)
            layers.append(Layer(name, "embedding", shape, group_of.get(name), (), EMBEDDING_RANK))
        elif isinstance(module, RECURRENT_TYPES):
            weights = sum(p.numel() for n, p in module.named_parameters() if n.startswith("weight_"))
            layers.append(Layer(name, "recurrent", (weights,), group_of.get(name), (), RECURRENT_RANK))
        elif isinstance(module, COMPRESSIBLE_TYPES):
            shape = tuple(module.weight.shape)
            ratios, reason = _rank_knob(module, shape)
            kind = "conv" if isinstance(module, CONV_TYPES) else "linear"
            layers.append(Layer(name, kind, shape, group_of.get(name), ratios, reason))
        elif not list(module.children()) and any(True for _ in module.parameters(recurse=False)):
            if not isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):  # follow their group
                skipped[name] = (f"{type(module).__name__} layers are not compressed "
                                 "(only Conv1d, Conv2d, Linear and Embedding)")
    stages, refused = block_stages(model, example_inputs, blocks)
    skipped.update(refused)
    if head not in group_of:
        skipped.setdefault(f"{head} (outputs)", "output layer: its outputs are the model's outputs, never pruned")
    return Discovery(tuple(layers), tuple(groups), head, stages, skipped)
