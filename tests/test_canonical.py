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
    # a kept head's own bias (V2 computes it by an MLP, whose smaller matmul may round differently)
    same = torch.equal if version == "ShiftedWindowAttention" else lambda a, b: torch.allclose(a, b, atol=1e-6)
    assert any(same(bias_after[0, 0], bias_before[0, h]) for h in range(4))
    with torch.no_grad():
        assert block(x).shape == (1, 8, 8, 16)


class _VggLike(nn.Module):
    """VGG/AlexNet at CIFAR size: a 2x2 map (1-D: length 2) spread by adaptive pooling to 3x3 (3)."""

    def __init__(self, dims: int):
        super().__init__()
        conv, pool = (nn.Conv2d, nn.AdaptiveAvgPool2d) if dims == 2 else (nn.Conv1d, nn.AdaptiveAvgPool1d)
        self.features = nn.Sequential(conv(3, 8, 3, padding=1), nn.ReLU(), conv(8, 8, 3, stride=4, padding=1), nn.ReLU())
        self.avgpool = pool(3 if dims == 1 else (3, 3))
        self.classifier = nn.Linear(8 * 3 ** dims, 4)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@pytest.mark.parametrize("dims", [1, 2])
def test_adaptive_pooling_the_exporter_refuses_becomes_matrices_and_every_technique_exports(dims, tmp_path):
    import numpy as np
    import onnxruntime as ort

    from autocompress import DistillConfig, Plan, Task, evaluate, model_io

    torch.manual_seed(0)
    model = _VggLike(dims).eval()
    x = torch.randn(48, 3, *([8] * dims))  # a map of 2 (x 2) before the pooling to 3 (x 3)
    with pytest.raises(Exception, match="not factor of input size"):  # what a user meets without the rewrite
        torch.onnx.export(_VggLike(dims).eval(), (x[:1],), str(tmp_path / "raw.onnx"), dynamo=False)
    labels = model(x).argmax(1)
    data = model_io.Examples(x, labels)
    task = Task(name="vgg-like", teacher=model, train=data, val=data, test=data, example_inputs=x[:1])
    assert type(task.teacher.avgpool).__name__ == "MatrixAvgPool"
    evaluate(task, Plan(), out_dir=tmp_path / "off", config=DistillConfig(steps=0))
    session = ort.InferenceSession(str(tmp_path / "off" / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert np.abs(session.run(None, {session.get_inputs()[0].name: x[:8].numpy()})[0]
                      - task.teacher(x[:8]).numpy()).max() <= 1e-5
    plan = Plan.from_dict({"layers": {"features.0": {"bits": 8, "prune": 0.5}, "features.2": {"bits": 8},
                                      "classifier": {"bits": 8}}})
    metrics = evaluate(task, plan, out_dir=tmp_path / "compressed", config=DistillConfig(steps=2, batch_size=16))
    import onnx

    graph = onnx.load(str(tmp_path / "compressed" / "model.onnx")).graph
    int8_weights = [w for w in graph.initializer if w.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 3 and "pruned features.0 8->4" in metrics.notes, metrics.notes
    assert 0 <= metrics.accuracy <= 1
