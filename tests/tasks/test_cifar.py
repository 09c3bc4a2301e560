"""cifar10-resnet20/56: our CIFAR ResNet loads the published checkpoints exactly; data and
checkpoints are checked and named when missing."""

import pytest
import torch

from autocompress.spaces.layers import discover
from autocompress.task import UsageError
from autocompress.tasks.cifar import CHECKPOINTS, CifarResNet, checkpoint_path, crop_and_flip, load_checkpoint
from tests.conftest import ROOT, run_cli

SHARED = ROOT.parent / "shared"
needs_models = pytest.mark.skipif(not (SHARED / "models").is_dir(), reason="../shared/models is not here")


@needs_models
@pytest.mark.parametrize("depth, params", [(20, 0.27e6), (56, 0.85e6)])
def test_published_checkpoints_load_into_our_model_code(depth, params):
    model = CifarResNet(depth)
    best = load_checkpoint(model, checkpoint_path(SHARED / "data", depth))
    assert abs(sum(p.numel() for p in model.parameters()) - params) / params < 0.02
    assert best > 90  # the checkpoint's own best_prec1 on the original CIFAR-10 test set
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.slow
def test_missing_checkpoint_and_data_are_one_line(tmp_path):
    with pytest.raises(UsageError, match="checkpoint resnet20-12fca82f.th not found"):
        checkpoint_path(tmp_path, 20)
    proc = run_cli("inspect", "--task", "cifar10-resnet20", "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "cifar10-jpeg-images.tar.gz" in proc.stderr


def test_student_drops_blocks_that_keep_their_shape_and_pruning_avoids_padded_shortcuts():
    blocks = tuple(f"layer{s}.{i}" for s in (1, 2, 3) for i in range(3))
    info = discover(CifarResNet(20).eval(), torch.zeros(1, 3, 32, 32), blocks=blocks)
    assert info.stages == {"layer1": ("layer1.0", "layer1.1", "layer1.2"), "layer2": ("layer2.1", "layer2.2"),
                           "layer3": ("layer3.1", "layer3.2")}
    assert {"layer2.0", "layer3.0"} <= set(info.not_compressible)  # they change the shape
    # the residual stream is coupled across stages through zero-padding shortcuts: never pruned;
    # every block's inner conv is
    assert "other widths" in info.not_compressible["conv1 (outputs)"]
    assert [g.name for g in info.groups] == [f"layer{s}.{i}.conv1" for s in (1, 2, 3) for i in range(3)]


def test_crop_and_flip_takes_windows_of_the_padded_images_repeatably():
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = crop_and_flip(x, torch.Generator().manual_seed(5))
    assert out.shape == x.shape
    assert torch.equal(out, crop_and_flip(x, torch.Generator().manual_seed(5)))  # seeded: the same batch
    assert not torch.equal(out, crop_and_flip(x, torch.Generator().manual_seed(6)))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    kinds = set()
    for i in range(len(x)):  # every image is one 8x8 window of its padded self, maybe mirrored
        windows = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8].flip(2) if flip
                                  else padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert windows, i
        kinds.add((windows[0][:2] != (4, 4), windows[0][2]))
    assert {(True, True), (True, False)} <= kinds  # shifted ones, flipped and not
