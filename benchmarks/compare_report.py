"""compare.py's written results: the headline candidate, ties within noise, the .md and the .png.

The headline is ONE candidate: its size and latency ratios are of the same exported file,
measured side by side with the teacher's, and its accuracy is that file's on the test split.
Two strategies whose hypervolumes differ by less than the spread of their seeds are called a
tie, not ranked.
"""

from __future__ import annotations

import statistics
from pathlib import Path

HEADLINE_DROP_PT = 1.0  # the headline candidate loses at most this many points of test accuracy


def headline(front: list[dict], *, max_drop_pt: float = HEADLINE_DROP_PT) -> dict | None:
    """The candidate within ``max_drop_pt`` points of the teacher's test accuracy whose file is
    the smallest and fastest together (largest size_x x latency_x), or None.

    >>> front = [{"size_x": 10.0, "latency_x": 1.2, "drop_pt": 0.5}, {"size_x": 4.0, "latency_x": 4.0, "drop_pt": 0.9},
    ...          {"size_x": 50.0, "latency_x": 5.0, "drop_pt": 3.0}]
    >>> headline(front)
    {'size_x': 4.0, 'latency_x': 4.0, 'drop_pt': 0.9}
    >>> headline(front, max_drop_pt=0.1) is None
    True
    """
    close = [c for c in front if c["drop_pt"] <= max_drop_pt]
    return max(close, key=lambda c: c["size_x"] * c["latency_x"], default=None)


def verdict(values: list[float], reference: list[float]) -> str:
    """``values`` (one per seed) against ``reference``'s: "tie" when either median lies within
    the other's range over seeds (the difference is within run-to-run noise), else "higher" or
    "lower". With one seed each there is no spread: only equal values tie.

    >>> verdict([0.030, 0.034, 0.038], [0.036, 0.037, 0.039])
    'tie'
    >>> verdict([0.040, 0.041, 0.042], [0.036, 0.037, 0.039])
    'higher'
    >>> verdict([0.02], [0.036, 0.037, 0.039])
    'lower'
    """
    mine, theirs = statistics.median(values), statistics.median(reference)
    if min(values) <= theirs <= max(values) or min(reference) <= mine <= max(reference):
        return "tie"
    return "higher" if mine > theirs else "lower"


def _candidate(c: dict | None) -> str:
    if c is None:
        return "none within 1 pt"
    return (f"{c['size_x']:.1f}x smaller, {c['latency_x']:.2f}x faster, test {c['test_accuracy']:.4f} "
            f"({c['drop_pt']:+.2f} pt drop; seed {c['seed']}, trial {c['trial']})")


def _row(name: str, e: dict, reference: dict | None) -> str:
    budget = f"{e['budget_s']:.0f} s" if e.get("budget_s") else "none (fixed plans)"
    against = verdict(e["remeasured_hypervolume"], reference["remeasured_hypervolume"]) \
        if reference is not None and reference is not e else "-"
    return (f"| {name} | {budget} | {statistics.median(e['wall_s']):.0f} s | {len(e['seeds'])} | "
            f"{e['median_remeasured_hypervolume']:.5f}; {', '.join(f'{v:.5f}' for v in e['remeasured_hypervolume'])} | "
            f"{against} | {e['median_hypervolume']:.5f} | {_candidate(e['headline'])} |")


def markdown(result: dict) -> str:
    t, r = result["teacher_remeasured"], result["teacher"]
    strategies = result["strategies"]
    reference = strategies.get("joint")  # the product's default: the headline and the "vs" column are its
    head = result["headline"]
    lines = [f"# {result['task']}: joint search vs alternatives at equal wall-clock budget",
             "",
             f"Command: `{result['command']}`. Machine: {result['machine']['cpus']} CPUs. Fine-tuning: "
             f"{result['steps']} steps per candidate; "
             + (f"each search stopped by a {result['time_budget_s']:g} s budget." if result["time_budget_s"] else
                "no time budget: searches at equal trials, NOT at equal wall-clock time."),
             "",
             f"Teacher: test accuracy {t['test_accuracy']:.4f} (validation {r['accuracy']:.4f}), "
             f"{t['size_bytes']:,} B, {t['latency_ms']:.4f} ms (side by side).",
             "",
             ("**Headline**: " + (f"{head['strategy']}: " + _candidate(head) if head else
                                  f"{'joint' if reference else 'no strategy'}: no candidate within 1 point of the "
                                  "teacher's test accuracy")
              + ". One exported file: its size and latency ratios against the teacher's file measured side by "
                "side in one process after all searches, its accuracy on the test split."),
             "",
             "| strategy | budget | wall time per seed | seeds | re-measured hypervolume (median; per seed) | "
             "vs joint | in-run hypervolume (median) | one candidate within 1 pt (test) |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [_row(name, e, reference) for name, e in strategies.items()]
    lines += ["", "Re-measured hypervolume: each seed's final front (its complete full-fidelity, non-dominated "
              "candidates by validation accuracy) measured again side by side with the teacher, in normalized "
              "objectives (1 - test accuracy/teacher's, size/teacher's, latency/teacher's), reference point "
              "(0.05, 1, 1); larger is better. \"vs joint\": tie when either median lies within the other's range "
              "over seeds (one seed each: no spread, so only equal values tie). In-run hypervolume: the same "
              "from the numbers each run stored (validation accuracy, latency measured during the run). One "
              "candidate: the file within 1 point of the teacher's test accuracy with the largest size x latency "
              "ratio.", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["strategies"])
    fig, ax = plt.subplots(figsize=(8, 4), dpi=150)
    for i, name in enumerate(names):
        values = result["strategies"][name]["remeasured_hypervolume"]
        ax.bar(i, statistics.median(values), color="#1f5fbf" if name == "joint" else "#9aa5b1")
        ax.scatter([i] * len(values), values, color="black", s=12, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("hypervolume (re-measured, test)")
    ax.set_title(f"{result['task']}: median over seeds (dots: each seed), equal wall-clock budget")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
