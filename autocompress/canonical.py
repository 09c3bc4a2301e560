"""Equivalent rewrites of layers whose weights the techniques cannot otherwise reach.

A teacher is taken as the user built it; before anything looks at it, two kinds of layer are
put in an equivalent, explicit form, in place:

- ``nn.MultiheadAttention`` (torchvision's ViT, ``nn.TransformerEncoder``, hand-written models):
  its fused q/k/v weight (3/4 of its weights) becomes three Linear layers and its heads become
  visible (``modules.MultiheadAttention``), so it is quantized, factorized and head-pruned like
  any attention;
- Hugging Face's ``Conv1D`` (GPT-2: a Linear with its weight stored transposed) becomes the
  ``nn.Linear`` it is;
- torchvision's shifted-window attention (Swin V1 and V2), which multiplies by its ``qkv`` and
  ``proj`` weights directly, becomes ``window_attention.WindowAttention``: the same computation
  with q, k, v and proj called as Linear layers;
- adaptive average pooling the ONNX exporter refuses (an output size that does not divide the
  input size at the example inputs, e.g. VGG's 7x7 pooling after a 1x1 map) becomes
  ``pooling.MatrixAvgPool``, the same averages as two matrix products;
- activations that overwrite their input (``nn.ReLU(inplace=True)``, torchvision's ReLU6) write a
  new tensor instead: a quantized layer's output is then quantized where the activation's
  result is, before its ReLU (a no-op there), and int8 kernels chain through it.

The model must give the same outputs afterwards (within ``TOLERANCE`` on the example inputs);
if not, the rewrite is undone and the layers stay as they were. The rewritten modules keep
their names, so a plan names them as ``inspect`` lists them (``encoder.layers.0.self_attn.q``).

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
    ...     def forward(self, x):
    ...         return self.attn(x, x, x)[0]
    >>> model = Net().eval()
    >>> explicit_layers(model, torch.randn(1, 3, 8))
    ['attn']
    >>> type(model.attn).__name__, model.attn.q.weight.shape
    ('MultiheadAttention', torch.Size([8, 8]))
"""

from __future__ import annotations

import torch
from torch import nn

from autocompress.model_io import Inputs, forward
from autocompress.modules import MultiheadAttention, attention_fast_path_off
from autocompress.pooling import POOLS, MatrixAvgPool, exportable
from autocompress.window_attention import WindowAttention, is_window_attention

TOLERANCE = 1e-4  # max abs difference of the outputs, relative to their largest magnitude


def is_transposed_linear(module: nn.Module) -> bool:
    """Hugging Face's Conv1D: ``x @ weight + bias`` with weight (in, out)."""
    weight = getattr(module, "weight", None)
    return (type(module).__name__ == "Conv1D" and hasattr(module, "nf") and isinstance(weight, torch.Tensor)
            and weight.dim() == 2 and weight.shape[1] == module.nf and not list(module.children()))


def _as_linear(module: nn.Module) -> nn.Linear:
    fan_in, fan_out = module.weight.shape
    linear = nn.Linear(fan_in, fan_out, bias=module.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(module.weight.t())
        if module.bias is not None:
            linear.bias.copy_(module.bias)
    return linear


def _rewrite(module: nn.Module) -> nn.Module | None:
    if MultiheadAttention.converts(module) and not isinstance(module, MultiheadAttention):
        return MultiheadAttention(module).train(module.training)
    if is_transposed_linear(module):
        return _as_linear(module).train(module.training)
    if is_window_attention(module):
        return WindowAttention(module).train(module.training)
    return None


def _unexportable_pools(model: nn.Module, example_inputs: Inputs) -> list[tuple[str, nn.Module, nn.Module]]:
    pools = [(name, module) for name, module in model.named_modules() if type(module) in POOLS]
    if not pools:
        return []
    names = {module: name for name, module in pools}
    sizes: dict[str, tuple] = {}
    # a pre-hook returning anything but None would replace the inputs: hence "and None"
    hooks = [module.register_forward_pre_hook(lambda mod, args: sizes.setdefault(names[mod], tuple(args[0].shape[2:]))
                                              and None) for _, module in pools]
    try:
        forward(model, example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return [(name, module, MatrixAvgPool(module, sizes[name])) for name, module in pools
            if name in sizes and not exportable(module, sizes[name])]


def _in_place(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in model.named_modules()
            if getattr(module, "inplace", None) is True and not list(module.children())]


def _set_in_place(modules: list[tuple[str, nn.Module]], value: bool) -> None:
    for _, module in modules:
        module.inplace = value


@torch.no_grad()
def explicit_layers(model: nn.Module, example_inputs: Inputs) -> list[str]:
    """Rewrite the layers of ``model`` listed in the module docstring, in place; returns the
    names of those rewritten (none if the outputs would change)."""
    replaced = [(name, module, new) for name, module in model.named_modules()
                for new in [_rewrite(module)] if new is not None]
    in_place = _in_place(model)
    training = model.training
    model.eval()
    with attention_fast_path_off():
        replaced += _unexportable_pools(model, example_inputs)
        if not replaced and not in_place:
            model.train(training)
            return []
        before = forward(model, example_inputs).clone()
        for name, _, new in replaced:
            model.set_submodule(name, new)
        _set_in_place(in_place, False)
        try:
            after = forward(model, example_inputs)
            same = after.shape == before.shape and bool(
                (after - before).abs().max() <= TOLERANCE * max(1.0, float(before.abs().max())))
        except Exception:  # the model's code needs the original layer (say, reads its fused weight)
            same = False
    if not same:
        for name, original, _ in replaced:
            model.set_submodule(name, original)
        _set_in_place(in_place, True)
    model.train(training)
    return [name for name, _, _ in replaced] + [name for name, _ in in_place] if same else []
