"""Proposers: who chooses each new plan a search tries. They take turns, in the order below.

A proposer is any object with a ``name`` (stored as each of its trials' ``source``) and
``propose(history) -> Plan | None`` (``history.History``: the space, the finished trials, the
plans running now, the budget, the teacher); None means it has nothing to propose this turn,
and the sampler's turn (``startup``) is taken instead: its start-up plans while it has any,
then the study's sampler (Optuna's ``ask``). A proposer must never return a plan ``history``
says was tried. Each module below has ``make(options)``: the proposer the search's settings and
scan ask for, or None when it is off (``ProposerOptions``).

To add a proposer: a new module here with its class and ``make``, and one line in ``REGISTERED``;
``tests/search/test_proposers.py`` runs the contract on every registered proposer.

Example (the turns of a search with the default settings and no scan):
    >>> from autocompress.search.settings import SearchSettings
    >>> [p.name for p in turns(ProposerOptions(settings=SearchSettings(), scan=None, startup=[]))]
    ['startup', 'mutation']
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from autocompress.plan import Plan
from autocompress.search.proposers.history import History

if TYPE_CHECKING:
    from autocompress.search.proposals import Predictor
    from autocompress.search.settings import SearchSettings

# The turn order: each module's ``make(options)`` gives its proposer or None. "startup" is the
# sampler's turn and must stay (it is the fallback of every other turn).
REGISTERED = (
    "predictor",  # the scan's predictor (--proposals)
    "startup",  # TPE's start-up plans, then the study's sampler
    "local_search",  # neighbours of the measured front (--local-search)
)


class Proposer(Protocol):
    name: str

    def propose(self, history: History) -> Plan | None: ...


@dataclass(frozen=True)
class ProposerOptions:
    """What a proposer is made from: the search's settings, the sensitivity scan's predictor
    (None without the scan) and the start-up plans of a new study."""

    settings: SearchSettings
    scan: Predictor | None
    startup: list[Plan] = field(default_factory=list)


def turns(options: ProposerOptions) -> list[Proposer]:
    """The proposers that are on, in turn order."""
    made = [importlib.import_module(f"{__name__}.{module}").make(options) for module in REGISTERED]
    return [proposer for proposer in made if proposer is not None]


def next_plan(turn: list[Proposer], number: int, history: History) -> tuple[str, Plan | None]:
    """The ``number``-th new plan (from 1) and its source: the turn's proposer's, or the sampler
    turn's when it has none (None: the study's sampler chooses, source "sampler")."""
    proposer = turn[(number - 1) % len(turn)]
    plan = proposer.propose(history)
    if plan is not None:
        return proposer.name, plan
    fallback = next((p for p in turn if p.name == "startup"), None)
    plan = None if fallback is None or fallback is proposer else fallback.propose(history)
    return ("startup", plan) if plan is not None else ("sampler", None)
