"""Budgets: the limits a shipped model must meet (size, latency, minimum accuracy).

During a search a budget becomes Optuna constraints (value <= 0 is feasible), so samplers
move toward feasible plans; afterwards any budget can be asked of the stored results.

Example:
    >>> budget = Budget.parse(max_size="50KB", max_latency="2ms", min_accuracy="0.97")
    >>> budget.max_size_bytes, budget.max_latency_ms, budget.min_accuracy
    (50000, 2.0, 0.97)
    >>> budget.violations({"accuracy": 0.99, "size_bytes": 60000, "latency_ms": 1.0})
    {'size_bytes': 10000.0}
    >>> parse_size("1.5 MiB"), parse_latency("250us")
    (1572864, 0.25)
    >>> served = Budget.parse(max_latency="5ms@server")  # under the search's extra profile 'server'
    >>> served.describe(), served.violations({"latency_ms": 1.0, "latency_ms@server": 6.0})
    ('latency@server <= 5 ms', {'latency_ms@server': 1.0})
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass

from autocompress.errors import UsageError
from autocompress.metrics import latency_key

SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def _parse(text: str, units: dict[str, float], what: str, example: str) -> float:
    match = _NUMBER.match(str(text).lower())
    if not match:
        raise UsageError(f"{what} {text!r} is not a positive number with a unit; e.g. {example}")
    value, unit = float(match.group(1)), match.group(2)
    if unit not in units:
        raise UsageError(f"{what} {text!r}: unknown unit {unit!r}; use one of {', '.join(units)} (e.g. {example})")
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{what} {text!r} must be a positive number (e.g. {example})")
    return value * units[unit]


def parse_size(text: str) -> int:
    """Bytes from '50KB', '1.5MiB', '800B' (KB = 1000 bytes, KiB = 1024); at least 1 byte.

    >>> parse_size("0.4B")
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: --max-size '0.4B' is under one byte; give a size of at least 1B (e.g. 50KB or 1.5MiB)
    """
    value = _parse(text, SIZE_UNITS, "--max-size", "50KB or 1.5MiB")
    if not math.isfinite(value):
        raise UsageError(f"--max-size {text!r} is too large to be a size; give e.g. 50KB or 1.5MiB")
    size = int(round(value))
    if size < 1:
        raise UsageError(f"--max-size {text!r} is under one byte; give a size of at least 1B (e.g. 50KB or 1.5MiB)")
    return size


def parse_latency(text: str) -> float:
    """Milliseconds from '2ms', '250us', '0.01s', to 15 significant digits: the unit's conversion
    adds no error in the last bit, so a limit typed as a file's recorded latency admits that file.

    >>> parse_latency("20.9655us") == 0.0209655   # 20.9655 * 1e-3 alone is 0.020965499999999998
    True
    """
    return float(f"{_parse(text, TIME_UNITS, '--max-latency', '2ms or 250us'):.15g}")


def parse_latency_limit(text: str) -> tuple[float, str | None]:
    """(milliseconds, profile or None) from '2ms' or '2ms@server' (a limit under the search's
    extra latency profile 'server').

    >>> parse_latency_limit("2ms@server"), parse_latency_limit("250us")
    ((2.0, 'server'), (0.25, None))
    """
    value, at, profile = str(text).partition("@")
    if at and not profile.strip():
        raise UsageError(f"--max-latency {text!r}: name the latency profile after @, e.g. 2ms@server")
    return parse_latency(value), (profile.strip() or None)


def parse_accuracy(text: str | float) -> float:
    """A fraction in (0, 1]: '0.97' (or '97%')."""
    raw = str(text).strip()
    try:
        value = float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
    except ValueError:
        raise UsageError(f"--min-accuracy {text!r} is not a number; e.g. 0.97 or 97%") from None
    if not math.isfinite(value) or not 0 < value <= 1:
        raise UsageError(f"--min-accuracy {text!r} must be in (0, 1], e.g. 0.97 or 97%")
    return value


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Limits on size_bytes, latency_ms and accuracy; None = no limit on that axis."""

    max_size_bytes: int | None = None
    max_latency_ms: float | None = None
    min_accuracy: float | None = None
    latency_profile: str | None = None  # the extra latency profile the latency limit is under; None: the search's

    def __post_init__(self):
        """Each limit a positive finite number (accuracy a fraction), named by its keyword."""
        for name in ("max_size_bytes", "max_latency_ms", "min_accuracy"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                    or value <= 0:
                raise UsageError(f"{name}={value!r}: give a positive number, or None for no limit")
        if self.min_accuracy is not None and self.min_accuracy > 1:
            raise UsageError(f"min_accuracy={self.min_accuracy!r}: give a fraction in (0, 1], e.g. 0.97")
        if self.latency_profile is not None and (not isinstance(self.latency_profile, str)
                                                 or self.max_latency_ms is None):
            raise UsageError(f"latency_profile={self.latency_profile!r}: name a profile (a string) for a "
                             "max_latency_ms, e.g. Budget(max_latency_ms=2, latency_profile='server')")

    @classmethod
    def parse(cls, *, max_size=None, max_latency=None, min_accuracy=None) -> "Budget":
        latency, profile = (None, None) if max_latency is None else parse_latency_limit(max_latency)
        return cls(max_size_bytes=None if max_size is None else parse_size(max_size), max_latency_ms=latency,
                   min_accuracy=None if min_accuracy is None else parse_accuracy(min_accuracy),
                   latency_profile=profile)

    @property
    def is_empty(self) -> bool:
        return self.max_size_bytes is None and self.max_latency_ms is None and self.min_accuracy is None

    def constraints(self, metrics: dict) -> dict[str, float]:
        """Optuna constraint values per limited axis (<= 0 means within budget)."""
        values = {}
        if self.max_size_bytes is not None:
            values["size_bytes"] = float(metrics["size_bytes"] - self.max_size_bytes)
        if self.max_latency_ms is not None:
            key = latency_key(self.latency_profile)
            values[key] = float(metrics[key] - self.max_latency_ms)
        if self.min_accuracy is not None:
            values["accuracy"] = float(self.min_accuracy - metrics["accuracy"])
        return values

    def structural(self) -> "Budget":
        """The limits known before fine-tuning (size, and latency under the search's own profile,
        which the structure check measures), without the accuracy one."""
        return Budget(max_size_bytes=self.max_size_bytes,
                      max_latency_ms=None if self.latency_profile else self.max_latency_ms)

    def violations(self, metrics: dict) -> dict[str, float]:
        """By how much each limit is missed (only the axes that are)."""
        return {axis: value for axis, value in self.constraints(metrics).items() if value > 0}

    def feasible(self, metrics: dict) -> bool:
        return not self.violations(metrics)

    def describe(self) -> str:
        parts = []
        if self.max_size_bytes is not None:
            parts.append(f"size <= {self.max_size_bytes:,} B")
        if self.max_latency_ms is not None:
            under = f"@{self.latency_profile}" if self.latency_profile else ""
            parts.append(f"latency{under} <= {self.max_latency_ms:g} ms")
        if self.min_accuracy is not None:
            parts.append(f"accuracy >= {self.min_accuracy:g}")
        return ", ".join(parts) or "no budget"

    def to_dict(self) -> dict:
        return asdict(self)
