import pytest
import torch
from torch import nn

from autocompress.compressors.quantize import calibrate, freeze, prepare_qat, weight_qmax


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_frozen_weights_lie_on_the_symmetric_per_channel_grid(bits):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 4))
    prepare_qat(net, {"0": bits, "3": bits})
    calibrate(net, [torch.randn(4, 3, 6, 6)])
    plain, specs = freeze(net)
    for name, spec in specs.items():
        q = spec.weight.float()
        assert q.abs().max() <= weight_qmax(bits) and torch.equal(q, q.round())
        assert q.abs().amax(dim=tuple(range(1, q.dim()))).eq(weight_qmax(bits)).all()  # range fully used
        weight = dict(plain.named_parameters())[name]
        assert torch.allclose(weight, q * spec.weight_scale.reshape(-1, *[1] * (q.dim() - 1)))
        scale, zero_point = spec.input_qparams
        assert scale > 0 and 0 <= zero_point <= 255


def test_fake_quant_training_passes_gradients_through_rounding():
    net = nn.Sequential(nn.Linear(4, 4))
    prepare_qat(net, {"0": 8})
    calibrate(net, [torch.randn(8, 4)])
    net.train()
    net(torch.randn(8, 4)).sum().backward()
    assert net[0].layer.weight.grad is not None and net[0].layer.weight.grad.abs().sum() > 0
