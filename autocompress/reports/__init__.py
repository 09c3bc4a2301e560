"""Reports: the interactive HTML report of a run, its plots as PNG, the live dashboard, and the
model card of an exported model."""

from autocompress.reports.html_report import REPORT_HTML, render_report, write_report
from autocompress.reports.model_card import model_card
from autocompress.reports.png import write_pngs

__all__ = ["REPORT_HTML", "model_card", "render_report", "write_pngs", "write_report"]
