"""Hidden units of LSTM, GRU and RNN layers, removed the way Torch-Pruning removes channels.

Torch-Pruning's own LSTM function handles one layer and one direction only and indexes the
gates wrongly, and it knows no GRU or RNN: ``RecurrentUnits`` takes their place in the
dependency graph (``spaces.dependency.build_graph``). A layer's output channels are its hidden
units (both directions' for a bidirectional one: the same unit is removed from each, which
``spaces.layers.channel_stripes`` arranges); removing unit ``u`` removes row ``u`` of every gate
of every weight and bias, column ``u`` of the hidden-to-hidden weights and, from the second
stacked layer on, the inputs that unit fed. Its input channels are the first layer's inputs.

Example:
    >>> import torch
    >>> from torch import nn
    >>> lstm = nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    >>> RecurrentUnits().prune_out_channels(lstm, [1, 7])      # unit 1, in both directions
    LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True)
    >>> lstm.weight_ih_l1.shape, lstm(torch.randn(2, 3, 4))[0].shape
    (torch.Size([20, 10]), torch.Size([2, 3, 10]))
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}


def _kept(size: int, drop: set[int]) -> torch.Tensor:
    return torch.tensor([i for i in range(size) if i not in drop], dtype=torch.long)


def _slice(layer: nn.Module, name: str, dim: int, keep: torch.Tensor) -> None:
    old = getattr(layer, name)
    setattr(layer, name, nn.Parameter(old.data.index_select(dim, keep).clone(), requires_grad=old.requires_grad))


def _directions(layer: nn.Module) -> list[str]:
    return ["", "_reverse"] if layer.bidirectional else [""]


class RecurrentUnits(tp.pruner.function.BasePruningFunc):
    """Torch-Pruning's pruning function for nn.LSTM, nn.GRU and nn.RNN (see the module docstring)."""

    def prune_out_channels(self, layer: nn.Module, idxs: list) -> nn.Module:
        if getattr(layer, "proj_size", 0):
            raise ValueError("an LSTM with proj_size: its hidden units are not pruned")
        hidden, gates = layer.hidden_size, next(g for t, g in GATES.items() if isinstance(layer, t))
        units = {int(i) % hidden for i in idxs}
        keep = _kept(hidden, units)
        rows = torch.cat([keep + g * hidden for g in range(gates)])
        inputs = torch.cat([keep + d * hidden for d in range(len(_directions(layer)))])
        for index in range(layer.num_layers):
            for suffix in _directions(layer):
                _slice(layer, f"weight_ih_l{index}{suffix}", 0, rows)
                if index > 0:
                    _slice(layer, f"weight_ih_l{index}{suffix}", 1, inputs)
                _slice(layer, f"weight_hh_l{index}{suffix}", 0, rows)
                _slice(layer, f"weight_hh_l{index}{suffix}", 1, keep)
                if layer.bias:
                    _slice(layer, f"bias_ih_l{index}{suffix}", 0, rows)
                    _slice(layer, f"bias_hh_l{index}{suffix}", 0, rows)
        layer.hidden_size = len(keep)
        layer._init_flat_weights()
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: list) -> nn.Module:
        keep = _kept(layer.input_size, {int(i) for i in idxs})
        for suffix in _directions(layer):
            _slice(layer, f"weight_ih_l0{suffix}", 1, keep)
        layer.input_size = len(keep)
        layer._init_flat_weights()
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.hidden_size * len(_directions(layer))

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.input_size


RECURRENT_PRUNERS = {kind: RecurrentUnits() for kind in GATES}
