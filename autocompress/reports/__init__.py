"""Reports: the model card of an exported model (the HTML report comes with its own issue)."""

from autocompress.reports.model_card import model_card

__all__ = ["model_card"]
