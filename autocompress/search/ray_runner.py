"""Running trials on Ray: a local Ray by default, an existing cluster with ``--address``.

Ray Tune schedules (K trials at once, each with its CPUs/GPUs), retries a trial whose worker
died (``FailureConfig``), and stops a trial past ``--trial-timeout`` (its trainable reports
progress during fine-tuning). The StudySearcher decides what to try and stores outcomes.

Example:
    >>> cap_workers(8, available_cpus=2, cpus_per_trial=1)
    (2, 'only 2 CPUs available for 1 CPU(s) per trial: running 2 workers instead of 8')
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from pathlib import Path

from autocompress.quiet import fd_silenced
from autocompress.errors import UsageError

ADDRESS_TIMEOUT_S = 5.0


def cap_workers(workers: int, *, available_cpus: float, cpus_per_trial: float, largest_node_cpus: float | None = None
                ) -> tuple[int, str]:
    """At most as many workers as the CPUs allow; returns (workers, warning or ''). A trial
    asking for more CPUs than any one node has could never start: refused.

    >>> cap_workers(1, available_cpus=2, cpus_per_trial=3)
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: --cpus-per-trial 3: no Ray node has that many CPUs (the largest has 2), so no trial could ever start; use at most 2
    """
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if not cpus_per_trial > 0:
        raise UsageError(f"--cpus-per-trial must be positive, got {cpus_per_trial}")
    largest = available_cpus if largest_node_cpus is None else largest_node_cpus
    if cpus_per_trial > largest:
        raise UsageError(f"--cpus-per-trial {cpus_per_trial:g}: no Ray node has that many CPUs (the largest has "
                         f"{largest:g}), so no trial could ever start; use at most {largest:g}")
    fit = max(1, int(available_cpus // cpus_per_trial))
    if workers <= fit:
        return workers, ""
    return fit, (f"only {available_cpus:g} CPUs available for {cpus_per_trial:g} CPU(s) per trial: "
                 f"running {fit} workers instead of {workers}")


def check_address(address: str) -> None:
    """Fail fast (one line, a few seconds) unless a Ray head answers at ``address``: something
    must listen there and answer a Ray GCS call (see gcs_probe; ``ray.init`` would wait without
    end on a server that accepts and stays silent). ``auto`` is checked at the address it stands
    for (a cluster that died leaves its address behind)."""
    from autocompress.search.gcs_probe import probe

    named = address
    if address == "auto":
        address = auto_address()
        named = f"auto ({address}, from RAY_ADDRESS or the last 'ray start' on this machine)"
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address {named}: not HOST:PORT with a port number; give e.g. 10.0.0.5:6379 (the "
                         "address 'ray start --head' printed), or auto")
    try:
        why_not = probe(host or "127.0.0.1", int(port), timeout_s=ADDRESS_TIMEOUT_S)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--address {named}: no Ray cluster answers there ({exc}); start one with "
                         "'ray start --head --port PORT' and pass HOST:PORT") from exc
    if why_not:
        raise UsageError(f"--address {named}: something listens there but it is not a Ray head ({why_not}); "
                         "give the port 'ray start --head' printed (default 6379)")


def auto_address() -> str:
    """What Ray's ``address='auto'`` joins: RAY_ADDRESS, else the cluster ``ray start`` last wrote
    down on this machine, else any Ray running here."""
    from ray._private.services import canonicalize_bootstrap_address

    try:
        return canonicalize_bootstrap_address("auto")
    except (ConnectionError, ValueError) as exc:
        raise UsageError("--address auto: no Ray cluster runs on this machine (RAY_ADDRESS is unset and no "
                         "'ray start' left its address); "
                         "start one with 'ray start --head' or leave --address out for a local Ray") from exc


def start_ray(*, address: str | None, workers: int, cpus_per_trial: float, num_cpus: int | None = None) -> str:
    """Start (or join) Ray quietly; returns a line describing where trials run. A local Ray is
    advertised on this machine's interface address, never loopback (Ray's rule), and listens on
    every interface behind its token (see the README)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # progress reports carry no metrics
    # Ray starts its workers at nice 15, the latency actor among them: pinned to a core beside an ordinary
    # (nice 0) process, one measurement took 7-9 s instead of 0.44 s and read 4-50% slow
    # (benchmarks/priority_measure.py). A local Ray's workers run at this process's priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    import ray

    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module="ray")
    if ray.is_initialized():
        return "Ray already initialized in this process"
    if address:  # checked by the caller before the teacher is measured (check_address)
        try:
            with fd_silenced(2):  # Ray's GCS client logs each failed try from C++; the error is one line
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"--address {address}: cannot join the Ray cluster ({str(exc).splitlines()[0][:160]}); "
                             "start one with 'ray start --head' or check the address and RAY_AUTH_MODE") from exc
        return f"Ray cluster at {address}: {ray.cluster_resources().get('CPU', 0):g} CPUs"
    cpus = num_cpus or os.cpu_count() or 1
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR,  # a new Ray,
             log_to_driver=False, configure_logging=False)  # never one running here
    unguarded = os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled"
    return f"local Ray: {cpus} CPUs" + ("; warning: RAY_AUTH_MODE=disabled, so Ray's ports (Ray 2.60 listens on "
                                         "every interface) take requests without its token" if unguarded else "")


def largest_node_cpus() -> float:
    """CPUs of the biggest live node of the Ray cluster this process is connected to."""
    import ray

    return max((node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")), default=0.0)


def run_trials(*, searcher, job, workers: int, cpus_per_trial: float, gpus_per_trial: float,
               timeout_s: float | None, retries: int, storage: Path, time_budget_s: float | None = None) -> None:
    """Run the searcher's trials on Ray Tune until it says FINISHED (or Ctrl-C)."""
    from ray import tune

    from autocompress.search.worker import evaluate_trial

    trainable = tune.with_resources(tune.with_parameters(evaluate_trial, job=job),
                                    {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, max_concurrent_trials=workers,
                                    reuse_actors=True, time_budget_s=time_budget_s),
        run_config=tune.RunConfig(storage_path=str(storage.resolve()), name="tune", verbose=0,
                                  stop={"time_total_s": timeout_s} if timeout_s else None,
                                  failure_config=tune.FailureConfig(max_failures=retries),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )
    previous = signal.getsignal(signal.SIGINT)
    try:
        tuner.fit()
    finally:  # Ray Tune leaves its own Ctrl-C handler installed: the caller's Ctrl-C must work again
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
