"""sst2-transformer: SST-2 sentiment with a small transformer encoder trained by the project.

Data: GLUE SST-2 (``--data-dir`` holding ``sst2/``), checked by SHA-256. Splits: train = the
67,349 training phrases, validation = the official dev set (872 sentences; SST-2 has one, so
nothing is carved), test = the labelled test split (1,821 sentences), never seen by a search.

Text is lower-cased and split on spaces (the files are already tokenized); the vocabulary is
the 5,000 most frequent training words with id 0 for padding and 1 for unknown words, and
every input is ``MAX_TOKENS`` ids (padded or cut). The teacher: token + position embeddings,
4 pre-norm encoder layers (4-head ``SelfAttention``, a 256-neuron GELU feed-forward), a final
LayerNorm, the mean over real tokens, and a 2-class Linear head. Its heads are pruned whole,
its feed-forward neurons and model width by Torch-Pruning, its Linears quantized and
factorized, and its encoder layers dropped by the student.

Example:
    >>> tokens = encode(["a fine film ."], {"a": 2, "film": 3, ".": 4})
    >>> tokens.shape, tokens[0, :5].tolist()
    (torch.Size([1, 48]), [2, 1, 3, 4, 0])
"""

from __future__ import annotations

import collections
import csv
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from autocompress.modules import SelfAttention
from autocompress.task import Task, UsageError
from autocompress.tasks.cache import cached_weights
from autocompress.tasks.data_files import require_files
from autocompress.tasks.training import train_classifier

FILES = {
    "train.tsv": "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
    "dev.tsv": "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
    "test_labeled_sst_binary.tsv": "c0efc56ade6e0598d0f8daca1976e232aee0bcabca8e599341cad290d9d10b3c",
}
PAD, UNKNOWN = 0, 1
VOCAB, MAX_TOKENS = 5000, 48
RECIPE = {
    "data": "GLUE SST-2 tsv (sha256-checked)", "val": "dev.tsv", "test": "test_labeled_sst_binary.tsv",
    "vocab": VOCAB, "max_tokens": MAX_TOKENS, "model": "TextEncoder(dim 64, 4 heads, ffn 256, 4 layers)",
    "epochs": 3, "batch": 128, "lr": 1e-3, "seed": 0,
}
DISTILL_LR = 5e-4


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer: x + attention(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, dim: int, num_heads: int, ffn: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), SelfAttention(dim, num_heads)
        self.norm2, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, ffn), nn.Linear(ffn, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class TextEncoder(nn.Module):
    """Token ids (batch, tokens) -> class logits; id 0 is padding, left out of the mean."""

    def __init__(self, *, vocab: int = VOCAB, dim: int = 64, num_heads: int = 4, ffn: int = 256, depth: int = 4,
                 max_tokens: int = MAX_TOKENS, num_classes: int = 2):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, dim), nn.Embedding(max_tokens, dim)
        self.layers = nn.Sequential(*(EncoderLayer(dim, num_heads, ffn) for _ in range(depth)))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))
        x = self.norm(self.layers(x))
        mask = (ids != PAD).unsqueeze(-1).to(x.dtype)
        return self.head((x * mask).sum(1) / mask.sum(1).clamp_min(1.0))


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    """(sentences, labels) of a ``sentence<TAB>label`` file with a header line."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0][:2] != ["sentence", "label"]:
        raise UsageError(f"{path}: expected a 'sentence<TAB>label' header; give the GLUE SST-2 files")
    return [r[0] for r in rows[1:]], [int(r[1]) for r in rows[1:]]


def build_vocab(sentences: list[str], size: int = VOCAB) -> dict[str, int]:
    """The ``size - 2`` most frequent words (ties alphabetical) -> ids from 2."""
    counts = collections.Counter(word for s in sentences for word in s.lower().split())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: size - 2]
    return {word: i + 2 for i, (word, _) in enumerate(ranked)}


def encode(sentences: list[str], vocab: dict[str, int], max_tokens: int = MAX_TOKENS) -> torch.Tensor:
    ids = torch.full((len(sentences), max_tokens), PAD, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        words = sentence.lower().split()[:max_tokens]
        ids[row, : len(words)] = torch.tensor([vocab.get(w, UNKNOWN) for w in words], dtype=torch.long)
    return ids


def sst2_splits(data_dir) -> dict[str, TensorDataset]:
    paths = require_files(data_dir, "sst2", FILES, task="sst2-transformer")
    train = read_tsv(paths["train.tsv"])
    vocab = build_vocab(train[0])
    as_dataset = lambda s, y: TensorDataset(encode(s, vocab), torch.tensor(y))  # noqa: E731
    return {"train": as_dataset(*train), "val": as_dataset(*read_tsv(paths["dev.tsv"])),
            "test": as_dataset(*read_tsv(paths["test_labeled_sst_binary.tsv"]))}


def _seeded_model() -> TextEncoder:
    torch.manual_seed(RECIPE["seed"])
    return TextEncoder()


def make_sst2_task(data_dir=None) -> Task:
    """SST-2 sentiment (--data-dir), a 4-layer transformer encoder teacher trained by the project."""
    splits = sst2_splits(data_dir)
    teacher = cached_weights(
        _seeded_model,
        train=lambda m: train_classifier(m, splits["train"], epochs=RECIPE["epochs"], batch=RECIPE["batch"],
                                         lr=RECIPE["lr"], seed=RECIPE["seed"]),
        recipe=RECIPE, name="sst2-transformer",
    )
    blocks = tuple(f"layers.{i}" for i in range(len(teacher.layers)))
    return Task(name="sst2-transformer", teacher=teacher, **splits, example_inputs=splits["val"].tensors[0][:1],
                blocks=blocks, distill_lr=DISTILL_LR, recipe=RECIPE,
                description="SST-2 sentiment (--data-dir), 4-layer transformer encoder teacher (64 wide, 4 heads)")
