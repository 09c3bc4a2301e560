"""Every setting of a search declared once: its Python keyword (``distill.steps``), its CLI flag
(``--steps``), the flag's kind and help, and the group ``--help`` shows it in (``SETTINGS``).
The command line's flags, the keyword a flag sets and the flag a keyword has
(``flag_for``, ``keyword_for``) are derived from it; the values are checked where they are
defined (``SearchSettings``, ``Execution``, ``Budget``). ``SettingError`` names one setting, and
the wrapper makes an error written for the CLI name keywords to a Python caller. Imports no
torch: the CLI's help and error path and the readers of a run use it.

Example:
    >>> by_flag("--steps").keyword, by_flag("--steps").kind
    ('distill.steps', 'int')
    >>> by_flag("--no-sensitivity").negated, by_flag("--no-sensitivity").dest
    (True, 'no_sensitivity')
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable

from autocompress.errors import UsageError

SETTINGS_GROUP = "settings"  # they shape the results: run.json stores them, --resume restores them
RUNGS_GROUP, SCAN_GROUP = "rungs", "scan"  # settings too, shown in their own --help groups
BUDGET_GROUP, EXECUTION_GROUP = "budget", "execution"  # a budget (search and best); where trials run
LATENCY_GROUP = "latency"  # how a latency is measured (search and the latency command; evaluators.latency_profile)
SEARCH_SETTING_GROUPS = (SETTINGS_GROUP, RUNGS_GROUP, SCAN_GROUP, LATENCY_GROUP)  # what ``SearchSettings`` holds


@dataclass(frozen=True)
class Setting:
    """One setting. kind: int, float, str, list (comma-separated), switch (the flag alone; a
    ``--no-`` flag sets its keyword False), or profiles (repeated NAME:KEY=VALUE,... flags)."""

    keyword: str
    flag: str
    help: str
    group: str = SETTINGS_GROUP
    kind: str = "str"
    choices: tuple = ()
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    @property
    def negated(self) -> bool:
        return self.flag.startswith("--no-")


def _s(keyword, flag, help, **more) -> Setting:  # noqa: A002 - argparse's word
    return Setting(keyword=keyword, flag=flag, help=help, **more)


SETTINGS = (
    _s("sampler", "--sampler", "tpe | nsga2 | random (default: tpe)"),
    _s("seed", "--seed", "seed of the sampler and of fine-tuning (default: 0)", kind="int"),
    _s("distill.steps", "--steps", "distillation fine-tune steps per candidate (default: 300)", kind="int"),
    _s("distill.lr", "--lr", "learning rate of the fine-tuning (default: the task's, else 2e-3)", kind="float"),
    _s("importance", "--importance", "channel importance for structured pruning (default: l1)",
       choices=("l1", "l2", "taylor")),
    _s("distill.feature_weight", "--feature-distill", "weight of feature-based distillation (inputs of the output "
       "layer); default 0 = off", kind="float", metavar="WEIGHT"),
    _s("distill.optimizer", "--optimizer", "fine-tuning optimizer: adamw, or sgd with Nesterov momentum 0.9 "
       "(default: adamw)", choices=("adamw", "sgd")),
    _s("distill.warmup_fraction", "--warmup", "fraction of the fine-tuning steps spent warming the learning rate up "
       "before its cosine decay (default: 0.05)", kind="float", metavar="FRACTION"),
    _s("distill.float_fraction", "--float-fraction", "fraction of a quantized candidate's fine-tuning steps run in "
       "float (quantizers off, a step about half the cost) before its ranges are calibrated afresh and "
       "quantization-aware steps take the rest (default: 0.7; 0: quantization-aware throughout)", kind="float",
       metavar="FRACTION"),
    _s("distill.augment", "--no-augment", "fine-tune without the task's training augmentation (e.g. CIFAR crops "
       "and flips)", kind="switch"),
    _s("distill.amp", "--amp", "fine-tune in bfloat16 autocast on the trials' GPUs (needs --gpus-per-trial, Ampere "
       "or later); default: full precision", choices=("bf16",)),
    _s("techniques", "--techniques", "knob families to search, comma-separated: prune, quant (bit-widths), lowrank, "
       "student (depth and width); default all, jointly", kind="list", metavar="LIST"),
    _s("warm_start", "--no-warm-start", "do not try the known recipes (int8; 50%% prune + int8; shallow int4 "
       "student; int4 with the first and last layers int8) first", kind="switch"),
    _s("local_search", "--no-local-search", "every new plan from the sampler alone; by default every other one is a "
       "neighbour (one or two knob steps) of a plan on the measured front", kind="switch"),
    _s("guide", "--no-guide", "local search takes a neighbour at random; by default, with the sensitivity scan, of "
       "16 neighbours the one the scan predicts will add most to the front", kind="switch"),
    _s("min_steps", "--min-steps", "fine-tune every new plan for STEPS steps first (rung 0); the best 1 in --eta of "
       "a rung (non-dominated on accuracy, size, latency) continue to STEPS x eta, ... up to --steps, from where "
       "they stopped (default: off, every plan gets --steps)", group=RUNGS_GROUP, kind="int", metavar="STEPS"),
    _s("eta", "--eta", "the reduction factor: 1 in N results of a rung goes up (default: 3)", group=RUNGS_GROUP,
       kind="int", metavar="N"),
    _s("sensitivity", "--no-sensitivity", "skip the sensitivity scan (e.g. for a baseline search); no --proposals "
       "then", group=SCAN_GROUP, kind="switch"),
    _s("sensitivity_steps", "--sensitivity-steps", "fine-tuning steps of each sensitivity cell (default: 0, "
       "calibration only)", group=SCAN_GROUP, kind="int", metavar="STEPS"),
    _s("proposals", "--proposals", "every other new plan is the one the scan's predictor expects to extend the "
       "front most (refit as trials finish); default off: on digits its plans have not yet beaten the sampler's "
       "(see docs/search.md)", group=SCAN_GROUP, kind="switch"),
    _s("budget.max_size_bytes", "--max-size", "e.g. 50KB, 1.5MiB (KB = 1000 B, KiB = 1024 B)", group=BUDGET_GROUP,
       metavar="SIZE"),
    _s("budget.max_latency_ms", "--max-latency", "e.g. 2ms, 250us, 0.01s; 2ms@NAME: under the extra latency "
       "profile NAME (--latency-profile)", group=BUDGET_GROUP, metavar="TIME"),
    _s("budget.min_accuracy", "--min-accuracy", "e.g. 0.97 or 97%%", group=BUDGET_GROUP, metavar="ACC"),
    _s("workers", "--workers", "trials evaluated at once (capped to the CPUs available; default: one per CPU)",
       group=EXECUTION_GROUP, kind="int"),
    _s("address", "--address", "join an existing Ray cluster at HOST:PORT (started with 'ray start --head'); "
       "default: local Ray", group=EXECUTION_GROUP),
    _s("cpus_per_trial", "--cpus-per-trial", "CPUs (and torch/ONNX Runtime threads) per trial (default: 1)",
       group=EXECUTION_GROUP, kind="float"),
    _s("gpus_per_trial", "--gpus-per-trial", "GPU share a trial fine-tunes on, at most 1 (0.25: four trials per "
       "GPU); export and latency stay on the CPU (default: 0)", group=EXECUTION_GROUP, kind="float"),
    _s("trial_timeout_s", "--trial-timeout", "stop a trial still fine-tuning after this long and store it as "
       "failed", group=EXECUTION_GROUP, kind="float", metavar="SECONDS"),
    _s("time_budget_s", "--time-budget", "stop the search this long after it starts, the sensitivity scan included "
       "(no scan batch starts after a fifth of it), whatever --trials says (running trials are stored as "
       "interrupted; --resume runs them again)", group=EXECUTION_GROUP, kind="float", metavar="SECONDS"),
    _s("latency_resource", "--latency-resource", "measure every latency (and the teacher's) on the Ray node "
       "carrying this custom resource, one at a time", group=EXECUTION_GROUP, metavar="NAME"),
    _s("latency.threads", "--latency-threads", "ONNX Runtime intra-op threads (default: 1, the measuring thread "
       "pinned to one core)", group=LATENCY_GROUP, kind="int", metavar="N"),
    _s("latency.batch", "--latency-batch", "rows per run; throughput (items/s) is reported next to the latency "
       "(default: 1)", group=LATENCY_GROUP, kind="int", metavar="N"),
    _s("latency.provider", "--latency-provider", "ONNX Runtime execution provider by short name: cpu (the "
       "default), openvino, cuda, ...; one that is not installed, or that hands every node to the CPU, is refused",
       group=LATENCY_GROUP, metavar="NAME"),
    _s("latency_profiles", "--latency-profile", "also measure under this named profile (repeat for up to 3): "
       "NAME:threads=N,batch=N[,provider=P,OPTION=VALUE]; each has its own front, and a budget may name it "
       "(--max-latency 2ms@NAME)", group=LATENCY_GROUP, kind="profiles", metavar="NAME:KEY=VALUE,..."),
)
FLAGS = {setting.keyword: setting.flag for setting in SETTINGS}  # keyword (as SettingError names it) -> flag


def by_flag(flag: str) -> Setting:
    return next(setting for setting in SETTINGS if setting.flag == flag)


def in_group(*groups: str) -> list[Setting]:
    """The settings of these groups, in declaration order."""
    return [setting for setting in SETTINGS if setting.group in groups]


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
    declared = next((setting for setting in SETTINGS if setting.flag == flag), None)
    if declared is not None:
        return declared.keyword + ({True: "=False", False: "=True"}[declared.negated] if declared.kind == "switch"
                                   else "")
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
