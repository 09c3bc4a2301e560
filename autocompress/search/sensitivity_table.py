"""The sensitivity scan's table (``search/sensitivity.py`` measures it): its columns, the stored
``sensitivity.csv``, each cell's change against the teacher row, the whole-model int8 speeds,
and the table as text (``autocompress inspect --sensitivity``) with a verdict on whether int8
kernels pay in latency on this model. Imports no torch: the report reads it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from autocompress.errors import UsageError
from autocompress.search.rundir import SENSITIVITY_CSV
from autocompress.plan import rank_text

TEACHER = "teacher"
EVERY_LAYER_INT8 = "bits/*"  # one more cell: every layer int8 at once (do int8 kernels pay on this model?)
EVERY_LAYER_INT8_FLOAT = "bits/*float"  # and every layer's weights int8 on float kernels (Plan.kernels)
WHOLE_MODEL = (EVERY_LAYER_INT8, EVERY_LAYER_INT8_FLOAT)  # cells that are no one knob
COLUMNS = ["knob", "kind", "target", "value", "accuracy", "size_bytes", "latency_ms", "accuracy_delta",
           "size_delta_bytes", "latency_delta_ms", "latency_spread_ms", "samples", "steps", "duration_s", "sha256",
           "error"]


def with_deltas(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """The scan's table: rows in scan order, each with its deltas to the teacher row (none
    without one: NaN)."""
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    teacher = table[table["knob"] == TEACHER]
    for column, delta in (("accuracy", "accuracy_delta"), ("size_bytes", "size_delta_bytes"),
                          ("latency_ms", "latency_delta_ms")):
        reference = teacher[column].iloc[0] if len(teacher) else np.nan
        table[delta] = table[column] - reference
    return table.reset_index(drop=True)


def read_table(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The stored scan of a run (``sensitivity.csv``), or None when it has none."""
    path = Path(run_dir) / SENSITIVITY_CSV
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, dtype={"target": str, "error": str, "sha256": str}, keep_default_na=False,
                           na_values=[""]).reindex(columns=COLUMNS)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is damaged ({type(exc).__name__}); delete it and resume the search to measure "
                         "it again") from None


def write_table(run_dir: Path, table: pd.DataFrame) -> None:
    tmp = run_dir / (SENSITIVITY_CSV + ".tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, run_dir / SENSITIVITY_CSV)


def whole_model_speeds(table: pd.DataFrame) -> dict[str, float]:
    """The teacher's latency over each whole-model int8 cell's (``WHOLE_MODEL``): its speed, > 1
    faster. Cells not measured are absent.

    >>> table = pd.DataFrame({"knob": [EVERY_LAYER_INT8, EVERY_LAYER_INT8_FLOAT], "latency_ms": [2.0, 1.0],
    ...                       "latency_delta_ms": [1.0, 0.0]})
    >>> whole_model_speeds(table)
    {'bits/*': 0.5, 'bits/*float': 1.0}
    """
    rows = table[table["knob"].isin(WHOLE_MODEL) & table["latency_delta_ms"].notna()]
    return {row["knob"]: float((row["latency_ms"] - row["latency_delta_ms"]) / row["latency_ms"])
            for _, row in rows.iterrows()}


def float_kernels_pay(table: pd.DataFrame) -> bool:
    """Whether a search's quantized plans should run on float kernels (``Plan.kernels``): every layer
    int8 measured faster on float kernels than on int8 kernels by more than the two cells' spreads
    (the interquartile ranges of their latencies) together. A difference inside that noise keeps the
    int8 kernels: a cifar10-resnet20 scan that another process disturbed measured 1.030 against
    1.036 ms (spreads 0.075 and 0.116 ms) and had put a whole search on float kernels, 1.04x faster
    than the teacher where the same plans on int8 kernels ran 1.67x.

    >>> table = pd.DataFrame({"knob": [EVERY_LAYER_INT8, EVERY_LAYER_INT8_FLOAT], "latency_ms": [1.036, 1.030],
    ...                       "latency_spread_ms": [0.116, 0.075]})
    >>> float_kernels_pay(table), float_kernels_pay(table.assign(latency_ms=[2.0, 1.0])), float_kernels_pay(table[:1])
    (False, True, False)
    """
    if "latency_ms" not in table:
        return False
    rows = table[table["knob"].isin(WHOLE_MODEL)].dropna(subset=["latency_ms"]).set_index("knob")
    if not set(WHOLE_MODEL) <= set(rows.index):
        return False
    int8, on_float = rows.loc[EVERY_LAYER_INT8], rows.loc[EVERY_LAYER_INT8_FLOAT]
    spreads = (row.get("latency_spread_ms") for row in (int8, on_float))
    noise = sum(0.0 if pd.isna(spread) else float(spread) for spread in spreads)
    return float(on_float["latency_ms"]) + noise < float(int8["latency_ms"])

def _value_text(knob: str, value) -> str:
    """How a knob's value reads, e.g. int4, 37.5% pruned, 25% rank, 1 block kept, width 0.5."""
    kind = knob.partition("/")[0]
    if kind == "bits":
        return f"int{int(value)}"
    if kind == "prune":
        return f"{value:.1%} pruned"
    if kind == "rank":
        return rank_text(value)
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
    runs_on = (f"; the warm starts and predicted plans run on {'float' if float_kernels_pay(table) else 'int8'} "
               "kernels (float only where faster beyond the two cells' spreads)")
    if speed >= 1.0:
        return [f"every layer int8 runs {speed:.2f}x the teacher's speed here{float_part}: int8 kernels pay in "
                f"latency and size{runs_on}"]
    return [f"every layer int8 runs {speed:.2f}x the teacher's speed here{float_part}: int8 kernels do not pay in "
            "latency on this model (its layers are too small for them to beat float), so the search offers "
            "quantized weights on float kernels too (bits/*kernels = float: the file as small, the speed the "
            f"teacher's); pruning, ranks and the student are what make it faster{runs_on}"]


def _percent(delta: float, value: float) -> str:
    """The change as a percentage of the teacher's value (value - delta)."""
    base = value - delta
    return f"{delta / base:+.1%}" if base and not math.isnan(base) else "-"
