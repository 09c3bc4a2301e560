"""Reports: the interactive HTML report of a run, its plots as PNG, the live dashboard (the
exported model's card is evaluators/model_card.py).

Its names are imported on first use (PEP 562): ``best`` reading ``reports.layer_plan`` does not
load the report's plotting stack.
"""

from autocompress.lazy import first_use

_HOMES = {"REPORT_HTML": "html_report", "render_report": "html_report", "write_report": "html_report",
          "write_pngs": "png"}

__getattr__, __dir__ = first_use(__name__, _HOMES)
__all__ = sorted(_HOMES)
