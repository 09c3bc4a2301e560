"""BN folding, including models torch.fx cannot trace (control flow on tensor values)."""

import torch
from torch import nn

from autocompress.compressors.fold import fold_batchnorm


class Untraceable(nn.Module):
    def __init__(self, reuse_conv_output=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.bn = nn.BatchNorm2d(6)
        self.reuse = reuse_conv_output

    def forward(self, x):
        if x.sum() > -1e9:  # torch.fx cannot trace a branch on a tensor's value
            y = self.conv(x)
            z = self.bn(y)
            return z + y if self.reuse else z
        return x


def _trained_bn(model):
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
        model.bn.weight.uniform_(0.5, 1.5)
    return model.eval()


def test_untraceable_model_is_folded_by_hooks_with_the_same_outputs():
    torch.manual_seed(0)
    model, x = _trained_bn(Untraceable()), torch.randn(2, 3, 8, 8)
    folded = fold_batchnorm(model, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


def test_conv_output_used_elsewhere_keeps_its_batchnorm():
    torch.manual_seed(0)
    model, x = _trained_bn(Untraceable(reuse_conv_output=True)), torch.randn(2, 3, 8, 8)
    folded = fold_batchnorm(model, x)
    assert any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(folded(x), model(x))
