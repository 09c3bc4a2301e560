r"""MODEL_CARD.md for an exported model: teacher vs chosen model, the per-layer plan, and how
and where every number was measured. ``Run.export`` writes it (see autocompress/search/best.py).

Strings that come from the user or the run (task, layer and stage names, the machine, how the
model was chosen) are escaped, so that they read as text and never as Markdown or HTML:

    >>> print(escape("<script>alert(1)</script> *bold* | cell_name"))
    &lt;script&gt;alert(1)&lt;/script&gt; \*bold\* \| cell\_name
"""

from __future__ import annotations

import html
import re

from autocompress.plan import rank_kept_text

_MARKDOWN = re.compile(r"([\\`*_{}\[\]#!|~])")  # with [ escaped, no ( ) can make a link


def escape(text: object) -> str:
    """``text`` as literal Markdown: HTML characters as entities, Markdown punctuation
    backslash-escaped, line breaks as spaces (a table row or heading stays one line)."""
    return _MARKDOWN.sub(r"\\\1", html.escape(" ".join(str(text).split()), quote=False))


def _ratio(teacher: float, model: float) -> str:
    return f"{teacher / model:.2f}x" if model else "-"


def model_card(run: dict, report: dict) -> str:
    """The card's Markdown, from run.json (``run``) and an export's metrics.json (``report``)."""
    teacher, measured, recorded = report["teacher"], report["measured"], report["recorded"]
    plan, task = report["plan"], run.get("task", {})
    lines = [
        f"# {escape(task.get('name', '?'))}: trial {report['trial']}, compressed by autocompress",
        "",
        f"Chosen: {escape(report.get('chosen') or 'not recorded')}.",
        "",
        "| | teacher | this model | ratio |",
        "|---|---|---|---|",
        f"| accuracy, validation split | {teacher['accuracy']:.4f} | {measured['accuracy_val']:.4f} | "
        f"{(measured['accuracy_val'] - teacher['accuracy']) * 100:+.2f} pt |",
        f"| accuracy, test split (never seen by the search) | {teacher['accuracy_test']:.4f} | "
        f"{measured['accuracy_test']:.4f} | {(measured['accuracy_test'] - teacher['accuracy_test']) * 100:+.2f} pt |",
        f"| size of the ONNX file | {teacher['size_bytes']:,} B | {measured['size_bytes']:,} B | "
        f"{_ratio(teacher['size_bytes'], measured['size_bytes'])} smaller |",
        f"| latency, batch 1 (median), both measured now side by side | {teacher['latency_ms_now']:.4f} ms | "
        f"{measured['latency_ms']:.4f} ms | {_ratio(teacher['latency_ms_now'], measured['latency_ms'])} faster |",
        "",
        f"Recorded during the search: accuracy {recorded['accuracy_val']:.4f}, {recorded['size_bytes']:,} B, "
        f"{recorded['latency_ms']:.4f} ms (teacher {teacher['latency_ms']:.4f} ms). {report['latency_note']}.",
        "",
        "## Student architecture and per-layer plan",
        "",
        f"Width multiplier {plan['width']:g}; blocks kept per stage: "
        + (", ".join(f"{escape(s)} {d}" for s, d in plan["depth"].items()) or "all")
        + f"; pruning importance {escape(plan['importance'])}.",
        "",
        "| layer / group | pruned | weight bits | rank kept |",
        "|---|---|---|---|",
    ]
    for name, layer in sorted(plan["layers"].items()):
        rank = rank_kept_text(layer["rank"], layer.get("decomposition", "svd"))
        lines.append(f"| {escape(name)} | {layer['prune']:.0%} | {layer['bits'] or 'float32'} | {rank} |")
    lines += [
        "",
        "Layers not listed are unchanged. Quantized layers store their weights as INT8/INT4/INT2 "
        "initializers (symmetric, per output channel; INT4/INT2 widened to INT8 once when ONNX Runtime "
        "loads the file) feeding DequantizeLinear; they read uint8 activations, each tensor quantized once "
        "where it is produced.",
        "",
        *_measurement_notes(run, task, report),
    ]
    return "\n".join(lines)


def _measurement_notes(run: dict, task: dict, report: dict) -> list[str]:
    latency, machine = run.get("settings", {}).get("latency", {}), run.get("machine", {})

    def get(mapping: dict, key: str) -> str:
        return escape(mapping.get(key, "not recorded"))

    return [
        "## How the numbers were measured",
        "",
        "- Size: bytes of `model.onnx` itself.",
        f"- Latency: {get(latency, 'runtime')}, {get(latency, 'threads')} intra-op thread(s), batch "
        f"{get(latency, 'batch')}, {get(latency, 'warmup')} warm-up runs, median of {get(latency, 'runs')} runs. "
        f"Search measurements: {escape(latency.get('where', 'here'))}; the export's re-measurement: the machine "
        "that ran the export.",
        f"- Accuracy: the task metric of `model.onnx` run in ONNX Runtime over the validation split "
        f"({get(task, 'val')} examples) and the test split ({get(task, 'test')} examples).",
        f"- Fine-tuning before export: {escape(report['fidelity'])} (distillation from the teacher).",
        f"- Machine of the search: {get(machine, 'processor')}, {get(machine, 'cpus')} CPUs, "
        f"{get(machine, 'platform')}.",
        "- Libraries: " + (", ".join(f"{escape(k)} {escape(v)}" for k, v in run.get("versions", {}).items())
                           or "not recorded") + ".",
        "",
    ]
