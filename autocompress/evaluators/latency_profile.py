"""Where a latency is measured: ONNX Runtime's execution provider, its intra-op threads and the
batch size (``LatencyProfile``). The default, 1 thread at batch 1 on the CPU provider with the
measuring thread pinned to one core, is what every search measures today; a server runs more
threads at a larger batch, another machine another provider, and which plan is fastest changes
with each.

A profile is checked before anything is measured with it: the provider must be installed in this
ONNX Runtime and must run the model's nodes (a provider that hands every node to the CPU
provider is refused, not silently measured as the CPU), and the model must take the batch.

Example:
    >>> import os, tempfile, torch
    >>> from torch import nn
    >>> from autocompress.evaluators.export import export_onnx
    >>> path = os.path.join(tempfile.mkdtemp(), "m.onnx")
    >>> export_onnx(nn.Linear(4, 2), torch.randn(1, 4), path)
    >>> measured = LatencyProfile(threads=2, batch=8).measure(path, runs=20)
    >>> measured["batch"], measured["items_per_s"] > 0
    (8, True)
    >>> LatencyProfile(provider="quantum")
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: --latency-provider 'quantum' is unknown; choose one of: cpu, openvino, cuda, tensorrt, dnnl, coreml, azure
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from autocompress.errors import UsageError

PROVIDERS = {"cpu": "CPUExecutionProvider", "openvino": "OpenVINOExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider", "dnnl": "DnnlExecutionProvider",
             "coreml": "CoreMLExecutionProvider", "azure": "AzureExecutionProvider"}
WARMUP_RUNS, TIMED_RUNS = 20, 300  # every latency: the median of TIMED_RUNS runs after WARMUP_RUNS
MAX_EXTRA_PROFILES = 3  # named profiles a search measures besides its own
PROFILE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
INSTALL = {"openvino": "pip install onnxruntime-openvino (it replaces onnxruntime)",
           "cuda": "pip install onnxruntime-gpu on a machine with an NVIDIA GPU",
           "tensorrt": "pip install onnxruntime-gpu with TensorRT on a machine with an NVIDIA GPU"}


@dataclass(frozen=True, kw_only=True)
class LatencyProfile:
    """threads: ONNX Runtime's intra-op threads; batch: rows per run (latency is per run,
    throughput ``items_per_s`` = batch / latency); provider: a key of ``PROVIDERS``, with its
    ``provider_options`` (ONNX Runtime's, as strings)."""

    threads: int = 1
    batch: int = 1
    provider: str = "cpu"
    provider_options: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("threads", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"--latency-{name} must be a whole number at least 1, got {value!r}")
        if self.provider not in PROVIDERS:
            raise UsageError(f"--latency-provider {self.provider!r} is unknown; choose one of: {', '.join(PROVIDERS)}")
        if not isinstance(self.provider_options, dict):
            raise UsageError(f"latency provider options must be a mapping of names to values, got "
                             f"{self.provider_options!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LatencyProfile":
        """From ``to_dict``'s keys; others (run.json describes the measurement around them) are ignored.

        >>> LatencyProfile.from_dict({"threads": 4, "batch": 32, "runtime": "onnxruntime", "runs": 300})
        LatencyProfile(threads=4, batch=32, provider='cpu', provider_options={})
        """
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def describe(self) -> dict:
        """How a latency is measured under this profile, as run.json records it."""
        return {**self.to_dict(), "runtime": f"onnxruntime {PROVIDERS[self.provider]}", "warmup": WARMUP_RUNS,
                "runs": TIMED_RUNS, "statistic": "median", "pinned_core": self.threads == 1}

    def session(self, path: str):
        """An ONNX Runtime session of ``path`` under this profile (the provider installed: checked)."""
        import onnxruntime as ort

        wanted = PROVIDERS[self.provider]
        if wanted not in ort.get_available_providers():
            how = INSTALL.get(self.provider, "install an onnxruntime package built with it")
            raise UsageError(f"latency provider {self.provider!r} is not installed in this ONNX Runtime "
                             f"({', '.join(ort.get_available_providers())}); {how}, or measure with --latency-provider cpu")
        options = session_options(self.threads)
        extra = {k: str(v) for k, v in self.provider_options.items()}
        providers = [(wanted, extra)] + ([] if wanted == PROVIDERS["cpu"] else [PROVIDERS["cpu"]])
        try:
            return ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # an unknown provider option, a device the provider cannot open
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise UsageError(f"ONNX Runtime cannot load {os.path.basename(path)} with provider {self.provider!r} "
                             f"({reason}); give an ONNX file, or check --latency-provider") from exc

    def feed(self, session, example: dict | None = None) -> dict:
        """``batch`` rows for every input: the first row of ``example`` (input name -> array)
        repeated, or zeros shaped by the file's inputs. A fixed batch dimension that is not
        ``batch`` is refused."""
        feed = {}
        for item in session.get_inputs():
            first = item.shape[0] if item.shape else None
            if isinstance(first, int) and first != self.batch:
                raise UsageError(f"the model's input {item.name!r} has a fixed batch of {first}, so it cannot be "
                                 f"measured at batch {self.batch}; export it with a dynamic batch, or measure at "
                                 f"batch {first}")
            if example is not None and item.name in example:
                row = np.asarray(example[item.name])[:1]
            else:
                row = np.zeros([1, *(_fixed(d, item.name) for d in item.shape[1:])], dtype=_dtype(item.type))
            feed[item.name] = np.repeat(row, self.batch, axis=0)
        return feed

    def measure(self, path: str, *, example: dict | None = None, warmup: int = WARMUP_RUNS,
                runs: int = TIMED_RUNS) -> dict:
        """Latency (median and interquartile range of ``runs`` runs, ms) and throughput of ``path``.
        One thread: the measuring thread is pinned to one core (see ``measure.latency_ms``);
        more: ONNX Runtime's threads go where the system puts them."""
        session = self.session(path)
        self.check_runs_here(path, session)
        feed = self.feed(session, example)
        median, spread = timed_runs(session, feed, warmup=warmup, runs=runs, pin=self.threads == 1)
        return {"latency_ms": median, "latency_spread_ms": spread, "batch": self.batch,
                "items_per_s": self.batch * 1000.0 / median, "threads": self.threads, "provider": self.provider}

    def check_runs_here(self, path: str, session) -> None:
        """A provider other than the CPU's must run some of the model's nodes: ONNX Runtime hands
        the nodes a provider cannot run to the CPU provider without a word, and a latency
        measured that way is the CPU's. Read from one profiled run."""
        if self.provider == "cpu":
            return
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.enable_profiling = True
        options.log_severity_level = 3
        with tempfile.TemporaryDirectory(prefix="autocompress-provider-") as scratch:
            options.profile_file_prefix = os.path.join(scratch, "run")
            probe = ort.InferenceSession(str(path), options, providers=session.get_providers())
            probe.run(None, self.feed(session))
            with open(probe.end_profiling()) as f:
                events = json.load(f)
        used = {e.get("args", {}).get("provider") for e in events if e.get("cat") == "Node"} - {None}
        if PROVIDERS[self.provider] not in used:
            raise UsageError(f"latency provider {self.provider!r} ran none of the nodes of {os.path.basename(path)} "
                             f"(ONNX Runtime gave them all to {', '.join(sorted(used)) or 'the CPU'}): a latency "
                             "measured so would be the CPU's; measure with --latency-provider cpu, or on a machine "
                             "where the provider runs this model")


def named_profile(spec: str) -> tuple[str, LatencyProfile]:
    """``NAME:KEY=VALUE,...`` (``--latency-profile``): threads, batch and provider, any other key
    an option of that provider.

    >>> named_profile("server:threads=2,batch=32")
    ('server', LatencyProfile(threads=2, batch=32, provider='cpu', provider_options={}))
    >>> named_profile("edge:provider=openvino,device_type=CPU")[1].provider_options
    {'device_type': 'CPU'}
    >>> named_profile("server:threads=two")
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: --latency-profile server:threads=two: threads must be a whole number, got 'two'; e.g. --latency-profile server:threads=2,batch=32
    """
    example = "e.g. --latency-profile server:threads=2,batch=32"
    name, colon, rest = str(spec).partition(":")
    check_profile_name(name.strip(), spec)
    values, options = {}, {}
    for part in filter(None, (p.strip() for p in rest.split(","))) if colon else ():
        key, equals, value = (t.strip() for t in part.partition("="))
        if not equals or not key or not value:
            raise UsageError(f"--latency-profile {spec}: {part!r} is not KEY=VALUE; {example}")
        if key in ("threads", "batch"):
            if not value.isdigit():
                raise UsageError(f"--latency-profile {spec}: {key} must be a whole number, got {value!r}; {example}")
            values[key] = int(value)
        elif key == "provider":
            values[key] = value
        else:
            options[key] = value
    if not values and not options:
        raise UsageError(f"--latency-profile {spec}: say how it measures after the name; {example}")
    profile = LatencyProfile(**values, provider_options=options)
    if options and profile.provider == "cpu":
        raise UsageError(f"--latency-profile {spec}: unknown key(s) {', '.join(options)}: the cpu provider takes "
                         "threads, batch and provider only (other keys are options of another provider)")
    return name.strip(), profile


def check_profile_name(name: str, spec: str | None = None) -> str:
    """A profile's name: lower-case letters, digits, - and _, starting with a letter."""
    if not isinstance(name, str) or not PROFILE_NAME.match(name):
        said = f"--latency-profile {spec}" if spec is not None else f"latency profile name {name!r}"
        raise UsageError(f"{said}: a profile is named by lower-case letters, digits, - or _, starting with a letter "
                         "(at most 32), before a colon; e.g. --latency-profile server:threads=2,batch=32")
    return name


def session_options(threads: int):
    """ONNX Runtime's options for every measurement: ``threads`` intra-op threads, sequential,
    every graph optimization, quiet."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def timed_runs(session, feed: dict, *, warmup: int, runs: int, pin: bool) -> tuple[float, float]:
    """(median, interquartile range) in milliseconds of ``runs`` runs of ``feed`` after ``warmup``.
    With ``pin`` the measuring thread is pinned to one core meanwhile: measured here, an int8 model
    that the scheduler moved between cores ran 1.6x slower (0.048 vs 0.030 ms) than pinned."""
    allowed = os.sched_getaffinity(0) if pin and hasattr(os, "sched_getaffinity") else None
    if allowed:
        os.sched_setaffinity(0, {max(allowed)})
    try:
        for _ in range(warmup):
            session.run(None, feed)
        times = np.empty(runs)
        for i in range(runs):
            start = time.perf_counter_ns()
            session.run(None, feed)
            times[i] = time.perf_counter_ns() - start
    finally:
        if allowed:
            os.sched_setaffinity(0, allowed)
    q1, median, q3 = np.percentile(times / 1e6, [25, 50, 75])
    return float(median), float(q3 - q1)


def _fixed(dim, name: str) -> int:
    if isinstance(dim, int) and dim > 0:
        return dim
    raise UsageError(f"the model's input {name!r} has a dimension {dim!r} only an example can set; give --task "
                     "so the task's example inputs set it")


def _dtype(onnx_type: str):
    kinds = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(uint8)": np.uint8,
             "tensor(int8)": np.int8}
    return kinds.get(onnx_type, np.float32)

