"""Attention heads are pruned whole, the right ones, and the pruned transformer exports to an
ONNX file that ONNX Runtime runs with the same outputs."""

import numpy as np
import onnx
import torch
from torch.utils.data import TensorDataset

from autocompress import LayerPlan, Plan
from autocompress.compressors import DistillConfig, compress
from autocompress.compressors.heads import prune_heads
from autocompress.evaluators import export_artifact
from autocompress.evaluators.measure import onnx_session
from autocompress.modules import SelfAttention
from autocompress.spaces.layers import discover
from autocompress.task import Task
from autocompress.tasks.sst2 import TextEncoder

BLOCKS = tuple(f"layers.{i}" for i in range(4))


def test_the_weakest_head_goes_and_the_others_compute_what_they_did():
    torch.manual_seed(0)
    attn = SelfAttention(dim=16, num_heads=4).eval()
    with torch.no_grad():  # head 2 barely contributes
        for layer in (attn.q, attn.k, attn.v):
            layer.weight[8:12] *= 0.01
        attn.out.weight[:, 8:12] *= 0.01
        expected_without_head_2 = attn.out.weight.clone()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        attn.out.weight[:, 8:12] = 0  # what the model computes without head 2's output
        expected = attn(x)
        attn.out.weight.copy_(expected_without_head_2)
    model = torch.nn.Sequential(attn)
    assert prune_heads(model, x, keep={"0": 0.75}) == {"0": (4, 3)}
    assert attn.num_heads == 3 and attn.q.out_features == 12 and attn.out.in_features == 12
    with torch.no_grad():
        assert torch.allclose(attn(x), expected, atol=1e-5)
    assert prune_heads(model, x, keep={"0": 0.1, "gone": 0.5}) == {"0": (3, 1)}  # at least one head stays


def test_discovery_offers_heads_and_never_splits_q_k_v_channels():
    info = discover(TextEncoder().eval(), torch.randint(0, 5000, (1, 48)), blocks=BLOCKS)
    heads = [g for g in info.groups if g.unit == "heads"]
    assert [(g.name, g.channels) for g in heads] == [(f"layers.{i}.attn.q", 4) for i in range(4)]
    channel_members = {m for g in info.groups if g.unit == "channels" for m in g.members}
    assert not {m for m in channel_members if m.endswith((".q", ".k", ".v"))}
    assert {f"layers.{i}.fc1" for i in range(4)} <= {g.name for g in info.groups}  # FFN neurons
    residual = next(g for g in info.groups if "layers.3.fc2" in g.members)  # the model width
    assert residual.channels == 64 and "layers.0.attn.out" in residual.members
    assert info.stages == {"layers": BLOCKS} and info.head == "head"
    embeddings = [(layer.name, layer.shape, layer.rank_ratios, layer.group) for layer in info.layers
                  if layer.kind == "embedding"]
    assert embeddings == [("tokens", (5000, 64), (), residual.name)]  # a bit-width, no rank; pruned with the width
    assert residual.name == "layers.0.attn.out" and residual.members[-2:] == ("tokens", "positions")
    assert "tokens" not in info.not_compressible and "torch.arange" in info.not_compressible["positions"]


def test_a_joint_transformer_plan_exports_and_onnx_runtime_agrees(tmp_path):
    torch.manual_seed(0)
    ids = torch.randint(2, 5000, (128, 48))
    ids[:, 20:] = 0  # padding
    data = TensorDataset(ids, torch.randint(0, 2, (128,)))
    task = Task(name="text", teacher=TextEncoder().eval(), train=data, val=data, test=data,
                example_inputs=ids[:1], blocks=BLOCKS)
    plan = Plan(layers={"layers.0.attn.q": LayerPlan(prune=0.5, bits=8), "layers.0.attn.out": LayerPlan(prune=0.25),
                        "layers.1.fc1": LayerPlan(prune=0.5, rank=0.5, bits=8), "layers.1.attn.v": LayerPlan(bits=4),
                        "layers.1.attn.k": LayerPlan(rank=0.5), "head": LayerPlan(bits=8), "tokens": LayerPlan(bits=4)},
                depth={"layers": 2})
    result = compress(task, plan, config=DistillConfig(steps=3))
    assert "dropped blocks layers.2, layers.3" in result.notes
    assert "pruned heads of layers.0.attn 4->2" in result.notes and "pruned layers.0.attn.out 64->48" in result.notes
    assert [m.num_heads for m in result.model.modules() if isinstance(m, SelfAttention)] == [2, 4]
    path = str(tmp_path / "text.onnx")
    with torch.no_grad():  # the fake-quantized model computes what the exported graph computes
        expected = result.model(ids[:8]).numpy()
    export_artifact(result, task.example_inputs, path)
    graph = onnx.load(path).graph
    stored = {t.name: t for t in graph.initializer}
    assert "tokens.weight" not in stored and "positions.weight" in stored  # the pruned table, at 4 bits a weight
    table = stored["tokens.weight_quantized"]
    assert list(table.dims) == [5000, 48] and len(table.raw_data) == 5000 * 48 // 2
    session = onnx_session(path)
    got = np.concatenate([session.run(None, {session.get_inputs()[0].name: ids[i:i + 1].numpy()})[0]
                          for i in range(8)])
    assert np.allclose(got, expected, atol=5e-3)  # within two steps of the uint8 output
