"""Which knobs mattered: Optuna's parameter importances, one set per objective.

Computed from the complete full-fidelity trials of ``trials.csv`` (so any storage works,
PostgreSQL included, without a connection). fANOVA (Optuna's default) up to
``FANOVA_MAX_TRIALS`` trials; above that PED-ANOVA, which takes well under a second on
thousands of trials where fANOVA takes minutes.

Example:
    >>> import pandas as pd
    >>> trials = pd.DataFrame({"accuracy": [0.9, 0.5, 0.91, 0.52], "size_bytes": [10, 10, 20, 20],
    ...                        "latency_ms": [1.0, 1.0, 1.0, 1.0], "bits/fc": [8, 2, 8, 2],
    ...                        "prune/fc": [0.0, 0.0, 0.5, 0.5]})
    >>> evaluator, found = objective_importances(trials)
    >>> evaluator, max(found["accuracy"], key=found["accuracy"].get)
    ('fANOVA', 'bits/fc')
"""

from __future__ import annotations

import warnings

import optuna
import pandas as pd

from autocompress.plan import rank_kept_share
from autocompress.search.pareto import OBJECTIVES
from autocompress.spaces.space import KNOB_PREFIXES, TECHNIQUES

FANOVA_MAX_TRIALS = 200
MIN_TRIALS = 4


def objective_importances(trials: pd.DataFrame) -> tuple[str, dict[str, dict[str, float]]]:
    """(evaluator name, {objective: {parameter: importance}}) for complete trials (rows of one
    fidelity). Empty when there are too few trials or no parameter varies."""
    knobs = [c for c in trials.columns if c.startswith(KNOB_PREFIXES)]
    rows = trials.dropna(subset=[*OBJECTIVES, *knobs])
    rows = rows.assign(**{c: pd.factorize(rows[c], sort=True)[0] for c in knobs  # a choice of words: its index
                          if not pd.api.types.is_numeric_dtype(rows[c])})
    rows = rows.assign(**{c: rows[c].map(rank_kept_share) for c in knobs  # Tucker-2 values are negative
                          if c.startswith(TECHNIQUES["lowrank"]) and pd.api.types.is_numeric_dtype(rows[c])})
    varying = [c for c in knobs if rows[c].nunique() > 1]
    if len(rows) < MIN_TRIALS or not varying:
        return "none", {}
    fanova = len(rows) <= FANOVA_MAX_TRIALS
    distributions = {c: optuna.distributions.FloatDistribution(float(rows[c].min()), float(rows[c].max()))
                     for c in varying}
    values = rows[list(OBJECTIVES)].to_numpy(float)
    params = rows[varying].to_numpy(float)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(directions=list(OBJECTIVES.values()))
    finally:
        optuna.logging.set_verbosity(verbosity)
    study.add_trials([optuna.trial.create_trial(params=dict(zip(varying, map(float, p))), distributions=distributions,
                                                values=list(map(float, v))) for p, v in zip(params, values)])
    found = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, objective in enumerate(OBJECTIVES):
            if rows[objective].nunique() < 2:
                found[objective] = {c: 0.0 for c in varying}
                continue
            evaluator = (optuna.importance.FanovaImportanceEvaluator(seed=0) if fanova
                         else optuna.importance.PedAnovaImportanceEvaluator())
            # PED-ANOVA asks which knobs set the best trials apart, so it needs to know "best"
            sign = -1.0 if OBJECTIVES[objective] == "maximize" and not fanova else 1.0
            scores = optuna.importance.get_param_importances(
                study, evaluator=evaluator, target=lambda t, i=i, s=sign: s * t.values[i], normalize=True)
            found[objective] = {k: float(v) for k, v in scores.items()}
    return ("fANOVA" if fanova else "PED-ANOVA"), found
