"""Fold BatchNorm into the preceding convolution, as the deployed model would have it.

The compressed model is fine-tuned and exported with BN folded, so the quantized weights are
the weights that run. Models that torch.fx cannot trace keep their BatchNorm layers.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).eval()
    >>> folded = fold_batchnorm(net)
    >>> any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    False
"""

from __future__ import annotations

import torch.fx
from torch import nn
from torch.fx.experimental.optimization import fuse


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every Conv->BN pair fused (module names are kept)."""
    model.eval()
    try:
        return fuse(model)
    except (torch.fx.proxy.TraceError, TypeError, NotImplementedError, RuntimeError):
        return model
