"""Search: the controller, its settings, Pareto utilities and the run directory."""

from autocompress.search.controller import SearchResult, front_table, make_sampler, search
from autocompress.search.pareto import OBJECTIVES, pareto_front, pareto_mask
from autocompress.search.settings import SAMPLERS, Execution, SearchSettings, SettingError

__all__ = ["OBJECTIVES", "SAMPLERS", "Execution", "SearchResult", "SearchSettings", "SettingError", "front_table",
           "make_sampler", "pareto_front", "pareto_mask", "search"]
