"""``compare.py --keep DIR``: reuse a run only when it was made with the settings asked for now.

Next to each run directory that compare.py starts (``DIR/joint-0``) lies its request,
``DIR/joint-0.benchmark.json``: what made it (task, strategy, seed, steps, trials, time budget,
workers, the strategy's search flags), written before the run starts. The
same command again reuses every finished run and continues unfinished ones; a run made with
other settings, or one without the record, is refused in one line, never silently mixed in.

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp()) / "joint-0"
    >>> check_reuse(run, {"steps": 300, "seed": 0})      # nothing there yet: a new run
    False
    >>> record_request(run, {"steps": 300, "seed": 0})
    >>> check_reuse(run, {"steps": 300, "seed": 0})
    True
    >>> check_reuse(run, {"steps": 100, "seed": 0})
    Traceback (most recent call last):
    ...
    keep.KeepMismatch: --keep: .../joint-0 was made with steps 300, this request has steps 100; use another --keep folder, or the settings it was made with
"""

from __future__ import annotations

import json
from pathlib import Path



def request_file(run: Path) -> Path:
    return run.parent / f"{run.name}.benchmark.json"


class KeepMismatch(SystemExit):
    """A kept run that this request must not reuse (exits with its one-line message)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _shown(values: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())


def check_reuse(run: Path, request: dict) -> bool:
    """Whether ``run`` was started for this ``request`` before (True) or not at all (False); a
    ``KeepMismatch`` when it was made for another request, or holds work compare.py did not record."""
    run = Path(run)
    if not request_file(run).is_file():
        if not run.exists() or not any(run.iterdir()):
            return False
        raise KeepMismatch(f"--keep: {run} holds a run without {request_file(run).name} (made before compare.py "
                           "recorded its settings, or by hand); use another --keep folder, or remove that run")
    stored = json.loads(request_file(run).read_text())
    keys = sorted(set(stored) | set(request))
    differ = [k for k in keys if stored.get(k) != request.get(k)]
    if differ == ["time_budget_s"] and _extends(stored["time_budget_s"], request["time_budget_s"]):
        record_request(run, request)
        return True
    if differ:
        raise KeepMismatch(f"--keep: {run} was made with {_shown({k: stored.get(k) for k in differ})}, this request "
                           f"has {_shown({k: request.get(k) for k in differ})}; use another --keep folder, or the "
                           "settings it was made with")
    return True


def _extends(kept_s: float | None, asked_s: float | None) -> bool:
    """Whether a kept time budget can grow to the one asked for (never to none: that is another run)."""
    return kept_s is not None and asked_s is not None and asked_s > kept_s


def record_request(run: Path, request: dict) -> None:
    """Write the request next to ``run`` before any work starts there."""
    path = request_file(Path(run))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(request, indent=2, sort_keys=True) + "\n")
