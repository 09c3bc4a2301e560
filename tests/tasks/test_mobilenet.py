"""cifar10-mobilenetv2: torchvision's MobileNetV2 as it is, but for a stride-1 stem; every layer
reachable by the techniques; its residual blocks droppable."""

import pytest
import torch

from autocompress.spaces.layers import discover

pytest.importorskip("torchvision", reason="pip install 'autocompress[zoo]'")


def test_stride_one_stem_keeps_a_2x2_map_and_residual_blocks_keep_their_shape():
    from autocompress.tasks.mobilenet import cifar_mobilenet_v2, residual_blocks

    torch.manual_seed(0)
    model = cifar_mobilenet_v2().eval()
    maps = []
    model.features.register_forward_hook(lambda module, args, out: maps.append(out.shape))
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert maps == [(1, 1280, 2, 2)]
    blocks = residual_blocks(model)
    assert len(blocks) == 10 and blocks[0] == "features.3"
    info = discover(model, torch.zeros(1, 3, 32, 32), blocks=blocks)
    assert info.stages == {"features": blocks} and info.head == "classifier.1"
    assert len(info.layers) == 53 and not [n for n in info.not_compressible if n.startswith("features.")]
