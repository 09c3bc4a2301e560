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

from autocompress.errors import UsageError
from autocompress.metrics import LATENCY, PROFILE_LATENCY, latency_key

OBJECTIVES = {"accuracy": "maximize", "size_bytes": "minimize", "latency_ms": "minimize"}
# teacher-relative hypervolume: up to 5% of the teacher's accuracy lost, its size, its latency
HV_REFERENCE = (0.05, 1.0, 1.0)


def _as_minimized(frame: pd.DataFrame) -> np.ndarray:
    cols = [frame[name].to_numpy(float) * (-1 if d == "maximize" else 1) for name, d in OBJECTIVES.items()]
    return np.stack(cols, axis=1) if cols[0].size else np.empty((0, len(OBJECTIVES)))


def _dominates(points: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per row of ``points`` (minimized): whether it dominates ``p`` (<= on all, < on one)."""
    return np.all(points <= p, axis=1) & np.any(points < p, axis=1)


def pareto_mask(frame: pd.DataFrame) -> list[bool]:
    """True for the rows no other row dominates (<= on all objectives, < on one)."""
    points = _as_minimized(frame)
    return [not bool(np.any(_dominates(points, p))) for p in points]


def dominated(point, others: pd.DataFrame) -> bool:
    """Whether a row of ``others`` is at least as good as ``point`` on every objective and
    better on one (``point``: a dict or Series with the objectives).

    >>> others = pd.DataFrame({"accuracy": [0.9], "size_bytes": [10], "latency_ms": [1.0]})
    >>> dominated({"accuracy": 0.9, "size_bytes": 20, "latency_ms": 1.0}, others)
    True
    >>> dominated({"accuracy": 0.9, "size_bytes": 10, "latency_ms": 1.0}, others)  # equal is not worse
    False
    """
    if others.empty:
        return False
    p = _as_minimized(pd.DataFrame([{name: point[name] for name in OBJECTIVES}]))[0]
    return bool(np.any(_dominates(_as_minimized(others), p)))


def _crowding(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each point of one front: the extremes of every objective
    infinite, the others the summed normalized gap between their neighbours."""
    distance = np.zeros(len(points))
    for column in points.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        if span > 0:  # an objective on which the front does not differ tells nothing apart
            distance[order[[0, -1]]] = np.inf
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance


def nondominated_order(frame: pd.DataFrame) -> list:
    """The index labels of ``frame``, best first: its Pareto front, then the front of what is left,
    and so on (non-dominated sorting); within one front the most isolated first (crowding
    distance, then accuracy), which keeps the chosen ones spread along the front.

    >>> df = pd.DataFrame({"accuracy": [0.9, 0.8, 0.95, 0.7], "size_bytes": [10, 20, 30, 5],
    ...                    "latency_ms": [1.0, 2.0, 1.0, 1.0]})
    >>> nondominated_order(df)
    [2, 3, 0, 1]
    """
    points, left, ordered = _as_minimized(frame), np.arange(len(frame)), []
    while len(left):
        front = left[[not np.any(_dominates(points[left], points[i])) for i in left]]
        crowding = _crowding(points[front])
        ordered += [front[i] for i in sorted(range(len(front)), key=lambda i: (-crowding[i], points[front[i], 0]))]
        left = np.setdiff1d(left, front)
    return [frame.index[i] for i in ordered]


def pareto_front(trials: pd.DataFrame, *, fidelity: str | None = None, profile: str | None = None) -> pd.DataFrame:
    """The non-dominated complete trials (of one fidelity when given), most accurate first; a
    duplicate (a plan answered from an earlier trial) never joins: its first trial does.
    ``profile``: the front under that extra latency profile (its ``latency_ms`` is that profile's)."""
    trials = under_profile(trials, profile)
    done = trials[trials["state"] == "COMPLETE"]
    if "duplicate_of" in done:
        done = done[done["duplicate_of"].isna()]
    if fidelity is not None:
        done = done[done["fidelity"] == fidelity]
    done = done.dropna(subset=list(OBJECTIVES))
    front = done[pareto_mask(done)] if len(done) else done
    return front.sort_values(["accuracy", "size_bytes", "latency_ms"], ascending=[False, True, True])


def extra_profiles(frame) -> list[str]:
    """The names of the extra latency profiles measured in ``frame`` (trials) or a teacher dict.

    >>> extra_profiles(pd.DataFrame(columns=["latency_ms", "latency_ms@server", "latency_ms@edge"]))
    ['server', 'edge']
    """
    return [str(key)[len(PROFILE_LATENCY):] for key in frame.keys() if str(key).startswith(PROFILE_LATENCY)]


def under_profile(frame, profile: str | None):
    """``frame`` (trials, or a teacher dict) with ``latency_ms`` as measured under the extra
    profile ``profile``: every front, ratio and choice made of it is that profile's. None: as it is.

    >>> trials = pd.DataFrame({"accuracy": [0.9, 0.9], "size_bytes": [10, 10], "latency_ms": [1.0, 2.0],
    ...                        "latency_ms@server": [9.0, 3.0]})
    >>> pareto_mask(trials), pareto_mask(under_profile(trials, "server"))
    ([True, False], [False, True])
    """
    if not profile:
        return frame
    key = latency_key(profile)
    if key not in frame:
        measured = ", ".join(extra_profiles(frame)) or "none besides its own"
        raise UsageError(f"latency profile {profile!r} was not measured in this run (its extra profiles: {measured}); "
                         "name one of those after @, or search again with --latency-profile "
                         f"{profile}:threads=...,batch=...")
    view = frame.copy()
    view[LATENCY] = view[key]
    return view


def _hypervolume_2d(points: np.ndarray, reference: np.ndarray) -> float:
    area, best = 0.0, reference[1]
    for y, z in sorted(map(tuple, points)):
        if z < best:
            area += (reference[0] - y) * (best - z)
            best = z
    return area


def hypervolume(points: np.ndarray, reference: tuple[float, ...]) -> float:
    """Volume dominated by ``points`` (3 objectives, all minimized) up to ``reference``.

    >>> hypervolume(np.array([[0.5, 0.5, 0.5]]), (1, 1, 1))
    0.125
    >>> hypervolume(np.array([[0.5, 0.5, 0.5], [0.0, 0.9, 0.9], [2, 0, 0]]), (1, 1, 1))
    0.13
    """
    ref = np.asarray(reference, float)
    pts = np.asarray(points, float).reshape(-1, 3)
    pts = pts[np.all(pts < ref, axis=1)]
    if not len(pts):
        return 0.0
    pts = pts[np.argsort(pts[:, 0])]
    volume = 0.0
    for i in range(len(pts)):
        upper = pts[i + 1, 0] if i + 1 < len(pts) else ref[0]
        if upper > pts[i, 0]:
            volume += (upper - pts[i, 0]) * _hypervolume_2d(pts[: i + 1, 1:], ref[1:])
    return round(float(volume), 12)


def metric_drop(values, teacher: float):
    """How far ``values`` of the task metric (higher is better) fall below the teacher's, as a
    fraction of the teacher's magnitude: ``1 - value/teacher`` for a positive metric such as
    accuracy; for a metric that is negative or zero (negative mean squared error) the same
    fraction of ``|teacher|``, or the plain difference where the teacher scores exactly 0.

    >>> float(metric_drop(0.9, 1.0)), float(metric_drop(-0.3, -0.2)), float(metric_drop(-0.1, 0.0))
    (0.09999999999999998, 0.4999999999999999, 0.1)
    """
    scale = abs(teacher) if teacher != 0 else 1.0
    return (teacher - np.asarray(values, dtype=float)) / scale


def teacher_relative(frame: pd.DataFrame, teacher: dict) -> np.ndarray:
    """Rows as minimized teacher-relative points: (the metric's drop (``metric_drop``; for
    accuracy 1 - accuracy/teacher accuracy), size ratio, latency ratio).

    >>> teacher_relative(pd.DataFrame({"accuracy": [0.9], "size_bytes": [25], "latency_ms": [0.5]}),
    ...                  {"accuracy": 1.0, "size_bytes": 100, "latency_ms": 1.0}).round(3).tolist()
    [[0.1, 0.25, 0.5]]
    """
    return np.stack([metric_drop(frame["accuracy"].to_numpy(float), teacher["accuracy"]),
                     frame["size_bytes"].to_numpy(float) / teacher["size_bytes"],
                     frame["latency_ms"].to_numpy(float) / teacher["latency_ms"]], axis=1).reshape(-1, 3)


def normalized_hypervolume(front: pd.DataFrame, teacher: dict, reference=HV_REFERENCE) -> float:
    """Hypervolume of a front in teacher-relative objectives (``teacher_relative``) up to the
    reference point (``HV_REFERENCE`` unless given); dominated rows add nothing.

    >>> front = pd.DataFrame({"accuracy": [1.0], "size_bytes": [50], "latency_ms": [0.5]})
    >>> normalized_hypervolume(front, {"accuracy": 1.0, "size_bytes": 100, "latency_ms": 1.0})
    0.0125
    """
    if front.empty:
        return 0.0
    return hypervolume(teacher_relative(front, teacher), reference)
