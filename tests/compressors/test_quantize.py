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
    qmax = weight_qmax(bits, int8_kernels=True)  # on int8 kernels an 8-bit weight keeps 7 bits of range
    assert qmax == {2: 1, 4: 7, 8: 63}[bits]
    for name, spec in specs.items():
        q = spec.weight.float()
        assert q.abs().max() <= qmax and torch.equal(q, q.round())
        assert q.abs().amax(dim=tuple(range(1, q.dim()))).eq(qmax).all()  # range fully used
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


def test_a_relu_output_is_quantized_once_by_the_layer_that_produces_it():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    prepare_qat(net, {"0": 8, "2": 8})
    calibrate(net, [torch.randn(4, 3, 10, 10)])
    assert net[2].input_quant is net[0].output_quant and not net[2].quantize_input
    assert net[0].output_quant.qparams()[1] == 0  # zero point 0: the ReLU after it changes nothing
    with torch.no_grad():
        x = torch.randn(2, 3, 10, 10)
        quantized = net[0](x)
        assert torch.equal(torch.relu(quantized), quantized)


def test_max_pooling_between_layers_keeps_one_set_of_qparams():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    prepare_qat(net, {"0": 8, "4": 4})
    calibrate(net, [torch.randn(4, 1, 10, 10)])
    assert net[4].input_quant is net[0].output_quant and net[4].quantize_input  # again, at the same qparams


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), \
            nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = torch.relu(x + self.conv2(torch.relu(self.conv1(x))))
        return self.conv3(y) + y


def test_a_residual_sum_in_an_fx_graph_is_quantized_once_for_all_its_readers():
    model = torch.fx.symbolic_trace(_Residual())
    prepare_qat(model, {"conv1": 8, "conv2": 8, "conv3": 8})
    calibrate(model, [torch.randn(4, 4, 6, 6)])
    inserted = [n for n in model.graph.nodes if n.op == "call_module" and n.target.startswith("activation_quant")]
    assert len(inserted) == 1  # the sum (after its ReLU), read by conv3 and by the output's sum
    assert model.conv3.input_quant is getattr(model, inserted[0].target) and not model.conv3.quantize_input
    assert model.conv1.quantize_input  # the model's input: quantized by the layer that reads it
    with torch.no_grad():  # every reader of the sum sees the one quantized tensor
        x = torch.randn(2, 4, 6, 6)
        y = torch.relu(x + model.conv2(torch.relu(model.conv1(x))))
        assert torch.allclose(model(x), model.conv3(getattr(model, inserted[0].target)(y)) +
                              getattr(model, inserted[0].target)(y))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_an_embedding_table_is_quantized_per_row_and_its_lookups_are_what_the_frozen_table_gives(bits):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(50, 6), nn.Flatten(), nn.Linear(18, 2))
    ids = torch.randint(0, 50, (8, 3))
    prepare_qat(net, {"0": bits})
    calibrate(net, [ids])
    fake = net(ids)
    plain, specs = freeze(net)
    spec = specs["0.layer.weight"]
    q = spec.weight.float()
    assert spec.input_qparams is None and spec.output_qparams is None  # token ids: nothing else is quantized
    assert q.abs().max() <= weight_qmax(bits) and q.abs().amax(dim=1).eq(weight_qmax(bits)).all()  # one scale a row
    assert torch.allclose(plain[0].layer.weight, q * spec.weight_scale[:, None])
    assert torch.allclose(plain(ids), fake, atol=1e-6)


def test_an_embedding_learns_through_its_rounding():
    net = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 2))
    prepare_qat(net, {"0": 4})
    net.train()
    net(torch.tensor([[1, 2]])).sum().backward()
    grad = net[0].layer.weight.grad
    assert grad[1].abs().sum() > 0 and grad[2].abs().sum() > 0 and grad[3].abs().sum() == 0  # rows looked up only
