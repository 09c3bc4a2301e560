"""The Optuna samplers a search can use (``--sampler``), and how long TPE explores first.

Example:
    >>> startup_trials(40), startup_trials(4), startup_trials(400)
    (10, 3, 10)
    >>> type(make_sampler("nsga2", seed=0, trials=40)).__name__
    'NSGAIISampler'
"""

from __future__ import annotations

import warnings

import optuna

from autocompress.search.settings import SAMPLERS, SettingError


def startup_trials(trials: int) -> int:
    """Exploratory trials before TPE models the results."""
    return max(3, min(10, trials // 4))


def make_sampler(name: str, *, seed: int | None, trials: int) -> optuna.samplers.BaseSampler:
    """tpe: multi-objective TPE after a few random trials; nsga2: NSGA-II with a population sized
    to give several generations; random: uniform random sampling."""
    if name not in SAMPLERS:
        raise SettingError("sampler", f"{name!r} is unknown; choose one of: {', '.join(SAMPLERS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(trials), multivariate=True)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 4)))
    return optuna.samplers.RandomSampler(seed=seed)
