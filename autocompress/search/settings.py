"""The settings of a search: what shapes its results (stored, restored on resume) and where it runs.

``SearchSettings`` holds every choice that changes which candidates a search finds: sampler,
seed, techniques, pruning importance, warm start, fine-tuning (``DistillConfig``), the rungs of
successive halving and budget. ``run.json`` stores it; ``--resume`` restores it, and a resume that asks for a different
value is refused, so a resumed run never silently becomes another search. ``Execution`` says
where and how trials run (workers, cluster, timeouts): it may change between sessions.

Problems are ``SettingError``s naming the keyword (``sampler``, ``distill.steps``); the CLI
names the flag instead (``flag_for``).

Example:
    >>> settings = SearchSettings(sampler="nsga2", distill=DistillConfig(steps=100), seed=3)
    >>> SearchSettings.from_dict(settings.to_dict()) == settings
    True
    >>> settings.distill.seed  # one seed: the sampler's and fine-tuning's
    3
    >>> settings.differences(SearchSettings(sampler="nsga2", distill=DistillConfig(steps=50), seed=3))
    {'distill.steps': (100, 50)}
    >>> SearchSettings(sampler="anneal")
    Traceback (most recent call last):
    ...
    autocompress.search.setting_names.SettingError: sampler 'anneal' is unknown; choose one of: tpe, nsga2, random
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

from autocompress.compressors.distill import OPTIMIZERS, SCHEDULES, DistillConfig
from autocompress.compressors.distill_checkpoint import STORED_BEFORE as DISTILL_STORED_BEFORE
from autocompress.devices import AMP_MODES
from autocompress.plan import IMPORTANCES
from autocompress.budget import Budget
from autocompress.evaluators.latency_profile import MAX_EXTRA_PROFILES, LatencyProfile, check_profile_name
from autocompress.search.rungs import DEFAULT_ETA, Rungs
from autocompress.spaces.space import TECHNIQUES
# how settings are named (keyword, flag) lives in setting_names; these names stay importable from here
from autocompress.search.setting_names import SettingError, flag_for, spoken_to_python  # noqa: F401

SAMPLERS = ("tpe", "nsga2", "random")
# settings added after runs were stored: what those runs had in effect (the scan, local search
# and the guide did not exist: off)
STORED_BEFORE = {"eta": DEFAULT_ETA, "sensitivity": False, "sensitivity_steps": 0, "proposals": False,
                 "local_search": False, "guide": False, "latency": {}, "latency_profiles": {}}


def _number(name: str, value, *, minimum: float, inclusive: bool = True, integer: bool = False, what: str = ""):
    """Check a finite number >= (or >) minimum; returns it."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) \
            or value < minimum or (value == minimum and not inclusive):
        bound = f"{'at least' if inclusive else 'above'} {minimum:g}"
        raise SettingError(name, f"must be {'a whole number' if integer else 'a finite number'} {bound}"
                                 f"{what}, got {value!r}")
    return value


def distill_config(values: dict) -> DistillConfig:
    """A DistillConfig from keyword values, each checked first (a SettingError names it).

    >>> distill_config({"steps": 10}).steps
    10
    >>> distill_config({"lr": float("nan")})
    Traceback (most recent call last):
    ...
    autocompress.search.setting_names.SettingError: distill.lr must be a finite number above 0 (e.g. 1e-3), got nan
    """
    _number("distill.steps", values.get("steps", 0), minimum=0, integer=True)
    if values.get("lr") is not None:
        _number("distill.lr", values["lr"], minimum=0, inclusive=False, what=" (e.g. 1e-3)")
    _number("distill.feature_weight", values.get("feature_weight", 0.0), minimum=0, what=" (0 = off)")
    for name in ("temperature", "batch_size"):
        _number(f"distill.{name}", values.get(name, 1), minimum=0, inclusive=False)
    _number("distill.weight_decay", values.get("weight_decay", 0.0), minimum=0)
    if not 0 <= _number("distill.warmup_fraction", values.get("warmup_fraction", 0.0), minimum=0) < 1:
        raise SettingError("distill.warmup_fraction", f"must be below 1 (a fraction of the steps), "
                                                      f"got {values['warmup_fraction']!r}")
    if not 0 <= _number("distill.float_fraction", values.get("float_fraction", 0.0), minimum=0) < 1:
        raise SettingError("distill.float_fraction", f"must be below 1 (a fraction of the steps; the rest are "
                                                     f"quantization-aware), got {values['float_fraction']!r}")
    for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
        if name in values and values[name] not in choices:
            raise SettingError(f"distill.{name}", f"{values[name]!r} is unknown; choose one of: {', '.join(choices)}")
    if values.get("amp") is not None and values["amp"] not in AMP_MODES:
        raise SettingError("distill.amp", f"{values['amp']!r} is unknown; choose one of: {', '.join(AMP_MODES)} "
                                          "(or none: full precision)")
    if not isinstance(values.get("augment", True), bool):
        raise SettingError("distill.augment", f"must be True or False, got {values['augment']!r}")
    try:
        return DistillConfig(**values)
    except (TypeError, ValueError) as exc:
        raise SettingError("distill", f"is not valid: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class SearchSettings:
    """Every setting that shapes a search's results.

    sampler: tpe | nsga2 | random. seed: seeds the sampler and fine-tuning (``distill.seed``
    follows it). techniques: the knob families searched (prune, quant, lowrank, student).
    importance: channel ranking for pruning (l1, l2, taylor). warm_start: try the known
    recipes first. distill: how every candidate is fine-tuned (``lr`` None = the task's).
    min_steps, eta: successive halving: the lowest rung's fine-tuning steps (None: one rung,
    every plan gets ``distill.steps``) and the reduction factor (``rungs.Rungs``). budget: the
    limits that steer the sampler (Optuna constraints). sensitivity: run the sensitivity scan
    (each knob value alone) before the first trial; proposals: every other new plan is the one
    the scan's predictor expects to extend the front most (``proposals``; needs the scan);
    sensitivity_steps: its fine-tuning steps per
    cell (0: calibration only). local_search: every other new plan is a neighbour (one or two
    knob steps) of a plan on the measured front (``mutations``). guide: with the scan, local
    search runs, of 16 neighbours, the one the scan's predictor expects to add most to the front.
    latency: how every latency of the search is measured (``LatencyProfile``: threads, batch,
    execution provider); the default is one pinned thread at batch 1 on the CPU.
    latency_profiles: up to three more profiles by name (``{"server": LatencyProfile(threads=2,
    batch=32)}``): every candidate and the teacher are also measured under each, each has its
    own front, and a budget may name one (``2ms@server``); the search itself steers by ``latency``.
    """

    sampler: str = "tpe"
    seed: int = 0
    techniques: tuple[str, ...] = tuple(TECHNIQUES)
    importance: str = "l1"
    warm_start: bool = True
    distill: DistillConfig = field(default_factory=DistillConfig)
    min_steps: int | None = None
    eta: int = DEFAULT_ETA
    budget: Budget = field(default_factory=Budget)
    sensitivity: bool = True
    sensitivity_steps: int = 0
    proposals: bool = False
    local_search: bool = True
    guide: bool = True
    latency: LatencyProfile = field(default_factory=LatencyProfile)
    latency_profiles: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise SettingError("sampler", f"{self.sampler!r} is unknown; choose one of: {', '.join(SAMPLERS)}")
        if _number("seed", self.seed, minimum=0, integer=True) >= 2**32:  # NumPy's and Optuna's seeds are 32-bit
            raise SettingError("seed", f"must be below 2**32 = 4294967296, got {self.seed!r}")
        techniques = (self.techniques,) if isinstance(self.techniques, str) else tuple(self.techniques)  # "prune"
        unknown = [t for t in techniques if t not in TECHNIQUES]
        if unknown or not techniques:
            raise SettingError("techniques", f"must be a non-empty subset of {', '.join(TECHNIQUES)}; got "
                                             f"{', '.join(map(str, techniques)) or 'none'}")
        object.__setattr__(self, "techniques", tuple(dict.fromkeys(techniques)))
        if self.importance not in IMPORTANCES:
            raise SettingError("importance", f"{self.importance!r} is unknown; choose one of: {', '.join(IMPORTANCES)}")
        for name in ("warm_start", "sensitivity", "proposals", "local_search", "guide"):
            if not isinstance(getattr(self, name), bool):
                raise SettingError(name, f"must be True or False, got {getattr(self, name)!r}")
        _number("sensitivity_steps", self.sensitivity_steps, minimum=0, integer=True)
        if self.proposals and not self.sensitivity:
            raise SettingError("proposals", "needs the sensitivity scan it predicts from: drop --no-sensitivity, "
                                            "or drop --proposals")
        if not isinstance(self.distill, DistillConfig) or not isinstance(self.budget, Budget):
            raise SettingError("distill", "must be a DistillConfig and budget a Budget")
        if not isinstance(self.latency, LatencyProfile):
            raise SettingError("latency", f"must be a LatencyProfile, got {type(self.latency).__name__}")
        self._check_profiles()
        distill = distill_config({**dataclasses.asdict(self.distill), "seed": self.seed})
        object.__setattr__(self, "distill", distill)
        _number("eta", self.eta, minimum=2, integer=True)
        if self.min_steps is not None:
            _number("min_steps", self.min_steps, minimum=1, integer=True)
            if self.min_steps >= self.distill.steps:
                raise SettingError("min_steps", f"must be below the full fine-tuning steps ({self.distill.steps}), "
                                                f"got {self.min_steps}")

    def _check_profiles(self) -> None:
        profiles = self.latency_profiles
        if not isinstance(profiles, dict) or not all(isinstance(p, LatencyProfile) for p in profiles.values()):
            raise SettingError("latency_profiles", "must map names to LatencyProfiles, e.g. "
                                                   "{'server': LatencyProfile(threads=2, batch=32)}")
        if len(profiles) > MAX_EXTRA_PROFILES:
            raise SettingError("latency_profiles", f"names {len(profiles)} profiles; a search measures at most "
                                                   f"{MAX_EXTRA_PROFILES} besides its own")
        for name in profiles:
            check_profile_name(name)
        if self.budget.latency_profile not in (None, *profiles):
            raise SettingError("budget.max_latency_ms", f"is for profile {self.budget.latency_profile!r}, which the "
                                                        f"search does not measure; name it with --latency-profile")

    def rungs(self) -> Rungs:
        """The fine-tuning steps of each rung, from ``min_steps`` to ``distill.steps``.

        >>> SearchSettings(distill=DistillConfig(steps=300), min_steps=30).rungs().steps
        (30, 90, 300)
        """
        return Rungs.between(self.min_steps, self.distill.steps, eta=self.eta)

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**data, "techniques": list(self.techniques), "distill": dataclasses.asdict(self.distill),
                "budget": self.budget.to_dict(), "latency": self.latency.to_dict(),
                "latency_profiles": {name: p.to_dict() for name, p in self.latency_profiles.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSettings":
        """The settings ``to_dict`` stored; a setting added since a run was stored takes the value
        that run had in effect (``STORED_BEFORE``); a stored setting no longer known is ignored."""
        values = {**STORED_BEFORE, "min_steps": data.get("screen_steps"), **data}  # screen_steps: min_steps's old name
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values]
        if missing:
            raise KeyError(missing[0])
        values = {f.name: values[f.name] for f in dataclasses.fields(cls)}
        distill = distill_config({**DISTILL_STORED_BEFORE, **values["distill"]})
        return cls(**{**values, "techniques": tuple(values["techniques"]), "distill": distill,
                      "budget": Budget(**values["budget"]), "latency": LatencyProfile.from_dict(values["latency"]),
                      "latency_profiles": {name: LatencyProfile.from_dict(p)
                                           for name, p in values["latency_profiles"].items()}})

    def flat(self) -> dict:
        """Every setting as ``keyword: value`` (``distill.steps``, ``budget.min_accuracy``, ...)."""
        data = self.to_dict()
        flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
        for part in ("distill", "budget", "latency"):
            flat.update({f"{part}.{k}": v for k, v in data[part].items()})
        flat["latency_profiles"] = {name: LatencyProfile.from_dict(p) for name, p in data["latency_profiles"].items()}
        return flat

    def differences(self, other: "SearchSettings") -> dict[str, tuple]:
        """Settings whose values differ: ``keyword: (self's, other's)``."""
        mine, theirs = self.flat(), other.flat()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


@dataclass(frozen=True, kw_only=True)
class Execution:
    """Where and how trials run; it does not change which candidates are found.

    workers: trials at once (default one per CPU). address: an existing Ray cluster (``ray
    start --head``), or None for a local Ray bound to 127.0.0.1. cpus_per_trial /
    gpus_per_trial: resources of one trial (torch and ONNX Runtime threads follow
    cpus_per_trial); a trial fine-tunes on one GPU, so at most 1, and a fraction shares one
    (0.25: four trials per GPU). trial_timeout_s: a trial still fine-tuning after this is stopped and
    stored as failed. retries: how often Ray Tune re-runs a trial whose worker died.
    latency_resource: a custom Ray resource naming the node where every latency is measured,
    one at a time. time_budget_s: stop the search after this long (running trials are stored
    as interrupted; a resume runs them again).

    >>> Execution(workers=2).cpus_per_trial
    1.0
    >>> Execution(time_budget_s=float("nan"))
    Traceback (most recent call last):
    ...
    autocompress.search.setting_names.SettingError: time_budget_s must be a finite number above 0, got nan
    """

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    trial_timeout_s: float | None = None
    retries: int = 1
    latency_resource: str | None = None
    time_budget_s: float | None = None

    def __post_init__(self):
        _number("workers", self.workers, minimum=1, integer=True)
        _number("cpus_per_trial", self.cpus_per_trial, minimum=0, inclusive=False)
        if _number("gpus_per_trial", self.gpus_per_trial, minimum=0) > 1:
            raise SettingError("gpus_per_trial", f"must be at most 1 (a trial fine-tunes on one GPU; 0.25 = four "
                                                 f"trials share one), got {self.gpus_per_trial!r}")
        _number("retries", self.retries, minimum=0, integer=True)
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise SettingError("address", f"must be a Ray cluster's HOST:PORT or 'auto', got {self.address!r}; "
                                          "leave it out for a local Ray")
        for name in ("trial_timeout_s", "time_budget_s"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), minimum=0, inclusive=False)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


__all__ = ["Execution", "SAMPLERS", "SearchSettings", "SettingError", "distill_config", "flag_for", "spoken_to_python"]
