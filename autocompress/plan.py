"""The plan: the whole description of one compressed candidate.

A plan says, per layer (or per dependency group for pruning), how much to prune, at which
bit-width to store the weights, and which fraction of the rank to keep; plus the student
architecture (blocks kept per stage, a uniform width multiplier). ``compress(task, plan)``
replays a plan without any search, and plans round-trip through JSON.

Example:
    >>> from autocompress.plan import LayerPlan, Plan
    >>> plan = Plan(layers={"fc": LayerPlan(bits=8), "stem.conv": LayerPlan(prune=0.5)},
    ...             depth={"stage2": 1}, width=0.75)
    >>> Plan.from_json(plan.to_json()) == plan
    True
    >>> Plan(layers={"fc": LayerPlan(bits=4)}, kernels="float").summary()
    'int4 weights, float kernels'
    >>> Plan.from_dict({**plan.to_dict(), "schema": 99})
    Traceback (most recent call last):
    ...
    ValueError: the plan was written by a newer autocompress (schema 99; this one reads up to 3); upgrade autocompress to read it
    >>> plan.layer("fc").bits, plan.layer("missing").bits
    (8, None)
    >>> LayerPlan(rank=0.5, decomposition="tucker2")
    LayerPlan(prune=0.0, bits=None, rank=0.5, decomposition='tucker2')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

PLAN_SCHEMA = 3  # the layout of a plan's JSON (plan.json, trials' stored plans); 2 added ``kernels``, 3 ``decomposition``
BIT_WIDTHS = (2, 4, 8)  # weight bit-widths ONNX stores natively (INT2/INT4/INT8)
IMPORTANCES = ("l1", "l2", "taylor")
KERNELS = ("int8", "float")  # what quantized conv/linear layers run on (see Plan)
DECOMPOSITIONS = ("svd", "tucker2")  # how a layer is factorized (see LayerPlan)


@dataclass(frozen=True, kw_only=True)
class LayerPlan:
    """What to do to one layer. The defaults leave the layer alone.

    prune: fraction of the layer's dependency group's output channels removed (0 = none);
        meaningful on the layer that names a group.
    bits: weight bit-width (2, 4 or 8), or None for float32.
    rank: fraction of the rank kept by a factorization, or None (not factorized).
    decomposition: "svd" (truncated SVD: a layer of ``rank`` x its full rank outputs, then a
        1x1 one) or "tucker2" (a convolution with a kernel larger than 1 only: a 1x1 convolution
        to ``rank`` x its input channels, the kernel on those, a 1x1 one from ``rank`` x its
        output channels); "svd" where the layer is not factorized.
    """

    prune: float = 0.0
    bits: int | None = None
    rank: float | None = None
    decomposition: str = DECOMPOSITIONS[0]

    def __post_init__(self):
        if not 0.0 <= self.prune < 1.0:
            raise ValueError(f"prune ratio must be in [0, 1), got {self.prune}")
        if self.bits is not None and self.bits not in BIT_WIDTHS:
            raise ValueError(f"bits must be one of {BIT_WIDTHS} or None, got {self.bits}")
        if self.rank is not None and not 0.0 < self.rank <= 1.0:
            raise ValueError(f"rank ratio must be in (0, 1], got {self.rank}")
        if self.decomposition not in DECOMPOSITIONS:
            raise ValueError(f"decomposition must be one of {DECOMPOSITIONS}, got {self.decomposition!r}")
        if self.rank in (None, 1.0):  # not factorized: how does not matter (equal plans compare equal)
            object.__setattr__(self, "decomposition", DECOMPOSITIONS[0])

    @property
    def is_identity(self) -> bool:
        return self.prune == 0.0 and self.bits is None and self.rank in (None, 1.0)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """One candidate: per-layer plans + student architecture. Frozen and hashable.

    layers: layer (or group) name -> LayerPlan; identity entries are dropped.
    depth: stage name -> number of its droppable blocks kept (the first ones); absent = all.
    width: uniform width multiplier of the student (1.0 = teacher width).
    importance: channel importance used by pruning: "l1", "l2" or "taylor".
    kernels: what the quantized conv and linear layers run on. "int8": ONNX Runtime's int8
        kernels, their inputs and outputs quantized to uint8 too; "float": their weights alone
        are quantized, stored at their bit-width and widened to float once, when the file is
        loaded, so they run the float kernels on float activations (where int8 kernels do not
        pay: small or depthwise layers). Embeddings and recurrent layers are quantized by weight
        either way.
    """

    layers: Mapping[str, LayerPlan] = field(default_factory=dict)
    depth: Mapping[str, int] = field(default_factory=dict)
    width: float = 1.0
    importance: str = "l1"
    kernels: str = "int8"

    def __post_init__(self):
        layers = tuple(sorted((str(k), v) for k, v in dict(self.layers).items() if not v.is_identity))
        depth = tuple(sorted((str(k), int(v)) for k, v in dict(self.depth).items()))
        for name, plan in layers:
            if not isinstance(plan, LayerPlan):
                raise ValueError(f"layer {name!r}: expected a LayerPlan, got {type(plan).__name__}")
        if any(v < 0 for _, v in depth):
            raise ValueError(f"depth values must be >= 0, got {dict(depth)}")
        if not 0.0 < self.width <= 1.0:
            raise ValueError(f"width must be in (0, 1], got {self.width}")
        if self.importance not in IMPORTANCES:
            raise ValueError(f"importance must be one of {IMPORTANCES}, got {self.importance!r}")
        if self.kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {KERNELS}, got {self.kernels!r}")
        if not any(plan.bits for _, plan in layers):  # nothing quantized: the kernels do not matter
            object.__setattr__(self, "kernels", KERNELS[0])
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "depth", depth)

    def layer(self, name: str) -> LayerPlan:
        """The plan of one layer (identity when the plan does not mention it)."""
        return dict(self.layers).get(name, LayerPlan())

    def unknown_names(self, *, layers, stages) -> list[str]:
        """The layer (or group) and stage names this plan uses that are not in ``layers`` and
        ``stages``: a plan made for another model.

        >>> Plan(layers={"fc": LayerPlan(bits=8), "gone": LayerPlan(bits=4)}).unknown_names(layers={"fc"}, stages=set())
        ['gone']
        """
        return sorted({name for name, _ in self.layers} - set(layers)) + sorted(set(dict(self.depth)) - set(stages))

    def blocks_kept(self, stage: str, available: int) -> int:
        return min(dict(self.depth).get(stage, available), available)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "layers": {k: {"prune": v.prune, "bits": v.bits, "rank": v.rank, "decomposition": v.decomposition}
                       for k, v in self.layers},
            "depth": dict(self.depth),
            "width": self.width,
            "importance": self.importance,
            "kernels": self.kernels,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Plan":
        unknown = set(data) - {"schema", "layers", "depth", "width", "importance", "kernels"}
        if unknown:
            raise ValueError(f"unknown plan fields {sorted(unknown)}")
        schema = data.get("schema", 0)  # 0: written before plans carried a schema (the same fields)
        if not isinstance(schema, int) or schema > PLAN_SCHEMA:
            raise ValueError(f"the plan was written by a newer autocompress (schema {schema}; this one reads up to "
                             f"{PLAN_SCHEMA}); upgrade autocompress to read it")
        return cls(
            layers={k: LayerPlan(**v) for k, v in data.get("layers", {}).items()},
            depth=data.get("depth", {}),
            width=float(data.get("width", 1.0)),
            importance=data.get("importance", "l1"),
            kernels=data.get("kernels", KERNELS[0]),  # schema 0 and 1: int8 kernels
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        """A short human-readable description, e.g. for tables."""
        parts = []
        if self.width != 1.0:
            parts.append(f"width {self.width:g}")
        parts += [f"{stage} depth {d}" for stage, d in self.depth]
        pruned = [v.prune for _, v in self.layers if v.prune]
        if pruned:
            parts.append(f"prune {len(pruned)} groups (mean {sum(pruned) / len(pruned):.2f})")
        bits = sorted({v.bits for _, v in self.layers if v.bits})
        if bits:
            parts.append("int" + "/".join(str(b) for b in bits) + (" weights, float kernels" if self.kernels == "float" else ""))
        ranked = [v.decomposition for k, v in self.layers if v.rank not in (None, 1.0)]
        if ranked:
            tucker = ranked.count("tucker2")
            parts.append(f"low-rank {len(ranked)} layers" + (f" ({tucker} Tucker-2)" if tucker else ""))
        return ", ".join(parts) or "identity"


def rank_knob(layer: LayerPlan) -> float:
    """The ``rank/<layer>`` value of a layer's plan: the rank ratio kept (1.0: not factorized),
    negative for a Tucker-2 decomposition.

    >>> rank_knob(LayerPlan(rank=0.25)), rank_knob(LayerPlan(rank=0.5, decomposition="tucker2")), rank_knob(LayerPlan())
    (0.25, -0.5, 1.0)
    """
    if layer.rank in (None, 1.0):
        return 1.0
    return -layer.rank if layer.decomposition == DECOMPOSITIONS[1] else layer.rank


def rank_from_knob(value: float) -> dict[str, Any]:
    """The ``LayerPlan`` fields a ``rank/<layer>`` value sets (``rank_knob`` read back).

    >>> rank_from_knob(-0.5), rank_from_knob(1.0)
    ({'rank': 0.5, 'decomposition': 'tucker2'}, {'rank': None, 'decomposition': 'svd'})
    """
    value = float(value)
    return {"rank": None if value == 1.0 else abs(value), "decomposition": DECOMPOSITIONS[value < 0]}


def rank_kept_text(rank: float | None, decomposition: str = DECOMPOSITIONS[0]) -> str:
    """How the rank a layer keeps reads in tables: 'full', '25%', 'Tucker-2 50%'.

    >>> rank_kept_text(None), rank_kept_text(**rank_from_knob(0.25)), rank_kept_text(0.5, "tucker2")
    ('full', '25%', 'Tucker-2 50%')
    """
    if rank in (None, 1.0):
        return "full"
    return ("Tucker-2 " if decomposition == DECOMPOSITIONS[1] else "") + f"{rank:.0%}"


def rank_kept_share(value: float) -> float:
    """The share of a square 3x3 convolution's weights a ``rank/<layer>`` value keeps: SVD
    ``r * (1 + 1/9)``, Tucker-2 ``r**2 + 2r/9`` (capped at 1). The values in the order of the
    weights they keep, as the space lists them (``spaces.layers.rank_choices``), where the knob's
    own numbers put the Tucker-2 ones below every SVD one (the report's knob importance reads this).
    A proxy: on a conv with many more input than output channels the space orders them otherwise.

    >>> [round(rank_kept_share(v), 3) for v in (1.0, 0.5, -0.5, 0.25, -0.25)]
    [1.0, 0.556, 0.361, 0.278, 0.118]
    """
    ratio = abs(float(value))
    return min(1.0, ratio * ratio + 2 * ratio / 9 if float(value) < 0 else ratio * (1 + 1 / 9))


def rank_text(value: float) -> str:
    """How a ``rank/<layer>`` value reads in the scan's table: '25% rank', 'Tucker-2 50%'."""
    text = rank_kept_text(**rank_from_knob(value))
    return text if float(value) < 0 else f"{text} rank"
