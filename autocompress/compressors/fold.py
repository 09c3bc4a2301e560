"""Fold BatchNorm into the preceding convolution, as the deployed model would have it.

The compressed model is fine-tuned and exported with BN folded, so the quantized weights are
the weights that run. torch.fx finds the pairs; for models it cannot trace (Python control flow
on tensors), forward hooks on one example find each BN whose input is a conv's output, and the
fused model must give the same outputs as the original. In the traced graph, in-place
operations whose input nothing reads afterwards (torchvision's ``out += identity``) become their
out-of-place forms (``out_of_place``): each result is then a tensor of its own, which a
quantizer can be placed on.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).eval()
    >>> folded = fold_batchnorm(net)
    >>> any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    False
"""

from __future__ import annotations

import copy
import operator

import torch
import torch.fx
from torch import nn
from torch.fx.experimental.optimization import fuse
from torch.nn.utils.fusion import fuse_conv_bn_eval

from autocompress.model_io import call, forward
from autocompress.pause import pause_point


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> int:
    """Re-estimate every BatchNorm's running mean and variance on ``batches`` (an exact average
    over them), in place; returns how many BatchNorms there were. After pruning or dropping
    blocks, the statistics the teacher learned no longer describe the inputs a BN now sees
    (a pruned ResNet-20 falls to chance until they are re-estimated); folding stale statistics
    would bake that into the weights.

    >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    >>> recalibrate_batchnorm(net, [torch.randn(8, 1, 4, 4) * 3 + 5])
    1
    >>> bool(net[1].running_mean.abs().sum() > 0), net.training
    (True, False)
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or not batches:
        return len(norms)
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
    model.train()
    try:
        for x in batches:
            pause_point()
            call(model, x)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    return len(norms)


IN_PLACE_FUNCTIONS = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
                      operator.itruediv: operator.truediv, torch.relu_: torch.relu}
IN_PLACE_METHODS = {"add_", "sub_", "mul_", "div_", "relu_", "clamp_", "clamp_min_", "clamp_max_", "sigmoid_", "tanh_"}


def _out_of_place_form(node: torch.fx.Node) -> tuple | None:
    """(op target, kwargs) of the out-of-place form of an in-place node, else None."""
    if node.op == "call_function" and node.target in IN_PLACE_FUNCTIONS:
        return IN_PLACE_FUNCTIONS[node.target], dict(node.kwargs)
    if node.op == "call_method" and node.target in IN_PLACE_METHODS:
        return node.target[:-1], dict(node.kwargs)
    if node.op == "call_function" and node.kwargs.get("inplace") is True:
        return node.target, dict(node.kwargs, inplace=False)
    return None


def out_of_place(model: torch.fx.GraphModule) -> int:
    """Make each in-place operation of the traced graph whose input no later node reads
    out-of-place (same values, a new tensor); returns how many were.

    >>> graph = torch.fx.symbolic_trace(lambda x: torch.relu_(x + 1))
    >>> out_of_place(graph), [n.target for n in graph.graph.nodes if n.op == "call_function"][-1] is torch.relu
    (1, True)
    """
    order = {node: i for i, node in enumerate(model.graph.nodes)}
    changed = 0
    for node in model.graph.nodes:
        form = _out_of_place_form(node)
        first = node.args[0] if node.args else None
        if form is None or not isinstance(first, torch.fx.Node) or first.op == "get_attr" or \
                any(order[user] > order[node] for user in first.users if user is not node):
            continue
        node.target, node.kwargs = form
        changed += 1
    if changed:
        model.recompile()
    return changed


def fold_batchnorm(model: nn.Module, example_inputs=None) -> nn.Module:
    """``model`` with every Conv->BN pair fused (module names are kept), its in-place operations
    made out-of-place where nothing else reads their input (``out_of_place``)."""
    model.eval()
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model  # nothing to fold: keep the modules as they are (no fx tracing)
    try:
        fused = fuse(model)
        out_of_place(fused)
        return fused
    except (torch.fx.proxy.TraceError, TypeError, NotImplementedError, RuntimeError):
        if example_inputs is None:
            return model
        return _fold_by_hooks(model, example_inputs)


def _fold_by_hooks(model: nn.Module, example_inputs) -> nn.Module:
    modules = dict(model.named_modules())
    produced, pairs, hooks = {}, [], []
    for name, module in modules.items():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            hooks.append(module.register_forward_hook(
                lambda _m, _i, out, name=name: produced.__setitem__(id(out), name)))
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            hooks.append(module.register_forward_pre_hook(
                lambda _m, inputs, name=name: pairs.append((produced.get(id(inputs[0])), name))))
    try:
        with torch.no_grad():
            expected = forward(model, example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    fused = copy.deepcopy(model)
    for conv, bn in {(c, b) for c, b in pairs if c is not None}:
        _replace(fused, conv, fuse_conv_bn_eval(fused.get_submodule(conv), fused.get_submodule(bn)))
        _replace(fused, bn, nn.Identity())
    with torch.no_grad():
        same = torch.allclose(forward(fused, example_inputs), expected, rtol=1e-3, atol=1e-5)
    return fused if same else model  # a conv output also used elsewhere: folding would change the model


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)
