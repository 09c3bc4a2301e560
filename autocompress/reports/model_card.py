"""MODEL_CARD.md for an exported model: teacher vs chosen model, the per-layer plan, and how
and where every number was measured.

Example:
    >>> text = model_card(run_info, report)                                   # doctest: +SKIP
    >>> text.splitlines()[0]                                                  # doctest: +SKIP
    '# digits: trial 18, compressed by autocompress'
"""

from __future__ import annotations


def _ratio(teacher: float, model: float) -> str:
    return f"{teacher / model:.2f}x" if model else "-"


def model_card(run: dict, report: dict, *, budget: str = "no budget") -> str:
    teacher, measured, recorded = report["teacher"], report["measured"], report["recorded"]
    plan = report["plan"]
    latency = run["settings"]["latency"]
    machine = run["machine"]
    lines = [
        f"# {run['task']['name']}: trial {report['trial']}, compressed by autocompress",
        "",
        f"Chosen from the run's full-fidelity results under: {budget}.",
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
        + (", ".join(f"{s} {d}" for s, d in plan["depth"].items()) or "all")
        + f"; pruning importance {plan['importance']}.",
        "",
        "| layer / group | pruned | weight bits | rank kept |",
        "|---|---|---|---|",
    ]
    for name, layer in sorted(plan["layers"].items()):
        rank = "full" if layer["rank"] is None else f"{layer['rank']:.0%}"
        lines.append(f"| `{name}` | {layer['prune']:.0%} | {layer['bits'] or 'float32'} | {rank} |")
    lines += [
        "",
        "Layers not listed are unchanged. Quantized layers store their weights as INT8/INT4/INT2 "
        "initializers (symmetric, per output channel) feeding DequantizeLinear, with uint8 "
        "activations around them.",
        "",
        "## How the numbers were measured",
        "",
        "- Size: bytes of `model.onnx` itself.",
        f"- Latency: {latency['runtime']}, {latency['threads']} intra-op thread(s), batch {latency['batch']}, "
        f"{latency['warmup']} warm-up runs, median of {latency['runs']} runs. Search measurements: "
        f"{latency.get('where', 'here')}; the export's re-measurement: the machine that ran `autocompress best`.",
        f"- Accuracy: the task metric of `model.onnx` run in ONNX Runtime over the validation split "
        f"({run['task']['val']} examples) and the test split ({run['task']['test']} examples).",
        f"- Fine-tuning before export: {report['fidelity']} (distillation from the teacher).",
        f"- Machine of the search: {machine['processor']}, {machine['cpus']} CPUs, {machine['platform']}.",
        "- Libraries: " + ", ".join(f"{k} {v}" for k, v in run["versions"].items()) + ".",
        "",
    ]
    return "\n".join(lines)
