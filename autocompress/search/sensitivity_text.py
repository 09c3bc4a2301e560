"""The sensitivity table as text (``autocompress inspect --sensitivity``): one line per cell,
and a verdict on whether int8 kernels pay in latency on this model."""

from __future__ import annotations

import math

import pandas as pd

from autocompress.search.sensitivity import EVERY_LAYER_INT8, EVERY_LAYER_INT8_FLOAT, TEACHER, whole_model_speeds


def _value_text(knob: str, value) -> str:
    """How a knob's value reads, e.g. int4, 37.5% pruned, 25% rank, 1 block kept, width 0.5."""
    kind = knob.partition("/")[0]
    if kind == "bits":
        return f"int{int(value)}"
    if kind == "prune":
        return f"{value:.1%} pruned"
    if kind == "rank":
        return f"{value:.0%} rank"
    if knob.startswith("arch/depth/"):
        return f"{int(value)} block{'s' * (int(value) != 1)} kept"
    return f"width {value:g}"


def format_table(table: pd.DataFrame) -> str:
    """One line per cell: the accuracy on the subset and its change, size and latency changes."""
    teacher = table[table["knob"] == TEACHER]
    lines = []
    if len(teacher) and isinstance(teacher.iloc[0]["error"], str):
        lines.append(f"teacher: FAILED: {teacher.iloc[0]['error'][:200]} (no cell can be compared with it)")
    elif len(teacher):
        t, steps = teacher.iloc[0], int(table["steps"].max())
        lines.append(f"teacher: accuracy {t['accuracy']:.4f} on the first {int(t['samples'])} validation samples, "
                     f"{int(t['size_bytes']):,} B, {t['latency_ms']:.4f} ms; each cell calibrated"
                     + (f" and fine-tuned {steps} steps" if steps else " (no fine-tuning)"))
    lines.append(f"  {'knob':<32} {'value':<14} {'accuracy':>8} {'change':>9} {'size':>9} {'latency':>9}")
    lines.append(f"  {'':<32} {'':<14} {'':>8} {'':>9} {'change':>9} {'change':>9}")
    for _, row in table[table["knob"] != TEACHER].iterrows():
        knob = {EVERY_LAYER_INT8: "every layer", EVERY_LAYER_INT8_FLOAT: "every layer, float kernels"}.get(
            row["knob"], row["knob"])
        value = _value_text(row["knob"], row["value"])
        if isinstance(row["error"], str) and row["error"]:
            lines.append(f"  {knob:<32} {value:<14} FAILED: {row['error'][:160]}")
            continue
        lines.append(f"  {knob:<32} {value:<14} {row['accuracy']:>8.4f} {row['accuracy_delta'] * 100:>+6.1f} pt "
                     f"{_percent(row['size_delta_bytes'], row['size_bytes']):>9} "
                     f"{_percent(row['latency_delta_ms'], row['latency_ms']):>9}")
    return "\n".join(lines + _int8_verdict(table))


def _int8_verdict(table: pd.DataFrame) -> list[str]:
    """A line on whether int8 kernels pay in latency on this model (the whole-model int8 rows)."""
    speeds = whole_model_speeds(table)
    if EVERY_LAYER_INT8 not in speeds:
        return []
    speed = speeds[EVERY_LAYER_INT8]
    on_float = speeds.get(EVERY_LAYER_INT8_FLOAT)
    float_part = "" if on_float is None else f"; its int8 weights on float kernels run {on_float:.2f}x"
    if speed >= 1.0:
        return [f"every layer int8 runs {speed:.2f}x the teacher's speed here{float_part}: int8 kernels pay in "
                "latency and size"]
    return [f"every layer int8 runs {speed:.2f}x the teacher's speed here{float_part}: int8 kernels do not pay in "
            "latency on this model (its layers are too small for them to beat float), so the search offers "
            "quantized weights on float kernels too (bits/*kernels = float: the file as small, the speed the "
            "teacher's); pruning, ranks and the student are what make it faster"]


def _percent(delta: float, value: float) -> str:
    """The change as a percentage of the teacher's value (value - delta)."""
    base = value - delta
    return f"{delta / base:+.1%}" if base and not math.isnan(base) else "-"
