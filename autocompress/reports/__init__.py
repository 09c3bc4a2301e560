"""Reports: the interactive HTML report of a run, its plots as PNG, the live dashboard (the
exported model's card is evaluators/model_card.py).

Its names are imported on first use (PEP 562): ``best`` reading ``reports.layer_plan`` does not
load the report's plotting stack.
"""

import importlib

_HOMES = {"REPORT_HTML": "html_report", "render_report": "html_report", "write_report": "html_report",
          "write_pngs": "png"}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'autocompress.reports' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"autocompress.reports.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = sorted(_HOMES)
