"""The scan's predictor proposes (``--proposals``): of the plans along its predicted front not
tried yet, the one predicted to add most hypervolume to the top rung's measured front
(``proposals.propose``), refit on the finished trials first."""

from __future__ import annotations

import pandas as pd

from autocompress.plan import Plan
from autocompress.search.proposals import Predictor, propose
from autocompress.search.proposers.history import History

PROPOSALS_CONSIDERED = 200  # plans along the predicted front looked through for one not tried


class PredictorProposer:
    name = "predictor"

    def __init__(self, predictor: Predictor):
        self.predictor = predictor  # immutable: each refit makes a new one

    def propose(self, history: History) -> Plan | None:
        self.predictor = history.refit(self.predictor)
        front = pd.DataFrame([record.metrics for _, record in history.on_top()])
        return propose(self.predictor, space=history.space, tried=history.tried(), front=front,
                       count=PROPOSALS_CONSIDERED)


def make(options) -> PredictorProposer | None:
    """With ``--proposals`` (which needs the scan)."""
    return PredictorProposer(options.scan) if options.settings.proposals and options.scan else None
