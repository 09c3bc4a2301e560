"""What a search tries before its sampler decides: interrupted trials run again, the warm-start
recipes (``SearchSpace.warm_start_plans``), TPE's one-technique-at-a-time start-up plans, and
the recipes moved to the kernels the sensitivity scan found faster."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import optuna

from autocompress.plan import Plan
from autocompress.search.samplers import startup_trials
from autocompress.search.searcher import WARM_START, requeue_interrupted
from autocompress.search.settings import SearchSettings
from autocompress.spaces.space import SearchSpace


def first_trials(*, study: optuna.Study, space: SearchSpace, settings: SearchSettings, trials: int,
                 progress: Callable[[str], None]) -> list[tuple[Plan, int, str]]:
    """Interrupted trials to run again, then (a new study) the warm-start recipes, a quarter of
    ``trials`` at most: (plan, rung, source)."""
    rerun = [(plan, rung, "re-run") for plan, rung in requeue_interrupted(study, settings.rungs())]
    if rerun:
        progress(f"resuming: {len(rerun)} interrupted trial(s) will run again")
    first = []
    if not study.trials and settings.warm_start:
        first += [(plan, 0, WARM_START) for plan in space.warm_start_plans()[: max(0, trials // 4)]]
    return rerun + first


def startup_plans(*, study: optuna.Study, space: SearchSpace, settings: SearchSettings, trials: int,
                  warm_starts: int) -> list[Plan]:
    """TPE's one-technique-at-a-time start (a new study only): the start-up trials the warm-start
    recipes do not already fill (TPE counts every finished trial toward its start-up), and at
    least each technique alone once."""
    if study.trials or settings.sampler != "tpe":
        return []
    count = max(len(settings.techniques), startup_trials(trials) - warm_starts)
    return space.startup_plans(count, seed=settings.seed)


def warm_starts_on(searcher, kernels: str) -> None:
    """The warm-start recipes still queued, on the kernels the scan found faster (``Plan.kernels``:
    where int8 kernels do not pay, their quantized weights run on float kernels)."""
    for i, (plan, rung) in enumerate(searcher.queue):
        moved = replace(plan, kernels=kernels)
        if searcher.sources.get((plan, rung)) == WARM_START and moved != plan:
            searcher.queue[i] = (moved, rung)
            searcher.sources[(moved, rung)] = searcher.sources.pop((plan, rung))
