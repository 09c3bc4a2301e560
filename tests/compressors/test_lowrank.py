import torch
from torch import nn

from autocompress.compressors.lowrank import factorize, factorize_layer


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
