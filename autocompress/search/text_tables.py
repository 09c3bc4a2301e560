"""What a search prints: one line per finished trial, and the Pareto front as a table, each
with its ratios against the teacher.

Example:
    >>> import pandas as pd
    >>> from autocompress.metrics import Metrics, latency_key
    >>> teacher = Metrics(accuracy=0.98, size_bytes=40960, latency_ms=0.02, params=0, macs=0, fidelity="")
    >>> front = pd.DataFrame({"number": [3], "accuracy": [0.97], "size_bytes": [10240], "latency_ms": [0.01]})
    >>> print(front_table(front, teacher))
     trial accuracy vs teacher    size smaller   latency faster
         3   0.9700    -1.0 pt 10.0 KB    4.0x 0.0100 ms  2.00x
"""

from __future__ import annotations

import dataclasses

import optuna
import pandas as pd

from autocompress.metrics import Metrics
from autocompress.search.best import closest_miss
from autocompress.search.trial_record import TrialRecord


def progress_line(done: int, total: int, frozen: optuna.trial.FrozenTrial, teacher: Metrics, *, rungs: int = 1,
                  batch: int = 1) -> str:
    """``[done/total] trial N  acc ... size ... latency ...  seconds  plan`` (or why it failed);
    measured at a ``batch`` above 1, the throughput follows the latency."""
    saved = TrialRecord.of(frozen)
    rung = f"rung {saved.rung}" if rungs > 1 and saved.rung is not None else ""
    head = f"[{done:>{len(str(total))}}/{total}] trial {frozen.number:<3}" + (f" {rung:<6}" if rung else "")
    seconds = saved.duration_s or 0.0
    if saved.metrics is None:
        return f"{head} FAILED  {seconds:5.1f}s  {saved.error or ''}"
    if saved.duplicate_of is not None:
        return f"{head} same plan as trial {saved.duplicate_of}: answered from it, not counted"
    metrics, plan = Metrics.from_dict(saved.metrics), saved.plan
    return (f"{head} acc {metrics.accuracy:.4f} ({(metrics.accuracy - teacher.accuracy) * 100:+.1f} pt)  "
            f"size {metrics.size_bytes / 1024:7.1f} KB ({teacher.size_bytes / metrics.size_bytes:4.1f}x)  "
            f"latency {metrics.latency_ms:.4f} ms ({teacher.latency_ms / metrics.latency_ms:4.2f}x)"
            f"{throughput(metrics.latency_ms, batch)}  "
            f"{seconds:5.1f}s  {plan.summary() if plan else ''}"
            + ("  (over the budget: not fine-tuned)" if "not fine-tuned" in metrics.notes else ""))


def budget_met_line(row: pd.Series, budget, teacher: Metrics, *, started_at: str | None) -> str:
    """When and by which trial the search's budget was first met (``best.first_met``), its time
    counted from the run's start (``run.json``'s ``started_at``).

    >>> teacher = Metrics(accuracy=0.98, size_bytes=40960, latency_ms=0.02, params=0, macs=0, fidelity="")
    >>> row = pd.Series({"number": 4, "accuracy": 0.97, "size_bytes": 10240, "latency_ms": 0.01,
    ...                  "finished_at": "2026-01-01T00:01:05+00:00"})
    >>> from autocompress.budget import Budget
    >>> budget_met_line(row, Budget(max_size_bytes=20000), teacher, started_at="2026-01-01T00:00:00+00:00")
    'budget (size <= 20,000 B) first met by trial 4, 65 s after the search started: acc 0.9700 (-1.0 pt), 10.0 KB (4.0x smaller)'
    """
    elapsed = pd.to_datetime(row.get("finished_at"), utc=True, errors="coerce") - pd.to_datetime(
        started_at, utc=True, errors="coerce")
    when = f", {elapsed.total_seconds():.0f} s after the search started" if pd.notna(elapsed) else ""
    latency = ""
    if budget.max_latency_ms is not None:
        latency = f", {float(row[latency_key(budget.latency_profile)]):.4f} ms" + (f" @{budget.latency_profile}" if budget.latency_profile else "")
    return (f"budget ({budget.describe()}) first met by trial {int(row['number'])}{when}: acc {row['accuracy']:.4f} ({(row['accuracy'] - teacher.accuracy) * 100:+.1f} pt), "
            f"{row['size_bytes'] / 1024:.1f} KB ({teacher.size_bytes / row['size_bytes']:.1f}x smaller){latency}")


def budget_missed_line(candidates: pd.DataFrame, budget, teacher: Metrics) -> str:
    """Said at the end of a search whose budget no full-fidelity trial met: of ``candidates`` (its
    complete trials, at any number of steps) the one that came closest (``best.closest_miss``) and
    by how much it misses each limit.

    >>> from autocompress.budget import Budget
    >>> teacher = Metrics(accuracy=0.98, size_bytes=40960, latency_ms=0.02, params=0, macs=0, fidelity="")
    >>> t = pd.DataFrame({"number": [4], "accuracy": [0.9], "size_bytes": [10240], "latency_ms": [0.01], "steps": [222]})
    >>> budget_missed_line(t, Budget(max_size_bytes=20000, min_accuracy=0.95), teacher)
    'budget (size <= 20,000 B, accuracy >= 0.95) not met by any of 1 complete trial(s); the closest, trial 4 (222 steps: acc 0.9000, -8.0 pt, 10.0 KB, 4.0x smaller), misses accuracy by 5.0 pt'
    >>> budget_missed_line(t, Budget(max_size_bytes=20000), teacher)   # a trial of fewer steps meets it
    'budget (size <= 20,000 B) met only below full fidelity: trial 4 (222 steps: acc 0.9000, -8.0 pt, 10.0 KB, 4.0x smaller); no trial at full fidelity meets it'
    >>> budget_missed_line(t.iloc[:0], Budget(max_size_bytes=20000), teacher)
    'budget (size <= 20,000 B) not met: no trial completed'
    """
    row = closest_miss(candidates, budget)
    if row is None:
        return f"budget ({budget.describe()}) not met: no trial completed"
    steps = f"{int(row['steps'])} steps: " if pd.notna(row.get("steps")) else ""
    trial = (f"trial {int(row['number'])} ({steps}acc {row['accuracy']:.4f}, {(row['accuracy'] - teacher.accuracy) * 100:+.1f}"
             f" pt, {row['size_bytes'] / 1024:.1f} KB, {teacher.size_bytes / row['size_bytes']:.1f}x smaller)")
    violations = budget.violations(row)
    if not violations:  # met, but by a trial of fewer steps than the run's full fidelity
        return f"budget ({budget.describe()}) met only below full fidelity: {trial}; no trial at full fidelity meets it"
    units = {"size_bytes": lambda m: f"{m:,.0f} B", "accuracy": lambda m: f"{100 * m:.1f} pt"}
    misses = ", ".join(f"{'latency' if axis.startswith('latency') else axis.replace('_bytes', '')} by "
                       f"{units.get(axis, lambda m: f'{m:.4f} ms')(miss)}" for axis, miss in violations.items())
    return (f"budget ({budget.describe()}) not met by any of {len(candidates)} complete trial(s); "
            f"the closest, {trial}, misses {misses}")


def throughput(latency_ms: float, batch: int) -> str:
    """`` = N items/s`` for a latency per run of ``batch`` rows above 1, else nothing.

    >>> throughput(2.0, 32), throughput(2.0, 1)
    (' = 16,000 items/s', '')
    """
    return f" = {batch * 1000.0 / latency_ms:,.0f} items/s" if batch > 1 else ""


def profile_fronts(trials: pd.DataFrame, teacher: Metrics, profiles: dict, *, fidelity: str) -> str:
    """The front under each extra latency profile (``profiles``: name -> LatencyProfile), each
    saying which of its trials the search's own front does not hold."""
    from autocompress.search.pareto import pareto_front

    own = set(pareto_front(trials, fidelity=fidelity)["number"])
    parts = []
    for name, profile in profiles.items():
        front = pareto_front(trials, fidelity=fidelity, profile=name)
        only = sorted(int(n) for n in set(front["number"]) - own)
        at = dataclasses.replace(teacher, latency_ms=teacher.latencies[name])
        parts.append(f"\nfront under latency profile {name!r} ({profile.threads} thread(s), batch {profile.batch}, "
                     f"{profile.provider}; teacher {at.latency_ms:.4f} ms): {len(front)} trials, "
                     f"{len(only)} not on the front above{': ' + ', '.join(map(str, only)) if only else ''}\n"
                     + front_table(front, at, batch=profile.batch))
    return "\n".join(parts)


def front_table(front: pd.DataFrame, teacher: Metrics, *, batch: int = 1) -> str:
    """The Pareto front as text, with ratios against the teacher (and throughput at a batch above 1)."""
    if front.empty:
        return "no complete trials at full fidelity yet"
    table = pd.DataFrame({
        "trial": front["number"],
        "accuracy": front["accuracy"].map("{:.4f}".format),
        "vs teacher": ((front["accuracy"] - teacher.accuracy) * 100).map("{:+.1f} pt".format),
        "size": (front["size_bytes"] / 1024).map("{:.1f} KB".format),
        "smaller": (teacher.size_bytes / front["size_bytes"]).map("{:.1f}x".format),
        "latency": front["latency_ms"].map("{:.4f} ms".format),
        "faster": (teacher.latency_ms / front["latency_ms"]).map("{:.2f}x".format),
    })
    if batch > 1:
        table["items/s"] = (batch * 1000.0 / front["latency_ms"]).map("{:,.0f}".format)
    return table.to_string(index=False)
