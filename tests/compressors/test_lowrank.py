import pytest
import torch
from torch import nn

from autocompress.compressors.lowrank import factorize, factorize_layer, tucker_layer


def test_linear_factors_are_the_best_rank_r_approximation_from_svd():
    torch.manual_seed(0)
    layer = nn.Linear(20, 12)
    u, s, vh = torch.linalg.svd(layer.weight.detach(), full_matrices=False)
    expected = u[:, :5] @ torch.diag(s[:5]) @ vh[:5]
    first, second = factorize_layer(layer, 5)
    assert torch.allclose(second.weight @ first.weight, expected, atol=1e-5)
    x = torch.randn(7, 20)
    assert torch.allclose(second(first(x)), x @ expected.T + layer.bias, atol=1e-5)


def test_conv_factorization_matches_conv_with_the_truncated_weight():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, 3, stride=2, padding=1)
    w = conv.weight.detach().reshape(10, -1)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    truncated = (u[:, :4] @ torch.diag(s[:4]) @ vh[:4]).reshape(conv.weight.shape)
    x = torch.randn(2, 6, 9, 9)
    expected = nn.functional.conv2d(x, truncated, conv.bias, stride=2, padding=1)
    assert torch.allclose(factorize_layer(conv, 4)(x), expected, atol=1e-5)


def test_full_rank_reconstructs_exactly():
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 5, 5)
    assert torch.allclose(factorize_layer(conv, 4)(x), conv(x), atol=1e-5)


def test_layers_that_would_not_shrink_are_skipped_with_a_reason():
    net = nn.Sequential(nn.Linear(2, 2))  # rank 1 factors: 1 * (2 + 2) weights, no fewer than 2 * 2
    skipped = factorize(net, {"0": 0.5})
    assert isinstance(net[0], nn.Linear) and "would not save parameters" in skipped["0"]


def _tucker_weight(first, core, last):
    """The convolution weight a Tucker-2 replacement computes: core x input factor x output factor."""
    return torch.einsum("or,rs...,si->oi...", last.weight.flatten(1), core.weight, first.weight.flatten(1))


@pytest.mark.parametrize("conv", [nn.Conv2d(6, 10, 3, stride=2, padding=2, dilation=2), nn.Conv1d(8, 12, 5, padding=1)],
                         ids=["conv2d", "conv1d"])
def test_tucker2_replacement_is_the_conv_with_the_weight_its_factors_make(conv):
    torch.manual_seed(0)
    replacement = tucker_layer(conv, 0.5)
    first, core, last = replacement
    assert (first.kernel_size, last.kernel_size) == ((1,) * (conv.weight.dim() - 2),) * 2
    assert core.kernel_size == conv.kernel_size and core.stride == conv.stride and core.padding == conv.padding
    x = torch.randn(2, conv.in_channels, *[11] * (conv.weight.dim() - 2))
    functional = nn.functional.conv2d if isinstance(conv, nn.Conv2d) else nn.functional.conv1d
    expected = functional(x, _tucker_weight(first, core, last), conv.bias, stride=conv.stride, padding=conv.padding,
                          dilation=conv.dilation)
    assert torch.allclose(replacement(x), expected, atol=1e-5)


def test_tucker2_recovers_a_weight_of_that_multilinear_rank_exactly():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 3, padding=1)
    with torch.no_grad():  # a weight whose input channels span 8 directions and output channels 12
        conv.weight.copy_(torch.einsum("or,rskl,si->oikl", torch.randn(24, 12), torch.randn(12, 8, 3, 3),
                                       torch.randn(8, 16)))
    x = torch.randn(2, 16, 7, 7)
    assert torch.allclose(tucker_layer(conv, 0.5)(x), conv(x), atol=1e-3)
    assert not torch.allclose(tucker_layer(conv, 0.25)(x), conv(x), atol=1e-1)  # half those: not exact


def test_tucker2_is_for_convolutions_and_only_where_it_saves_weights():
    net = nn.Sequential(nn.Conv1d(1, 1, 2), nn.Linear(64, 64), nn.Conv2d(16, 16, 3))  # not run: factorized only
    skipped = factorize(net, {"0": 0.5, "1": 0.5, "2": 0.5}, tucker={"0", "1", "2"})
    assert "would not save parameters" in skipped["0"] and isinstance(net[0], nn.Conv1d)
    assert "convolutions only" in skipped["1"] and isinstance(net[1], nn.Linear)
    assert [tuple(m.weight.shape) for m in net[2]] == [(8, 16, 1, 1), (8, 8, 3, 3), (16, 8, 1, 1)]
