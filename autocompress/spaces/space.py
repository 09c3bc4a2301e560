"""The joint search space: pruning x bit-width x rank x student architecture, one Optuna study.

Parameter names are stable and readable: ``prune/<group>``, ``bits/<layer>``, ``bits/*kernels``
(what the quantized layers run on: int8 or float kernels, ``Plan.kernels``), ``rank/<layer>``
(the fraction of the rank kept, 1.0 = not factorized; negative for Tucker-2: -0.5 keeps half of
a convolution's input and output channels in its core, ``plan.rank_knob``),
``arch/depth/<stage>``, ``arch/width``, and one gate per technique, ``use/<technique>`` (1 or
0): a plan applies a technique's knobs only when its gate is 1. The gates let the sampler learn
in a few trials what a technique does on this model as a whole (say, that any quantized layer
makes a small transformer slower), which per-layer knobs alone take hundreds of trials to
show. The parameter set is fixed for a whole run: knobs of a block the student drops, or of a
technique gated off, are sampled but inactive (Optuna's NSGA-II and TPE need a fixed space).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from autocompress.spaces.layers import discover
    >>> net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    >>> space = SearchSpace(discover(net, torch.randn(1, 16)))
    >>> space.param_names()[:7]
    ['arch/width', 'bits/*kernels', 'bits/0', 'bits/2', 'prune/0', 'rank/0', 'rank/2']
    >>> space.param_names()[7:]
    ['use/lowrank', 'use/prune', 'use/quant', 'use/student']
    >>> space.plan_from_params({"prune/0": 0.5, "bits/0": 8, "use/prune": 1, "use/quant": 1}).layer("0")
    LayerPlan(prune=0.5, bits=8, rank=None, decomposition='svd')
    >>> space.plan_from_params({"prune/0": 0.5, "bits/0": 8, "use/prune": 1, "use/quant": 0}).layer("0")
    LayerPlan(prune=0.5, bits=None, rank=None, decomposition='svd')
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import optuna

from autocompress.plan import KERNELS, LayerPlan, Plan, rank_from_knob, rank_knob

if TYPE_CHECKING:  # only named in annotations: the space itself needs no torch (a run is read without it)
    from autocompress.spaces.layers import Discovery

FLOAT_BITS = 32  # the ``bits/`` value meaning "not quantized"
BIT_CHOICES = (FLOAT_BITS, 8, 4, 2)
PRUNE_MAX, PRUNE_STEP = 0.75, 0.125
WIDTH_MIN, WIDTH_STEP = 0.5, 0.25


TECHNIQUES = {"prune": "prune/", "quant": "bits/", "lowrank": "rank/", "student": "arch/"}
GATE_PREFIX = "use/"  # use/<technique>: 1 = apply its knobs, 0 = leave them at the teacher's
KNOB_PREFIXES = (*TECHNIQUES.values(), GATE_PREFIX)  # every search parameter starts with one
# a knob's value that leaves the teacher as it is (the depth knobs': all blocks, their upper bound)
KERNELS_KNOB = "bits/*kernels"  # "int8" or "float": what quantized conv/linear layers run on (Plan.kernels)
TEACHER_VALUES = {"prune/": 0.0, KERNELS_KNOB: KERNELS[0], "bits/": FLOAT_BITS, "rank/": 1.0, "arch/width": 1.0}


def techniques_used(plan: Plan) -> set[str]:
    """Which techniques a plan applies.

    >>> sorted(techniques_used(Plan(layers={"fc": LayerPlan(bits=8, prune=0.5)})))
    ['prune', 'quant']
    """
    used = set()
    for _, layer in plan.layers:
        used |= {name for name, on in (("prune", layer.prune > 0), ("quant", layer.bits is not None),
                                       ("lowrank", layer.rank not in (None, 1.0))) if on}
    if plan.width != 1.0 or plan.depth:
        used.add("student")
    return used


@dataclass(frozen=True)
class SearchSpace:
    """The knobs of one model: ``distributions()`` for Optuna (``study.ask(fixed_distributions=...)``),
    ``plan_from_params`` for the Plan a trial's values describe.

    techniques: the knob families searched (default all: one joint space); the others stay at
    the teacher's (no pruning, float weights, full rank, the teacher's architecture).
    """

    discovery: Discovery
    importance: str = "l1"
    techniques: tuple[str, ...] = tuple(TECHNIQUES)

    def __post_init__(self):
        unknown = set(self.techniques) - set(TECHNIQUES)
        if unknown or not self.techniques:
            raise ValueError(f"techniques must be a non-empty subset of {', '.join(TECHNIQUES)}; got "
                             f"{', '.join(self.techniques) or 'none'}")

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        dists = self._all_distributions()
        prefixes = tuple(TECHNIQUES[t] for t in self.techniques)
        knobs = {name: dist for name, dist in dists.items() if name.startswith(prefixes)}
        if len(self.techniques) > 1:  # gates only where there is a choice between techniques
            used = {t for t in self.techniques if any(n.startswith(TECHNIQUES[t]) for n in knobs)}
            knobs |= {f"{GATE_PREFIX}{t}": optuna.distributions.CategoricalDistribution((1, 0)) for t in used}
        return dict(sorted(knobs.items()))

    def _all_distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        d = optuna.distributions
        dists: dict[str, d.BaseDistribution] = {}
        if self.discovery.groups:
            dists["arch/width"] = d.FloatDistribution(WIDTH_MIN, 1.0, step=WIDTH_STEP)
        for stage, blocks in self.discovery.stages.items():
            dists[f"arch/depth/{stage}"] = d.IntDistribution(0, len(blocks))
        for group in self.discovery.groups:
            dists[f"prune/{group.name}"] = d.FloatDistribution(0.0, PRUNE_MAX, step=PRUNE_STEP)
        if any(layer.kind in ("conv", "linear") for layer in self.discovery.layers):
            dists[KERNELS_KNOB] = d.CategoricalDistribution(KERNELS)
        for layer in self.discovery.layers:
            dists[f"bits/{layer.name}"] = d.CategoricalDistribution(BIT_CHOICES)
            if layer.rank_ratios:
                dists[f"rank/{layer.name}"] = d.CategoricalDistribution((1.0, *layer.rank_ratios))
        return dict(sorted(dists.items()))

    def param_names(self) -> list[str]:
        return list(self.distributions())

    def plan_from_params(self, params: dict[str, Any]) -> Plan:
        unknown = set(params) - set(self.distributions())
        if unknown:
            raise ValueError(f"parameters {sorted(unknown)} are not in this search space")
        return self.applied(plan_from_params(params, layers=[layer.name for layer in self.discovery.layers],
                                             stages=list(self.discovery.stages), importance=self.importance))

    def applied(self, plan: Plan) -> Plan:
        """``plan`` as it acts on the model: knobs of layers in dropped blocks removed (and the
        pruning of a group whose layers are all dropped), depths that keep every block removed.
        Two plans that build the same model are then equal.

        >>> import torch
        >>> from torch import nn
        >>> from autocompress.spaces.layers import discover
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4)), nn.Linear(4, 2))
        >>> space = SearchSpace(discover(net, torch.randn(1, 4), blocks=["1"]))
        >>> plan = Plan(layers={"1.0": LayerPlan(bits=4), "2": LayerPlan(bits=8)}, depth={"1": 0})
        >>> space.applied(plan) == Plan(layers={"2": LayerPlan(bits=8)}, depth={"1": 0})
        True
        >>> space.applied(Plan(depth={"1": 1})) == Plan()
        True
        """
        stages = self.discovery.stages
        depth = {stage: kept for stage, kept in plan.depth if kept < len(stages.get(stage, ()))}
        dropped = tuple(f"{block}." for stage, blocks in stages.items()
                        for block in blocks[plan.blocks_kept(stage, len(blocks)):])
        if not dropped:
            return replace(plan, layers=dict(plan.layers), depth=depth)
        all_dropped = {g.name for g in self.discovery.groups if all(m.startswith(dropped) for m in g.members)}
        layers = {}
        for name, layer in plan.layers:
            gone = name.startswith(dropped)
            prune = 0.0 if name in all_dropped or (gone and not self._names_group(name)) else layer.prune
            layers[name] = LayerPlan(prune=prune, **({} if gone else {"bits": layer.bits, "rank": layer.rank,
                                                                      "decomposition": layer.decomposition}))
        return replace(plan, layers=layers, depth=depth)

    def _names_group(self, name: str) -> bool:
        return any(g.name == name for g in self.discovery.groups)

    def params_from_plan(self, plan: Plan) -> dict[str, Any]:
        """The parameter values that describe ``plan`` (for enqueueing known plans)."""
        return params_of_plan(plan, self.distributions())

    def summary(self) -> dict[str, Any]:
        """A JSON-able description (stored in run.json; a resumed run must match it)."""
        return {name: repr(dist) for name, dist in self.distributions().items()}


def params_of_plan(plan: Plan, distributions: dict[str, optuna.distributions.BaseDistribution]) -> dict[str, Any]:
    """The values of the parameters in ``distributions`` that describe ``plan`` (a gate is 1
    when the plan uses its technique).

    >>> dists = {"bits/fc": optuna.distributions.CategoricalDistribution((32, 8)),
    ...          "arch/depth/s1": optuna.distributions.IntDistribution(0, 3), "use/quant": None}
    >>> params_of_plan(Plan(layers={"fc": LayerPlan(bits=8)}), dists)
    {'bits/fc': 8, 'arch/depth/s1': 3, 'use/quant': 1}
    """
    used = techniques_used(plan)
    params: dict[str, Any] = {}
    for name in distributions:
        kind, _, target = name.partition("/")
        if name.startswith(GATE_PREFIX):
            params[name] = int(target in used)
        elif name == "arch/width":
            params[name] = plan.width
        elif name == KERNELS_KNOB:
            params[name] = plan.kernels
        elif kind == "arch":
            params[name] = dict(plan.depth).get(target.removeprefix("depth/"), distributions[name].high)
        elif kind == "prune":
            params[name] = plan.layer(target).prune
        elif kind == "bits":
            params[name] = plan.layer(target).bits or FLOAT_BITS
        elif kind == "rank":
            params[name] = rank_knob(plan.layer(target))
    return params


def applied_params(params: dict[str, Any], distributions: dict[str, optuna.distributions.BaseDistribution],
                   plan: Plan | None = None) -> dict[str, Any]:
    """The knob values a trial's plan applies: a knob of a technique gated off reads as the
    teacher's value (no pruning, float, full rank, full width and depth), not the value sampled;
    given the trial's (applied) ``plan``, every knob reads as the plan has it (so a knob of a
    block the student drops reads as the teacher's too); gates read as sampled.

    >>> dists = {"bits/fc": optuna.distributions.CategoricalDistribution((32, 8)),
    ...          "arch/depth/s1": optuna.distributions.IntDistribution(0, 3)}
    >>> applied_params({"bits/fc": 8, "arch/depth/s1": 1, "use/quant": 0, "use/student": 0}, dists)
    {'bits/fc': 32, 'arch/depth/s1': 3, 'use/quant': 0, 'use/student': 0}
    """
    if plan is not None:
        from_plan = params_of_plan(plan, distributions)
        return {name: sampled if name.startswith(GATE_PREFIX) else from_plan[name] for name, sampled in params.items()}
    off = _gated_off(params)

    def value(name: str, sampled: Any) -> Any:
        if not name.startswith(off):
            return sampled
        return teacher_value(name, distributions[name])

    return {name: value(name, sampled) for name, sampled in params.items()}


def teacher_value(name: str, distribution: optuna.distributions.BaseDistribution | None = None) -> Any:
    """The value of knob ``name`` that leaves the teacher as it is; a depth knob's is its
    ``distribution``'s upper bound (every block kept; None without it).

    >>> teacher_value("bits/fc"), teacher_value("prune/stem"), teacher_value("arch/depth/s1")
    (32, 0.0, None)
    """
    if name.startswith("arch/depth/"):
        return None if distribution is None else distribution.high
    return next(v for prefix, v in TEACHER_VALUES.items() if name.startswith(prefix))


def _gated_off(params: dict[str, Any]) -> tuple[str, ...]:
    """The knob prefixes of the techniques whose gate is 0 in ``params`` (no gate: applied)."""
    return tuple(TECHNIQUES[t] for t in TECHNIQUES if int(params.get(f"{GATE_PREFIX}{t}", 1)) == 0)


def plan_from_params(params: dict[str, Any], *, layers: list[str], stages: list[str], importance: str = "l1") -> Plan:
    """The plan that parameter values (``prune/``, ``bits/``, ``rank/``, ``arch/``) describe.

    >>> plan_from_params({"bits/fc": 8, "prune/conv": 0.5, "arch/depth/s1": 1}, layers=["conv", "fc"], stages=["s1"])
    Plan(layers=(('conv', LayerPlan(prune=0.5, bits=None, rank=None, decomposition='svd')), ('fc', LayerPlan(prune=0.0, bits=8, rank=None, decomposition='svd'))), depth=(('s1', 1),), width=1.0, importance='l1', kernels='int8')

    Knobs of a technique whose gate ``use/<technique>`` is 0 are ignored (no gate: applied).
    """
    off = _gated_off(params)
    params = {name: value for name, value in params.items() if not name.startswith(off)}
    plans = {}
    for name in layers:
        bits = params.get(f"bits/{name}", TEACHER_VALUES["bits/"])
        rank = params.get(f"rank/{name}", TEACHER_VALUES["rank/"])
        prune = params.get(f"prune/{name}", TEACHER_VALUES["prune/"])  # groups are named after a layer
        plans[name] = LayerPlan(prune=float(prune), bits=None if bits == FLOAT_BITS else int(bits),
                                **rank_from_knob(rank))
    depth = {stage: int(params[f"arch/depth/{stage}"]) for stage in stages if f"arch/depth/{stage}" in params}
    width = float(params.get("arch/width", TEACHER_VALUES["arch/width"]))
    kernels = params.get(KERNELS_KNOB, TEACHER_VALUES[KERNELS_KNOB])
    return Plan(layers=plans, depth=depth, width=width, importance=importance, kernels=kernels)
