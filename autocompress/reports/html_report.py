"""The HTML report of a run: one self-contained file (plotly.js embedded) that works offline.

The page is built in the browser from one JSON block; every user or trial string reaches the
page through ``textContent`` (never as HTML), and the JSON block escapes ``<``, ``>`` and
``&``, so a task named ``<script>...`` is shown as text and cannot run.

Example:
    >>> path = write_report("runs/digits")                                   # doctest: +SKIP
    >>> path.name                                                            # doctest: +SKIP
    'report.html'
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shlex
import stat
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path


from autocompress.reports import figures
from autocompress.reports.collect import ReportData, collect, run_facts
from autocompress.reports.importance import objective_importances
from autocompress.reports.layer_plan import layer_plan
from autocompress.reports.profiles import profile_sections
from autocompress.search.best import Run, load_run
from autocompress.search.rundir import REPORT_HTML
from autocompress.errors import UsageError

_PLACEHOLDER = re.compile(r"__(TITLE|CSS|PLOTLY_JS|DATA|JS)__")


def _static(name: str) -> str:
    return resources.files("autocompress.reports").joinpath("static", name).read_text(encoding="utf-8")


def _script_json(payload: dict) -> str:
    """JSON that is safe inside a <script> element, whatever strings it carries."""
    text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def _clean(value):
    """NaN -> None and numpy scalars -> Python, for strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    return value.item() if hasattr(value, "item") else value


def _plans(data: ReportData) -> dict[str, dict]:
    """Per complete trial and layer (``layer_plan``): the fraction of output channels kept and
    how many (None where the count is unknown), bits (None = float), rank ratio (None = full),
    whether it is a Tucker-2 one, and whether the student dropped the block the layer sits in."""
    out = {}
    for number, plan in data.plans.items():
        rows = layer_plan(plan, layers=data.layers, stages=data.stages, groups=data.groups, channels=data.channels)
        out[str(number)] = {
            "kept": [r.kept for r in rows], "channels": [r.channels[1] if r.channels else None for r in rows],
            "bits": [r.bits for r in rows], "rank": [r.rank for r in rows], "dropped": [r.dropped for r in rows],
            "tucker": [r.decomposition == "tucker2" for r in rows],
            "depth": {stage: plan.blocks_kept(stage, len(blocks)) if blocks else dict(plan.depth).get(stage)
                      for stage, blocks in data.stages.items()},  # blocks unknown: runs made before run.json had them
            "width": plan.width,
        }
    return out


def _layer_info(data: ReportData) -> dict:
    """Per layer: its pruning group and that group's channel count (None where unknown)."""
    group_of = {member: name for name, members in data.groups.items() for member in members}
    groups = [group_of.get(name) for name in data.layers]
    return {"group": groups, "channels": [data.channels.get(g) if g else None for g in groups]}


def _figure_json(fig) -> dict:
    return json.loads(fig.to_json())


def report_payload(run: Run, *, run_ref: str, data: ReportData | None = None) -> dict:
    """Everything the page shows, as JSON-able data."""
    data = data or collect(run)
    t = data.trials
    complete = t[t["state"] == "COMPLETE"]
    evaluator, importances = objective_importances(t[t["full"]])
    columns = ["number", "accuracy", "size_bytes", "latency_ms", "rung", "steps", "full", "on_front",
               "duration_s", "summary"]
    failed = t[t["state"] != "COMPLETE"]
    return {
        "title": run.info["task"]["name"],
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "teacher": run.teacher.to_dict(),
        "budget": data.budget.describe(),
        # the page's filter tests the run's own latency: a limit under an extra profile stays in the text only
        "budget_limits": {**data.budget.to_dict(), **({"max_latency_ms": None} if data.budget.latency_profile else {})},
        "budget_color": figures.BUDGET,
        "facts": run_facts(run, trials=t),
        "export_command": shlex.join(["autocompress", "best", run_ref]),
        "trials": {c: [_clean(v) for v in complete.reindex(columns=columns)[c]] for c in columns},
        "failed": [{"number": int(r["number"]), "state": r["state"], "rung": _clean(r.get("rung")),
                    "duration_s": _clean(r.get("duration_s")), "error": str(_clean(r.get("error")) or "")}
                   for _, r in failed.iterrows()],
        "layers": data.layers,
        "layer_info": _layer_info(data),
        "stages": data.stages,
        "plans": _plans(data),
        "importance": {"evaluator": evaluator, "trials": int(t["full"].sum())},
        "hypervolume": _clean(data.progress["hypervolume"].iloc[-1]) if len(data.progress) else 0.0,
        "sensitivity": _sensitivity_summary(data),
        "profiles": profile_sections(data),
        "figures": {
            "size": _figure_json(figures.pareto_figure(data, x="size_bytes")),
            "latency": _figure_json(figures.pareto_figure(data, x="latency_ms")),
            "pareto3d": _figure_json(figures.pareto_3d_figure(data)),
            "progress": _figure_json(figures.progress_figure(data)),
            "fidelity": _figure_json(figures.fidelity_figure(data)),
            "importance": _figure_json(figures.importance_figure(evaluator, importances)),
        } | ({"sensitivity": _figure_json(figures.sensitivity_figure(data.sensitivity, layers=data.layers))}
             if data.sensitivity is not None else {}),
    }


def _sensitivity_summary(data: ReportData) -> dict | None:
    """What the page says about the scan: cells, failures, the subset and steps (None: no scan)."""
    table = data.sensitivity
    if table is None:
        return None
    cells = table[table["kind"] != "teacher"]
    return {"cells": len(cells), "failed": int(cells["error"].notna().sum()),
            "samples": _clean(table["samples"].max()), "steps": _clean(table["steps"].max())}


def render_report(run: Run, *, run_ref: str | None = None, data: ReportData | None = None) -> str:
    """The report of ``run`` as one HTML string."""
    import plotly.offline

    payload = report_payload(run, run_ref=run_ref or str(run.path), data=data)
    parts = {"TITLE": html.escape(f"autocompress report: {run.info['task']['name']}"), "CSS": _static("report.css"),
             "PLOTLY_JS": plotly.offline.get_plotlyjs(), "DATA": _script_json(payload), "JS": _static("report.js")}
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _static("report.html"))


def _output_path(path: Path, run_dir: Path) -> Path:
    """Check where the report goes before the report is built: a file in an existing folder, and
    never one of the run's own files (its table, study, settings or artifacts)."""
    inside = path.resolve().is_relative_to(run_dir.resolve())
    if inside and path.resolve() != (run_dir / REPORT_HTML).resolve() and (path.exists() or path.suffix != ".html"):
        raise UsageError(f"-o {path} is inside the run directory {run_dir}, where the report would replace the "
                         f"run's own files; write it to {run_dir / REPORT_HTML} or outside the run directory")
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder; give a file path, e.g. {path / REPORT_HTML}")
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: the folder {path.parent} does not exist; create it or choose another path")
    if path.exists() and not path.stat().st_mode & stat.S_IWUSR:
        raise UsageError(f"-o {path} is read-only; make it writable or choose another path")
    return path


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it; nothing is left behind
    when that fails."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a read-only file system refuses even this
            tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write the report to {path} ({exc.strerror or exc}); "
                         "choose a writable path with -o") from None


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 png_dir: str | os.PathLike | None = None) -> Path:
    """Write the report of the run in ``run_dir`` to ``out`` (default: RUN_DIR/report.html),
    atomically; with ``png_dir``, also its main plots as PNG files there."""
    run = load_run(run_dir)
    path = _output_path(Path(out) if out is not None else run.path / REPORT_HTML, run.path)
    if png_dir is not None and Path(png_dir).exists() and not Path(png_dir).is_dir():
        raise UsageError(f"--png {png_dir} is a file; give a folder for the PNG files")
    data = collect(run)
    _write_atomically(path, render_report(run, run_ref=str(run_dir), data=data))
    if png_dir is not None:
        from autocompress.reports.png import write_pngs

        try:
            write_pngs(data, png_dir)
        except OSError as exc:
            raise UsageError(f"cannot write the PNG files to {png_dir} ({exc.strerror or exc}); "
                             "choose a writable folder with --png") from None
    return path


__all__ = ["REPORT_HTML", "render_report", "report_payload", "write_report"]
