"""Pareto utilities: which candidates no other candidate beats on every objective.

Objectives: accuracy (maximize), size_bytes (minimize), latency_ms (minimize).

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"accuracy": [0.9, 0.8, 0.95], "size_bytes": [10, 20, 30],
    ...                    "latency_ms": [1.0, 2.0, 1.0]})
    >>> pareto_mask(df)
    [True, False, True]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OBJECTIVES = {"accuracy": "maximize", "size_bytes": "minimize", "latency_ms": "minimize"}


def _as_minimized(frame: pd.DataFrame) -> np.ndarray:
    cols = [frame[name].to_numpy(float) * (-1 if d == "maximize" else 1) for name, d in OBJECTIVES.items()]
    return np.stack(cols, axis=1) if cols[0].size else np.empty((0, len(OBJECTIVES)))


def pareto_mask(frame: pd.DataFrame) -> list[bool]:
    """True for the rows no other row dominates (<= on all objectives, < on one)."""
    points = _as_minimized(frame)
    mask = []
    for p in points:
        dominated = np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1))
        mask.append(not bool(dominated))
    return mask


def pareto_front(trials: pd.DataFrame, *, fidelity: str | None = None) -> pd.DataFrame:
    """The non-dominated complete trials (of one fidelity when given), most accurate first."""
    done = trials[trials["state"] == "COMPLETE"]
    if fidelity is not None:
        done = done[done["fidelity"] == fidelity]
    done = done.dropna(subset=list(OBJECTIVES))
    front = done[pareto_mask(done)] if len(done) else done
    return front.sort_values(["accuracy", "size_bytes", "latency_ms"], ascending=[False, True, True])
