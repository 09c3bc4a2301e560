"""Search: the controller, its settings, Pareto utilities and the run directory.

Its names are imported on first use (PEP 562): a Ray worker importing ``search.worker`` does not
load the controller, Optuna and pandas.
"""

from autocompress.lazy import first_use

_HOMES = {"SearchResult": "controller", "front_table": "text_tables", "make_sampler": "samplers",
          "search": "controller", "OBJECTIVES": "pareto", "pareto_front": "pareto", "pareto_mask": "pareto",
          "SAMPLERS": "settings", "Execution": "settings", "SearchSettings": "settings", "SettingError": "settings"}

__getattr__, __dir__ = first_use(__name__, _HOMES)
__all__ = sorted(_HOMES)
