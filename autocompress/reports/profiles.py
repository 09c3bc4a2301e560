"""The report's section on a search's extra latency profiles: for each, the front under that
profile (its latencies, its teacher's) as a figure and a table, each trial marked by whether the
search's own front holds it too. Which plan is fastest changes with threads, batch and provider:
this is where the page shows it.

Example:
    >>> sections = profile_sections(collect(load_run("runs/digits")))  # doctest: +SKIP
    >>> [(s["name"], len(s["rows"])) for s in sections]                 # doctest: +SKIP
    [('server', 4)]
"""

from __future__ import annotations

import json

import plotly.graph_objects as go

from autocompress.reports.collect import ReportData
from autocompress.reports.figures import DOMINATED, FRONT, LABELS, TEACHER, _layout, hover_texts
from autocompress.search.pareto import extra_profiles, under_profile


def profile_sections(data: ReportData) -> list[dict]:
    """One section per extra latency profile the run measured (none: an empty list)."""
    described = data.run.info["settings"].get("latency_profiles", {})
    full = data.trials[data.trials["full"]].dropna(subset=["accuracy", "size_bytes", "latency_ms"])
    sections = []
    for name in extra_profiles(data.trials):
        view = under_profile(full, name).dropna(subset=["latency_ms"])
        on_front = view["number"].isin(data.run.front(name)["number"])  # the front the search prints, best uses
        front = view[on_front].sort_values(["accuracy", "size_bytes", "latency_ms"], ascending=[False, True, True])
        teacher_ms = data.run.teacher.latencies.get(name)
        sections.append({
            "name": name, "profile": described.get(name, {}), "teacher_latency_ms": teacher_ms,
            "rows": [{"number": int(r["number"]), "accuracy": float(r["accuracy"]), "size_bytes": int(r["size_bytes"]),
                      "latency_ms": float(r["latency_ms"]), "own_latency_ms": float(full.loc[i, "latency_ms"]),
                      "on_own_front": bool(r["on_front"]), "summary": str(r["summary"])}
                     for i, r in front.iterrows()],
            "figure": json.loads(_figure(data, view, on_front, name, teacher_ms).to_json()),
        })
    return sections


def _figure(data: ReportData, view, on_front, name: str, teacher_ms: float | None) -> go.Figure:
    """Accuracy against the latency under profile ``name``: that profile's front, the rest faint."""
    fig = go.Figure()
    for label, rows, marker in (("dominated here", view[~on_front], dict(color=DOMINATED, size=7, opacity=0.45)),
                                (f"front under {name}", view[on_front], dict(color=FRONT, size=11))):
        fig.add_trace(go.Scatter(x=rows["latency_ms"], y=rows["accuracy"], mode="markers", name=label, marker=marker,
                                 customdata=rows["number"].astype(int), hoverinfo="text",
                                 hovertext=hover_texts(data, rows, teacher_latency_ms=teacher_ms)))
    if teacher_ms:
        fig.add_trace(go.Scatter(x=[teacher_ms], y=[data.run.teacher.accuracy], mode="markers", name="teacher",
                                 marker=dict(symbol="star", size=16, color=TEACHER), hoverinfo="name"))
    fig.update_layout(**_layout(xaxis_title=f"latency under {name} (ms per run)", yaxis_title=LABELS["accuracy"],
                                height=420))
    return fig
