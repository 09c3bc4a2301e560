"""Search: the controller, its settings, Pareto utilities and the run directory.

Its names are imported on first use (PEP 562): a Ray worker importing ``search.worker`` does not
load the controller, Optuna and pandas.
"""

import importlib

_HOMES = {"SearchResult": "controller", "front_table": "text_tables", "make_sampler": "samplers",
          "search": "controller", "OBJECTIVES": "pareto", "pareto_front": "pareto", "pareto_mask": "pareto",
          "SAMPLERS": "settings", "Execution": "settings", "SearchSettings": "settings", "SettingError": "settings"}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'autocompress.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"autocompress.search.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = sorted(_HOMES)
