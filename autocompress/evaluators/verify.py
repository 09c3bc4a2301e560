"""Verified export: copy a candidate's artifact and measure the copy again.

Size comes from the file, latency from ONNX Runtime here (same settings as the search; the
teacher is measured again too, so the speed-up can be compared even when the machine differs),
accuracy from the validation split (as recorded) and from the held-out test split, which the
search never saw: selection on validation makes the validation number optimistic, the test
number is the honest one.

Example:
    >>> report = export_candidate(task, run, candidate, "shipped/")            # doctest: +SKIP
    >>> report["measured"]["size_bytes"] == report["recorded"]["size_bytes"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from autocompress.evaluators.evaluate import local_latency, measure_artifact
from autocompress.evaluators.measure import onnx_metric, onnx_session, size_bytes
from autocompress.task import Task

LATENCY_TOLERANCE = 0.10  # relative difference always treated as noise, on top of the run's own spread


def latency_verdict(recorded_ms: float, measured_ms: float, relative_noise: float) -> tuple[bool, str]:
    """(within noise?, sentence). Beyond max(3x the run's spread, 10%) counts as different.

    >>> latency_verdict(1.0, 1.05, 0.01)[0], latency_verdict(1.0, 1.5, 0.01)[0]
    (True, False)
    """
    allowed = max(3 * relative_noise, LATENCY_TOLERANCE)
    change = measured_ms / recorded_ms - 1
    if abs(change) <= allowed:
        return True, f"latency {measured_ms:.4f} ms vs {recorded_ms:.4f} ms recorded ({change:+.1%}): within noise"
    return False, (f"latency {measured_ms:.4f} ms vs {recorded_ms:.4f} ms recorded ({change:+.1%}) differs beyond "
                   f"the noise recorded for the run (+/-{allowed:.0%}): a different machine, or a busy one?")


def export_candidate(task: Task, run, candidate, out_dir: str | Path) -> dict:
    """Write model.onnx, plan.json and metrics.json (recorded vs measured) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(candidate.artifact, out / "model.onnx")
    (out / "plan.json").write_text(candidate.plan.to_json())
    path = str(out / "model.onnx")
    val, latency, spread = measure_artifact(task, path, split="val")
    test = onnx_metric(onnx_session(path), task.test, task.metric)
    teacher_path = str(run.path / "teacher" / "model.onnx")
    teacher_test = onnx_metric(onnx_session(teacher_path), task.test, task.metric)
    teacher_latency = local_latency(teacher_path, task.example_inputs)[0]
    noise = run.info.get("latency_noise", {}).get("relative_spread", 0.0)
    ok, sentence = latency_verdict(candidate.latency_ms, latency, noise)
    report = {
        "trial": candidate.number,
        "recorded": {"accuracy_val": candidate.accuracy, "size_bytes": candidate.size_bytes,
                     "latency_ms": candidate.latency_ms},
        "measured": {"accuracy_val": val, "accuracy_test": test, "size_bytes": size_bytes(path),
                     "latency_ms": latency, "latency_iqr_ms": spread},
        "teacher": {**{k: run.info["teacher"][k] for k in ("accuracy", "size_bytes", "latency_ms")},
                    "accuracy_test": teacher_test, "latency_ms_now": teacher_latency},
        "speedup": {"recorded": run.info["teacher"]["latency_ms"] / candidate.latency_ms,
                    "now": teacher_latency / latency},
        "latency_within_noise": ok,
        "latency_note": sentence,
        "fidelity": candidate.metrics.fidelity,
        "plan": candidate.plan.to_dict(),
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
