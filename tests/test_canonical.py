"""Equivalent rewrites of a teacher (``autocompress.canonical``): the same outputs, or undone."""

import pytest
import torch
from torch import nn

from autocompress.canonical import explicit_layers


class _Aliased(nn.Module):
    """Reads the input an in-place ReLU overwrote: out of place, its output would change."""

    def __init__(self):
        super().__init__()
        self.fc, self.relu = nn.Linear(4, 4), nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.fc(x)
        return h + self.relu(h)


def test_in_place_activations_are_made_out_of_place_unless_the_model_reads_what_they_overwrote():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(4, 4), nn.ReLU6(inplace=True), nn.Linear(4, 2))
    assert explicit_layers(plain, torch.randn(1, 4)) == ["1"] and plain[1].inplace is False
    aliased = _Aliased()
    assert explicit_layers(aliased, torch.randn(3, 4)) == [] and aliased.relu.inplace is True


@pytest.mark.parametrize("version", ["ShiftedWindowAttention", "ShiftedWindowAttentionV2"])
@pytest.mark.parametrize("size, shift", [((6, 6), [2, 2]), ((8, 8), [0, 0]), ((5, 7), [2, 2]), ((4, 4), [2, 2])])
def test_swin_window_attention_is_rewritten_with_its_projections_as_linear_layers(version, size, shift):
    """Padded, shifted (with the region mask), unshifted, and a window as large as the map (no shift)."""
    swin = pytest.importorskip("torchvision.models.swin_transformer")
    torch.manual_seed(0)
    block = nn.Sequential(getattr(swin, version)(8, [4, 4], shift, num_heads=2)).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    x = torch.randn(2, *size, 8)
    with torch.no_grad():
        expected = block(x)
    assert explicit_layers(block, x[:1])[0] == "0"  # (V2: its position MLP's in-place ReLU too)
    attention = block[0]
    assert type(attention).__name__ == "WindowAttention" and not hasattr(attention.position, "qkv")
    assert [n for n, m in attention.named_children() if isinstance(m, nn.Linear)] == ["q", "v", "k", "proj"]
    with torch.no_grad():
        assert torch.allclose(block(x), expected, atol=1e-5)


@pytest.mark.parametrize("version", ["ShiftedWindowAttention", "ShiftedWindowAttentionV2"])
def test_swin_heads_are_pruned_whole_with_their_position_bias(version):
    swin = pytest.importorskip("torchvision.models.swin_transformer")
    from autocompress.compressors.heads import prune_heads

    torch.manual_seed(0)
    block = nn.Sequential(getattr(swin, version)(16, [4, 4], [2, 2], num_heads=4)).eval()
    x = torch.randn(1, 8, 8, 16)
    explicit_layers(block, x)
    attention = block[0]
    bias_before = attention.position.get_relative_position_bias()
    assert prune_heads(block, x, keep={"0": 0.5}) == {"0": (4, 2)}
    assert attention.q.out_features == 8 and attention.proj.in_features == 8
    bias_after = attention.position.get_relative_position_bias()
    assert bias_after.shape[1] == 2
    assert any(torch.equal(bias_after[0, 0], bias_before[0, h]) for h in range(4))  # a kept head's own bias
    with torch.no_grad():
        assert block(x).shape == (1, 8, 8, 16)
