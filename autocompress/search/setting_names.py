"""How a setting is named to its reader: the Python keyword (``distill.steps``) and the CLI flag
(``--steps``) of each, ``SettingError`` that names one, and the wrapper that makes an error
written for the CLI name keywords to a Python caller. Imports no torch: the CLI's error path
and the readers of a run use it.
"""

from __future__ import annotations

import functools
import re
from typing import Callable

from autocompress.errors import UsageError

# keyword (as SettingError names it) -> the CLI flag that sets it
FLAGS = {"distill.steps": "--steps", "distill.lr": "--lr", "distill.feature_weight": "--feature-distill",
         "distill.warmup_fraction": "--warmup", "distill.augment": "--no-augment", "distill.amp": "--amp",
         "warm_start": "--no-warm-start", "sensitivity": "--no-sensitivity", "local_search": "--no-local-search", "guide": "--no-guide", "proposals": "--proposals", "budget.max_size_bytes": "--max-size",
         "budget.max_latency_ms": "--max-latency", "budget.min_accuracy": "--min-accuracy",
         "trial_timeout_s": "--trial-timeout", "time_budget_s": "--time-budget"}


class SettingError(UsageError):
    """A bad setting: ``name`` is the keyword, ``problem`` what is wrong with it and the fix."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name} {problem}")
        self.name, self.problem = name, problem


def flag_for(name: str) -> str:
    """The CLI flag of a setting keyword.

    >>> flag_for("distill.steps"), flag_for("min_steps")
    ('--steps', '--min-steps')
    """
    return FLAGS.get(name, "--" + name.rpartition(".")[2].replace("_", "-"))


def keyword_for(flag: str) -> str:
    """The Python keyword a CLI flag sets (``settings.flag_for`` the other way round).

    >>> keyword_for("--data-dir"), keyword_for("--steps"), keyword_for("--resume"), keyword_for("--no-sensitivity")
    ('data_dir', 'distill.steps', 'resume=True', 'sensitivity=False')
    """
    named = {value: key for key, value in FLAGS.items()}
    if flag in named:
        return named[flag] + ("=False" if flag.startswith("--no-") else "")
    if flag.startswith("--no-"):
        return flag[len("--no-"):].replace("-", "_") + "=False"
    return flag[2:].replace("-", "_") + ("=True" if flag in SWITCHES else "")


SWITCHES = ("--resume",)  # flags without a value: said as keyword=True


def for_python(message: str) -> str:
    """A message written for the CLI as a Python caller reads it: every ``--flag`` as its keyword.

    >>> for_python("--out runs/x already holds a run; add --resume to continue it, or choose a new --out")
    'out runs/x already holds a run; add resume=True to continue it, or choose a new out'
    """
    return re.sub(r"(?<![\w-])--[a-z][a-z0-9-]*", lambda match: keyword_for(match.group(0)), message)


def spoken_to_python(function: Callable) -> Callable:
    """``function`` as the Python API offers it: the UsageError it raises names keywords, not flags."""
    @functools.wraps(function)
    def spoken(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except UsageError as exc:
            exc.args = (for_python(str(exc)),)
            raise
    return spoken
