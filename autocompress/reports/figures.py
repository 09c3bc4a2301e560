"""The report's plotly figures, built from ReportData.

Every string that comes from a user or a trial goes through ``html.escape`` before it reaches
plotly, whose labels understand a few HTML tags.

Example:
    >>> fig = pareto_figure(collect(load_run("runs/digits")), x="size_bytes")  # doctest: +SKIP
    >>> [trace.name for trace in fig.data]                                     # doctest: +SKIP
    ['lower rungs (fewer fine-tuning steps)', 'dominated', 'Pareto front', 'teacher']
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from autocompress.plan import rank_from_knob, rank_kept_text
from autocompress.reports.collect import ReportData

FRONT, DOMINATED, SCREEN, TEACHER, BUDGET = "#1f5fbf", "#7f8c9a", "#b8bec6", "#111111", "#2ca02c"
LABELS = {"accuracy": "accuracy (validation)", "size_bytes": "size of the ONNX file (bytes, log scale)",
          "latency_ms": "latency (ms, batch 1)"}
IMPORTANCE_TOP = 12


def _layout(**extra) -> dict:
    return dict(template="plotly_white", margin=dict(l=60, r=20, t=40, b=50), hovermode="closest",
                legend=dict(orientation="h", y=-0.22)) | extra


def _rung_text(row) -> str:
    steps = "" if pd.isna(row.get("steps")) else f"{int(row['steps'])} steps"
    return ", ".join(filter(None, ["" if pd.isna(row.get("rung")) else f"rung {int(row['rung'])}", steps])) or "full"


def hover_texts(data: ReportData, rows: pd.DataFrame, *, teacher_latency_ms: float | None = None) -> list[str]:
    """``teacher_latency_ms``: the teacher's under the latency the rows hold (default: the run's own)."""
    teacher = data.run.teacher
    ahead = teacher_latency_ms or teacher.latency_ms
    texts = []
    for _, r in rows.iterrows():
        texts.append(
            f"<b>trial {int(r['number'])}</b> ({_rung_text(r)})<br>"
            f"accuracy {r['accuracy']:.4f} ({(r['accuracy'] - teacher.accuracy) * 100:+.1f} pt)<br>"
            f"size {r['size_bytes']:,.0f} B ({teacher.size_bytes / r['size_bytes']:.1f}x smaller)<br>"
            f"latency {r['latency_ms']:.4f} ms ({ahead / r['latency_ms']:.2f}x faster)<br>"
            f"{'within' if r.get('feasible') else 'outside'} the run's budget<br>{html.escape(str(r['summary']))}")
    return texts


def _groups(data: ReportData) -> list[tuple[str, pd.DataFrame, dict]]:
    done = data.trials[data.trials["state"] == "COMPLETE"].dropna(subset=["accuracy", "size_bytes", "latency_ms"])
    return [
        ("lower rungs (fewer fine-tuning steps)", done[~done["full"]],
         dict(color=SCREEN, size=6, opacity=0.35, symbol="circle-open")),
        ("dominated", done[done["full"] & ~done["on_front"]], dict(color=DOMINATED, size=7, opacity=0.45)),
        ("Pareto front", done[done["on_front"]],
         dict(color=FRONT, size=11, opacity=1.0, line=dict(color="white", width=1))),
    ]


def pareto_figure(data: ReportData, *, x: str) -> go.Figure:
    """Accuracy against size (x="size_bytes") or latency (x="latency_ms")."""
    fig = go.Figure()
    for name, rows, marker in _groups(data):
        fig.add_trace(go.Scatter(x=rows[x], y=rows["accuracy"], mode="markers", name=name, marker=marker,
                                 customdata=rows["number"].astype(int), hovertext=hover_texts(data, rows),
                                 hoverinfo="text"))
    teacher = data.run.teacher
    fig.add_trace(go.Scatter(x=[getattr(teacher, x)], y=[teacher.accuracy], mode="markers", name="teacher",
                             marker=dict(symbol="star", size=16, color=TEACHER), hoverinfo="text",
                             hovertext=[f"<b>teacher</b><br>accuracy {teacher.accuracy:.4f}<br>"
                                        f"size {teacher.size_bytes:,} B<br>latency {teacher.latency_ms:.4f} ms"]))
    # the budget's region and lines are drawn in the page (report.js), from the budget filter
    fig.update_layout(**_layout(xaxis_title=LABELS[x], yaxis_title=LABELS["accuracy"], height=460,
                                xaxis_type="log" if x == "size_bytes" else "linear"))
    return fig


def pareto_3d_figure(data: ReportData) -> go.Figure:
    fig = go.Figure()
    for name, rows, marker in _groups(data):
        marker = {k: v for k, v in marker.items() if k in ("color", "opacity")} | {"size": 3 if name != "Pareto front" else 5}
        fig.add_trace(go.Scatter3d(x=rows["size_bytes"], y=rows["latency_ms"], z=rows["accuracy"], mode="markers",
                                   name=name, marker=marker, customdata=rows["number"].astype(int),
                                   hovertext=hover_texts(data, rows), hoverinfo="text"))
    teacher = data.run.teacher
    fig.add_trace(go.Scatter3d(x=[teacher.size_bytes], y=[teacher.latency_ms], z=[teacher.accuracy], mode="markers",
                               name="teacher", marker=dict(symbol="diamond", size=7, color=TEACHER), hoverinfo="name"))
    fig.update_layout(**_layout(height=620, margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h", y=0.02),
                                scene=dict(
        xaxis=dict(title="size (B)", type="log"), yaxis=dict(title="latency (ms)"), zaxis=dict(title="accuracy"))))
    return fig


def progress_figure(data: ReportData) -> go.Figure:
    """Normalized hypervolume of the front against trials finished and against wall time; with a
    budget, the best accuracy within it against wall time too."""
    p = data.progress
    budgeted = not data.budget.is_empty
    fig = make_subplots(rows=1, cols=3 if budgeted else 2, subplot_titles=(
        "against trials finished", "against wall time") + (("accuracy within the run's budget",) if budgeted else ()))
    text = [f"after trial {n}: {v:.5f}" for n, v in zip(p["number"], p["hypervolume"])]
    fig.add_trace(go.Scatter(x=p["finished"], y=p["hypervolume"], mode="lines+markers", line_shape="hv",
                             name="hypervolume", hovertext=text, hoverinfo="text", marker=dict(color=FRONT)), 1, 1)
    fig.add_trace(go.Scatter(x=p["elapsed_s"] / 60, y=p["hypervolume"], mode="lines+markers", line_shape="hv",
                             showlegend=False, hovertext=text, hoverinfo="text", marker=dict(color=FRONT)), 1, 2)
    fig.update_xaxes(title_text="trials finished (any fidelity)", row=1, col=1)
    fig.update_xaxes(title_text="minutes since the first trial started", row=1, col=2)
    fig.update_yaxes(title_text="hypervolume (normalized)", row=1, col=1)
    if budgeted:
        met = p[p["within_budget"].notna()]
        text = [f"after trial {n}: best accuracy {a:.4f} within {data.budget.describe()}"
                for n, a in zip(met["number"], met["within_budget"])]
        fig.add_trace(go.Scatter(x=met["elapsed_s"] / 60, y=met["within_budget"], mode="lines+markers",
                                 line_shape="hv", hovertext=[html.escape(t) for t in text], hoverinfo="text",
                                 marker=dict(color=FRONT)), 1, 3)
        fig.update_xaxes(title_text="minutes since the first trial started", row=1, col=3)
    fig.update_layout(**_layout(height=360, showlegend=False))
    return fig


def fidelity_figure(data: ReportData) -> go.Figure:
    """Trials per rung (successive halving) and state."""
    rung = pd.to_numeric(data.trials["rung"], errors="coerce") if "rung" in data.trials else None
    t = data.trials.assign(rung=rung.map(lambda r: "?" if pd.isna(r) else f"rung {int(r)}") if rung is not None else "?")
    counts = t.groupby(["rung", "state"]).size().unstack(fill_value=0)
    fig = go.Figure([go.Bar(x=[html.escape(str(r)) for r in counts.index], y=counts[state], name=state.lower())
                     for state in counts.columns])
    fig.update_layout(**_layout(barmode="stack", height=320, yaxis_title="trials", xaxis_title="rung"))
    return fig


def importance_figure(evaluator: str, importances: dict[str, dict[str, float]]) -> go.Figure:
    """The most important knobs (by their largest importance over the objectives), one bar per objective."""
    ranked = sorted({k for v in importances.values() for k in v},
                    key=lambda k: max(v.get(k, 0.0) for v in importances.values()), reverse=True)[:IMPORTANCE_TOP]
    fig = go.Figure([go.Bar(y=[html.escape(k) for k in ranked[::-1]], x=[scores.get(k, 0.0) for k in ranked[::-1]],
                            orientation="h", name=objective) for objective, scores in importances.items()])
    fig.update_layout(**_layout(barmode="group", height=160 + 45 * len(ranked), margin=dict(l=170, r=20, t=30, b=50),
                                xaxis_title=f"importance ({evaluator}, normalized per objective)"))
    return fig


def _sensitivity_place(row: pd.Series) -> tuple[str, str]:
    """(heat-map row, column) of a scan cell: layers (and student knobs) x knob values."""
    kind, target, value = row["kind"], str(row["target"]), row["value"]
    if kind == "bits" and target == "*":
        return "every layer at once", f"int{int(value)}"
    if kind == "bits":
        return target, f"int{int(value)}"
    if kind == "prune":
        return target, f"prune {value:.1%}"
    if kind == "rank":
        return target, f"rank {rank_kept_text(**rank_from_knob(value))}"
    if target.startswith("depth/"):
        return f"depth of {target.removeprefix('depth/')}", f"keep {int(value)} block{'s' * (int(value) != 1)}"
    return "student width", f"width {value:g}"


def _change(delta: float, value: float) -> str:
    base = value - delta
    return f"{delta:+,.4g} ({delta / base:+.1%})" if base else f"{delta:+,.4g}"


def _sensitivity_hover(row: pd.Series, place: tuple[str, str]) -> str:
    def text(value) -> str:  # plotly shows &quot; as it is: quotes stay (they cannot open a tag)
        return html.escape(str(value), quote=False)

    head = f"<b>{text(place[0])}</b>, {text(place[1])}<br>{text(row['knob'])}<br>"
    if isinstance(row["error"], str) and row["error"]:
        return head + "FAILED: " + text(row["error"][:300])
    return (head + f"accuracy {row['accuracy']:.4f} ({row['accuracy_delta'] * 100:+.2f} pt)<br>"
            f"size {row['size_bytes']:,.0f} B, change {_change(row['size_delta_bytes'], row['size_bytes'])} B<br>"
            f"latency {row['latency_ms']:.4f} ms, change {_change(row['latency_delta_ms'], row['latency_ms'])} ms")


def sensitivity_figure(table: pd.DataFrame, *, layers: list[str]) -> go.Figure:
    """The sensitivity scan as a heat map: layers (in model order; student knobs below) x knob
    values; colour = accuracy drop in points against the teacher (same subset); hover = the
    cell's accuracy, size and latency and their changes; failed cells are blank, their hover
    says why."""
    cells = table[table["kind"] != "teacher"]
    places = [_sensitivity_place(row) for _, row in cells.iterrows()]
    rows = [name for name in layers if any(p[0] == name for p in places)]
    rows += sorted({p[0] for p in places} - set(rows), key=lambda r: (r.startswith("student"), r))
    columns = list(dict.fromkeys(p[1] for p in sorted(places, key=lambda p: _column_order(p[1]))))
    z = [[None] * len(columns) for _ in rows]
    text = [[""] * len(columns) for _ in rows]
    hover = [["not a knob of this row"] * len(columns) for _ in rows]
    for (_, row), (name, column) in zip(cells.iterrows(), places):
        i, j = rows.index(name), columns.index(column)
        hover[i][j] = _sensitivity_hover(row, (name, column))
        failed = isinstance(row["error"], str) and bool(row["error"])
        text[i][j] = "failed" if failed else f"{-row['accuracy_delta'] * 100 + 0.0:.1f}"  # + 0.0: no "-0.0"
        z[i][j] = None if failed else -row["accuracy_delta"] * 100
    drops = [v for line in z for v in line if v is not None]
    fig = go.Figure(go.Heatmap(
        z=z, x=columns, y=[html.escape(r, quote=False) for r in rows], text=text, texttemplate="%{text}", hovertext=hover,
        hoverinfo="text", colorscale="Reds", zmin=0, zmax=max([1.0, *drops]), xgap=2, ygap=2,
        colorbar=dict(title=dict(text="accuracy drop (pt)", side="right"))))
    fig.update_layout(**_layout(height=140 + 24 * len(rows), margin=dict(l=170, r=20, t=30, b=90),
                                yaxis=dict(autorange="reversed", type="category"),
                                xaxis=dict(type="category", tickangle=-40, side="bottom")))
    return fig


def _column_order(column: str) -> tuple:
    """int8, int4, int2; prune ascending; rank descending (each ratio's Tucker-2 after its SVD); depth; width.

    >>> sorted(["rank 25%", "rank Tucker-2 50%", "width 0.5", "int4", "rank 50%", "prune 12.5%", "int8"], key=_column_order)
    ['int8', 'int4', 'prune 12.5%', 'rank 50%', 'rank Tucker-2 50%', 'rank 25%', 'width 0.5']
    """
    kind, _, number = column.partition(" ")
    if column.startswith("int"):
        return 0, -int(column[3:])
    if kind == "rank":  # rank 50%, rank Tucker-2 50%: each ratio's SVD, then its Tucker-2
        return 2, -float(number.split()[-1].rstrip("%")), "Tucker" in number
    value = float(number.split()[0].rstrip("%")) if number else 0.0
    return {"prune": 1, "keep": 3, "width": 4}.get(kind, 5), value
