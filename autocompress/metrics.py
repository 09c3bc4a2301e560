"""Metrics: the measured numbers of one candidate (or of the teacher).

Every number is measured on the exported ONNX artifact: size_bytes is the file's size,
latency_ms its median batch-1 latency in ONNX Runtime, accuracy the task metric of that file
on the validation split. ``fidelity`` says how the candidate was fine-tuned and evaluated.

Example:
    >>> m = Metrics(accuracy=0.98, size_bytes=1000, latency_ms=0.2, params=10, macs=100,
    ...             fidelity="steps=150,data=1.00,onnx-val")
    >>> Metrics.from_dict(m.to_dict()) == m
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, kw_only=True)
class Metrics:
    accuracy: float
    size_bytes: int
    latency_ms: float
    params: int
    macs: int
    fidelity: str
    latency_spread_ms: float = 0.0  # interquartile range of the latency runs
    notes: str = ""
    sha256: str = ""  # of the ONNX file measured: an export ships exactly that file or refuses
    steps: int = 0  # fine-tuning steps the candidate received (0: over a hard budget, or post-training)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Metrics":
        """From a dict (or a trials.csv row): known fields only, numbers cast to their types."""
        kinds = {"size_bytes": int, "params": int, "macs": int, "accuracy": float, "latency_ms": float,
                 "latency_spread_ms": float, "fidelity": str, "notes": str, "sha256": str, "steps": int}
        optional = {"latency_spread_ms", "notes", "sha256", "steps"}  # absent in older runs: their defaults
        return cls(**{k: kinds[k](data[k]) for k in cls.__dataclass_fields__
                      if k in data and not (k in optional and _missing(data[k]))})


def _missing(value) -> bool:
    """None, an empty string or NaN (a trials.csv cell left empty)."""
    return value is None or value == "" or (isinstance(value, float) and value != value)
