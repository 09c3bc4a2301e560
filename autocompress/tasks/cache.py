"""Teacher weights trained on first use and cached under a hash of the recipe; data arrays and
fixed splits computed once and cached the same way.

The cache file holds only a state dict (loaded with ``weights_only=True``) and a sidecar with
its SHA-256; a file that does not match its checksum or does not load is rebuilt, not trusted.
Arrays are a plain ``.npz`` (read with ``allow_pickle=False``); one that does not load is
computed again. A split is computed once with scikit-learn, so the processes that read it
later (every trial worker) do not import scikit-learn (measured: 1.7 s of CPU each).

Example:
    >>> import tempfile
    >>> from torch import nn
    >>> d = tempfile.mkdtemp()
    >>> model = cached_weights(lambda: nn.Linear(2, 2), train=lambda m: None,
    ...                        recipe={"toy": 1}, name="toy", cache_dir=d)
    >>> isinstance(model, nn.Linear)
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from autocompress.devices import describe, training_device
from autocompress.task import UsageError, supplied_teacher_state


def cache_root() -> Path:
    """``$AUTOCOMPRESS_CACHE``, else ``~/.cache/autocompress``."""
    return Path(os.environ.get("AUTOCOMPRESS_CACHE", Path.home() / ".cache" / "autocompress"))


def writable_cache(folder: Path) -> Path:
    """``folder`` made and checked writable before anything is computed to keep in it; a file in
    the way or a read-only folder is one UsageError naming $AUTOCOMPRESS_CACHE.

    >>> import tempfile
    >>> blocked = Path(tempfile.mkdtemp()) / "file"
    >>> _ = blocked.write_text("x")
    >>> writable_cache(blocked / "teachers")
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: the cache folder .../file/teachers cannot be used (Not a directory): what is trained or decoded now could not be kept; set AUTOCOMPRESS_CACHE to a writable folder (default ~/.cache/autocompress)
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"the cache folder {folder} cannot be used ({exc.strerror or type(exc).__name__}): what is "
                         "trained or decoded now could not be kept; set AUTOCOMPRESS_CACHE to a writable folder "
                         "(default ~/.cache/autocompress)") from None
    return folder


def recipe_key(recipe: dict) -> str:
    text = json.dumps({"recipe": recipe, "torch": torch.__version__.split("+")[0]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def training_report(name: str, recipe: dict, cache_dir: str | Path | None = None) -> dict:
    """What the training of a cached teacher reported (empty if it reported nothing)."""
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "teachers"
    path = folder / f"{name}-{recipe_key(recipe)}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def cached_weights(build: Callable[[], nn.Module], *, train: Callable[[nn.Module], dict | None], recipe: dict,
                   name: str, cache_dir: str | Path | None = None) -> nn.Module:
    """Return ``build()`` with trained weights: from the cache when valid, else trained now. Processes
    that need the same teacher at once train it once: the others wait for its file."""
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "teachers"
    path = folder / f"{name}-{recipe_key(recipe)}.pt"
    model = build()
    if supplied_teacher_state() is not None:
        model.load_state_dict(supplied_teacher_state())
        return model.eval()
    if _load_cached(model, path, say_why=True):
        return model.eval()
    writable_cache(folder)  # before the training, not after it
    with _lock(path.with_suffix(".lock")):
        model = build()  # (a failed load may have left some weights in it)
        if _load_cached(model, path, say_why=False):  # trained meanwhile by another process
            return model.eval()
        print(f"autocompress: training the {name} teacher once (cached in {folder})", file=sys.stderr)
        _train_and_keep(model, train, path)
    return model.eval()


def _load_cached(model: nn.Module, path: Path, *, say_why: bool) -> bool:
    """Load the cached weights into ``model`` if the file is there and matches its checksum."""
    checksum = path.with_suffix(".sha256")
    if not (path.exists() and checksum.exists()):
        return False
    try:
        if _sha256(path) != checksum.read_text().strip():
            raise ValueError("checksum mismatch")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return True
    except Exception as exc:  # corrupt or stale: rebuild, never trust it
        if say_why:
            print(f"autocompress: cached teacher {path} is unusable ({exc}); retraining it", file=sys.stderr)
        return False


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive lock on ``path`` for as long as the block runs (released if the process dies)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train_and_keep(model: nn.Module, train: Callable[[nn.Module], dict | None], path: Path) -> None:
    report = train(model)
    device = training_device()
    if isinstance(report, dict) and device.type == "cuda":  # say which GPU (a CPU run's report is as it was)
        report["trained_on"] = describe(device)
    if isinstance(report, dict):  # what training measured (e.g. accuracy before and after), kept beside it
        path.with_suffix(".json").write_text(json.dumps(report, indent=2, sort_keys=True))
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    digest = _sha256(tmp)
    os.replace(tmp, path)
    path.with_suffix(".sha256").write_text(digest)


def cached_arrays(name: str, key: str, compute: Callable[[], dict[str, np.ndarray]], *,
                  cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """``compute()``'s arrays, kept in ``NAME-KEY.npz`` under ``cache_dir`` (default
    ``$AUTOCOMPRESS_CACHE/data``) and read from there later.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> cached_arrays("toy", "k1", lambda: {"x": np.arange(3)}, cache_dir=d)["x"]
    array([0, 1, 2])
    >>> cached_arrays("toy", "k1", lambda: 1 / 0, cache_dir=d)["x"]      # not computed again
    array([0, 1, 2])
    >>> _ = (Path(d) / "toy-k1.npz").write_bytes(b"cut short")
    >>> cached_arrays("toy", "k1", lambda: {"x": np.arange(2)}, cache_dir=d)["x"]   # unreadable: again
    array([0, 1])
    """
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "data"
    path = folder / f"{name}-{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # absent, or cut short: compute it (again)
        pass
    writable_cache(folder)  # before the computation, not after it
    arrays = compute()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


def stratified_split(name: str, labels: np.ndarray, *, test_size: float | int, seed: int,
                     cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) index arrays of scikit-learn's seeded stratified ``train_test_split`` of
    ``labels`` (``second`` holds ``test_size`` of them), computed once and cached.

    >>> import tempfile
    >>> first, second = stratified_split("toy", np.array([0, 1] * 5), test_size=0.4, seed=0,
    ...                                  cache_dir=tempfile.mkdtemp())
    >>> len(first), len(second), sorted(np.concatenate([first, second])) == list(range(10))
    (6, 4, True)
    """
    digest = hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest()[:16]
    key = recipe_key({"labels": digest, "dtype": str(labels.dtype), "test_size": test_size, "seed": seed})

    def compute() -> dict[str, np.ndarray]:
        from sklearn.model_selection import train_test_split

        first, second = train_test_split(np.arange(len(labels)), test_size=test_size, random_state=seed,
                                         stratify=labels)
        return {"first": first, "second": second}

    arrays = cached_arrays(f"split-{name}", key, compute, cache_dir=cache_dir)
    return arrays["first"], arrays["second"]
