"""Refit the layers that lost input channels to pruning, by least squares against the teacher.

Pruning a group removes output channels of its layers and, with them, input channels of the
layers that read them (a residual block's second convolution, the head after the last stage).
Those consumers still hold the teacher's weights for the inputs they kept, tuned to inputs they
no longer get. ``reconstruct_consumers`` refits each one, in the order the forward pass reaches
them, so that on the pruned model's own inputs (upstream refits included) its output comes as
close as least squares can to the teacher's same-named layer on the teacher's inputs: the
channel-pruning reconstruction of He et al. (2017) and ThiNet, solved in closed form (ridge
regression over training batches until a layer has ``ROWS_PER_COLUMN`` rows per unknown; a
convolution's rows are its input patches). Fine-tuning then starts from a network that already
computes nearly what the teacher does. Run it before BatchNorm statistics are re-estimated: the
BatchNorm after a refitted layer then sees what the teacher's saw.

A layer is refitted when it is a Linear, or a Conv1d/Conv2d with groups 1 and zero padding given
as numbers, has fewer inputs than the teacher's layer of the same name and as many outputs, and
its regression has at most ``MAX_COLUMNS`` columns; anything else is left as it is.

Example:
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0) and None
    >>> teacher = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    >>> pruned = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)).eval()
    >>> with torch.no_grad():   # keep channels 0-3 of the first layer, as pruning would
    ...     for mine, theirs in ((pruned[0].weight, teacher[0].weight[:4]), (pruned[0].bias, teacher[0].bias[:4]),
    ...                          (pruned[2].weight, teacher[2].weight[:, :4]), (pruned[2].bias, teacher[2].bias)):
    ...         _ = mine.copy_(theirs)
    >>> batches = [torch.randn(64, 6) for _ in range(4)]
    >>> @torch.no_grad()
    ... def error():   # squared distance from the teacher's outputs
    ...     return float(sum((pruned(x) - teacher(x)).pow(2).mean() for x in batches))
    >>> before = error()
    >>> reconstruct_consumers(pruned, teacher, batches)
    ['2']
    >>> error() < 0.7 * before   # least squares brings the outputs closer to the teacher's
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autocompress.model_io import Inputs, call
from autocompress.pause import pause_point

MAX_COLUMNS = 2048  # inputs x kernel taps (+ bias) of a refitted layer: its normal equations stay small
RIDGE = 1e-3  # pull towards the weights the layer kept, relative to the normal equations' mean diagonal
ROWS_PER_COLUMN = 32  # rows a layer's regression gathers per column (a batch's rows are sampled down to it)
MIN_ROWS_PER_COLUMN = 8  # fewer (a head on pooled features: one row an example): the layer is left alone


class _Reached(BaseException):
    """Raised by a hook once it holds what it came for: the rest of the forward pass is skipped
    (a BaseException, so that no ``except Exception`` in a model's forward catches it)."""


def _refittable(module: nn.Module) -> bool:
    """A plain Linear, or a plain ungrouped Conv1d/Conv2d zero-padded by numbers (not "same")."""
    if type(module) is nn.Linear:
        return True
    return type(module) in (nn.Conv1d, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros" \
        and not isinstance(module.padding, str)


def _widths(module: nn.Module) -> tuple[int, int]:
    """(inputs, outputs) of a Linear or a convolution."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return module.in_channels, module.out_channels


def _columns(module: nn.Module) -> int:
    taps = module.weight[0].numel()
    return taps + (module.bias is not None)


def consumers(model: nn.Module, teacher: nn.Module) -> list[str]:
    """Names of the layers of ``model`` that lost inputs (not outputs) against ``teacher``'s
    layer of the same name and can be refitted."""
    theirs = dict(teacher.named_modules())
    found = []
    for name, module in model.named_modules():
        original = theirs.get(name)
        if not _refittable(module) or type(original) is not type(module):
            continue
        (inputs, outputs), (inputs_before, outputs_before) = _widths(module), _widths(original)
        if inputs < inputs_before and outputs == outputs_before and _columns(module) <= MAX_COLUMNS:
            found.append(name)
    return found


def _capture(model: nn.Module, name: str, x: Inputs, *, output: bool) -> torch.Tensor | None:
    """The input (or output) tensor of ``model``'s layer ``name`` at its first call on ``x``;
    None if the forward pass never calls it with a positional tensor."""
    held = []

    def hook(module, args, result=None):
        held.append(result if output else (args[0] if args else None))
        raise _Reached

    module = model.get_submodule(name)
    handle = module.register_forward_hook(hook) if output else module.register_forward_pre_hook(hook)
    try:
        call(model, x)
    except _Reached:
        pass
    finally:
        handle.remove()
    return held[0] if held and isinstance(held[0], torch.Tensor) else None


def _rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The regression's rows: what each output position of ``module`` is a linear function of."""
    if isinstance(module, nn.Linear):
        rows = x.reshape(-1, x.shape[-1])
    else:
        two_d = isinstance(module, nn.Conv2d)
        pair = (lambda v: tuple(v)) if two_d else (lambda v: (1, v[0]))
        x = x if two_d else x.unsqueeze(2)
        patches = F.unfold(x, pair(module.kernel_size), dilation=pair(module.dilation),
                           padding=pair(module.padding) if two_d else (0, module.padding[0]), stride=pair(module.stride))
        rows = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    if module.bias is not None:
        rows = torch.cat([rows, torch.ones(len(rows), 1, dtype=rows.dtype, device=rows.device)], 1)
    return rows.double()


def _targets(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return y.reshape(-1, y.shape[-1]).double()
    return y.movedim(1, -1).reshape(-1, y.shape[1]).double()


def _kept_weights(module: nn.Module) -> torch.Tensor:
    """(columns, outputs): the layer's weights as the regression's unknowns are laid out."""
    weights = module.weight.reshape(len(module.weight), -1)
    if module.bias is not None:
        weights = torch.cat([weights, module.bias[:, None]], 1)
    return weights.T.double()


@torch.no_grad()
def _refit(model: nn.Module, teacher: nn.Module, name: str, batches: list[Inputs]) -> bool:
    module = model.get_submodule(name)
    columns = _columns(module)
    sampler = torch.Generator().manual_seed(0)
    gram = cross = None
    seen = 0
    for x in batches:
        pause_point()
        inputs, wanted = _capture(model, name, x, output=False), _capture(teacher, name, x, output=True)
        if inputs is None or wanted is None:
            return False
        rows, targets = _rows(module, inputs), _targets(module, wanted)
        if len(rows) > ROWS_PER_COLUMN * columns:
            pick = torch.randperm(len(rows), generator=sampler)[:ROWS_PER_COLUMN * columns].to(rows.device)
            rows, targets = rows[pick], targets[pick]
        gram = rows.T @ rows if gram is None else gram + rows.T @ rows
        cross = rows.T @ targets if cross is None else cross + rows.T @ targets
        seen += len(rows)
        if seen >= ROWS_PER_COLUMN * columns:
            break
    if seen < MIN_ROWS_PER_COLUMN * columns:
        return False
    damping = RIDGE * gram.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(columns, dtype=gram.dtype, device=gram.device)
    solution = torch.linalg.solve(gram + damping * eye, cross + damping * _kept_weights(module)).T
    weights = solution[:, :-1] if module.bias is not None else solution
    module.weight.copy_(weights.reshape(module.weight.shape).to(module.weight.dtype))
    if module.bias is not None:
        module.bias.copy_(solution[:, -1].to(module.bias.dtype))
    return True


def _called_once(model: nn.Module, names: list[str], x: Inputs) -> list[str]:
    """Those of ``names`` the forward pass calls exactly once, in the order it calls them (a layer
    called at every step of a loop, or shared, serves more than one input: not refitted)."""
    calls: dict[str, int] = {}
    handles = [model.get_submodule(name).register_forward_pre_hook(
        lambda module, args, name=name: calls.__setitem__(name, calls.get(name, 0) + 1)) for name in names]
    try:
        with torch.no_grad():
            call(model, x)
    finally:
        for handle in handles:
            handle.remove()
    return [name for name, count in calls.items() if count == 1]


def reconstruct_consumers(model: nn.Module, teacher: nn.Module, batches: list[Inputs]) -> list[str]:
    """Refit, in place and in forward order, every layer of ``model`` that pruning left with fewer
    inputs than ``teacher``'s layer of the same name (see the module's docstring for which);
    returns the names refitted. Both models must be in eval mode; ``batches`` are training inputs."""
    if model.training or teacher.training:
        raise ValueError("reconstruct_consumers needs both models in eval mode (call .eval() on them)")
    names = consumers(model, teacher)
    if not names or not batches:
        return []
    return [name for name in _called_once(model, names, batches[0]) if _refit(model, teacher, name, batches)]
