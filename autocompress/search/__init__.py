"""Search: the controller, Pareto utilities and the run directory."""

from autocompress.search.controller import SAMPLERS, SearchResult, front_table, make_sampler, search
from autocompress.search.pareto import OBJECTIVES, pareto_front, pareto_mask

__all__ = ["OBJECTIVES", "SAMPLERS", "SearchResult", "front_table", "make_sampler", "pareto_front",
           "pareto_mask", "search"]
