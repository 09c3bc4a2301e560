"""Metrics: the measured numbers of one candidate (or of the teacher).

Every number is measured on the exported ONNX artifact: size_bytes is the file's size,
latency_ms its median batch-1 latency in ONNX Runtime, accuracy the task metric of that file
on the validation split. ``fidelity`` says how the candidate was fine-tuned and evaluated.

Example:
    >>> m = Metrics(accuracy=0.98, size_bytes=1000, latency_ms=0.2, params=10, macs=100,
    ...             fidelity="steps=150,data=1.00,onnx-val")
    >>> Metrics.from_dict(m.to_dict()) == m
    True
    >>> served = Metrics.from_dict({**m.to_dict(), "latency_ms@server": 1.5})  # a search's extra profile
    >>> served.latencies, latency_key("server"), served.to_dict()["latency_ms@server"]
    ({'server': 1.5}, 'latency_ms@server', 1.5)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

LATENCY = "latency_ms"
PROFILE_LATENCY = LATENCY + "@"  # latency_ms@NAME: the latency under the search's extra profile NAME


def latency_key(profile: str | None = None) -> str:
    """The name of a latency: ``latency_ms`` under the search's own profile, ``latency_ms@NAME``
    under the extra profile NAME (a column of trials.csv, a key of run.json's teacher)."""
    return PROFILE_LATENCY + profile if profile else LATENCY


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
    latencies: dict = field(default_factory=dict)  # median ms under each extra profile of the search, by name

    def to_dict(self) -> dict:
        """Flat: each extra profile's latency under its own key (``latency_key``)."""
        data = asdict(self)
        return {**data, **{latency_key(name): ms for name, ms in data.pop("latencies").items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "Metrics":
        """From a dict (or a trials.csv row): known fields only, numbers cast to their types."""
        kinds = {"size_bytes": int, "params": int, "macs": int, "accuracy": float, "latency_ms": float,
                 "latency_spread_ms": float, "fidelity": str, "notes": str, "sha256": str, "steps": int}
        optional = {"latency_spread_ms", "notes", "sha256", "steps"}  # absent in older runs: their defaults
        latencies = {key[len(PROFILE_LATENCY):]: float(value) for key, value in data.items()
                     if isinstance(key, str) and key.startswith(PROFILE_LATENCY) and not _missing(value)}
        return cls(**{k: kinds[k](data[k]) for k in kinds if k in data and not (k in optional and _missing(data[k]))},
                   latencies=latencies)


def _missing(value) -> bool:
    """None, an empty string or NaN (a trials.csv cell left empty)."""
    return value is None or value == "" or (isinstance(value, float) and value != value)
