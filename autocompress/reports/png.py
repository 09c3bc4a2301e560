"""The report's main plots as PNG files for slides, drawn with matplotlib (no browser needed).

Plotly's own static export (kaleido) needs a Chrome on the machine and starts it with its
network services on; matplotlib draws the same data offline with nothing else installed.

Example:
    >>> paths = write_pngs(collect(load_run("runs/digits")), "slides/")     # doctest: +SKIP
    >>> [p.name for p in paths]                                              # doctest: +SKIP
    ['pareto_size.png', 'pareto_latency.png', 'hypervolume.png']
"""

from __future__ import annotations

import os
from pathlib import Path

from autocompress.reports.collect import ReportData
from autocompress.reports.figures import BUDGET, DOMINATED, FRONT, LABELS, SCREEN, TEACHER

PNG_NAMES = ("pareto_size.png", "pareto_latency.png", "hypervolume.png")


def _pareto(ax, data: ReportData, x: str) -> None:
    done = data.trials[data.trials["state"] == "COMPLETE"].dropna(subset=["accuracy", x])
    groups = [("lower rungs (fewer fine-tuning steps)", done[~done["full"]], dict(facecolors="none", edgecolors=SCREEN, s=18)),
              ("dominated", done[done["full"] & ~done["on_front"]], dict(color=DOMINATED, alpha=0.5, s=18)),
              ("Pareto front", done[done["on_front"]], dict(color=FRONT, s=40, edgecolors="white", zorder=3))]
    for name, rows, style in groups:
        if len(rows):
            ax.scatter(rows[x], rows["accuracy"], label=name, **style)
    teacher = data.run.teacher
    ax.scatter([getattr(teacher, x)], [teacher.accuracy], marker="*", s=220, color=TEACHER, label="teacher", zorder=4)
    limit = {"size_bytes": data.budget.max_size_bytes, "latency_ms": data.budget.max_latency_ms}[x]
    floor = data.budget.min_accuracy
    if limit is not None:
        ax.axvline(limit, color=BUDGET, linestyle="--", linewidth=1.2)
    if floor is not None:
        ax.axhline(floor, color=BUDGET, linestyle="--", linewidth=1.2)
    if limit is not None or floor is not None:
        left, right = ax.get_xlim()
        bottom, top = ax.get_ylim()
        ax.fill_between([left, limit if limit is not None else right], floor if floor is not None else bottom, top,
                        color=BUDGET, alpha=0.08, label="within budget")
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
    if x == "size_bytes":
        ax.set_xscale("log")
    ax.set_xlabel(LABELS[x])
    ax.set_ylabel(LABELS["accuracy"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def write_pngs(data: ReportData, folder: str | os.PathLike) -> list[Path]:
    """pareto_size.png, pareto_latency.png and hypervolume.png in ``folder`` (created if needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    title = data.run.info["task"]["name"].replace("$", r"\$")  # no mathtext from a task name
    written = []
    for x, name in zip(("size_bytes", "latency_ms"), PNG_NAMES):
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=150)
        _pareto(ax, data, x)
        ax.set_title(f"{title}: accuracy vs {'size' if x == 'size_bytes' else 'latency'}", fontsize=11)
        fig.tight_layout()
        fig.savefig(folder / name)
        plt.close(fig)
        written.append(folder / name)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=150)
    ax.step(data.progress["finished"], data.progress["hypervolume"], where="post", color=FRONT, marker="o", ms=3)
    ax.set_xlabel("trials finished (any fidelity)")
    ax.set_ylabel("hypervolume (normalized)")
    ax.set_title(f"{title}: search progress", fontsize=11)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / PNG_NAMES[2])
    plt.close(fig)
    return [*written, folder / PNG_NAMES[2]]
