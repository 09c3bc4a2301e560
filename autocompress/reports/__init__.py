"""Reports: the interactive HTML report of a run, its plots as PNG, the live dashboard (the
exported model's card is evaluators/model_card.py)."""

from autocompress.reports.html_report import REPORT_HTML, render_report, write_report
from autocompress.reports.png import write_pngs

__all__ = ["REPORT_HTML", "render_report", "write_pngs", "write_report"]
