"""Data files of built-in tasks: found under ``--data-dir``, checked against their SHA-256.

A task's files live in one folder (``mnist/``, ``cifar10-jpeg/``, ``sst2/``). ``--data-dir`` may
name that folder or its parent; without it, ``$AUTOCOMPRESS_DATA_DIR`` is used. Missing files
are named in one line, with where they were looked for; a file whose checksum differs is
refused (a truncated download, another version of the data set).

Example:
    >>> require_files(None, "mnist", {"t10k-labels-idx1-ubyte.gz": "0" * 64}, task="mnist-lenet5")
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: task mnist-lenet5 needs its data files: give --data-dir DIR (the folder holding mnist/, e.g. ../shared/data) or set AUTOCOMPRESS_DATA_DIR
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from autocompress.errors import UsageError

ENV = "AUTOCOMPRESS_DATA_DIR"
_verified: dict[tuple[str, float, int], str] = {}  # (path, mtime, size) -> sha256, per process


def sha256(path: Path) -> str:
    key = (str(path), path.stat().st_mtime, path.stat().st_size)
    if key not in _verified:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _verified[key] = digest.hexdigest()
    return _verified[key]


def require_files(data_dir: str | os.PathLike | None, folder: str, files: dict[str, str], *, task: str) -> dict[str, Path]:
    """The paths of ``files`` (name -> expected SHA-256) in ``data_dir/folder`` or ``data_dir``."""
    given = data_dir or os.environ.get(ENV)
    if not given:
        raise UsageError(f"task {task} needs its data files: give --data-dir DIR (the folder holding {folder}/, "
                         f"e.g. ../shared/data) or set {ENV}")
    root = Path(given).expanduser()
    base = root / folder if (root / folder).is_dir() else root
    missing = [name for name in files if not (base / name).is_file()]
    if missing:
        raise UsageError(f"task {task}: missing {', '.join(missing)} in {base}; give --data-dir the folder "
                         f"holding {folder}/ (e.g. ../shared/data)")
    for name, expected in files.items():
        if sha256(base / name) != expected:
            raise UsageError(f"task {task}: {base / name} does not match its SHA-256 (a truncated copy or another "
                             f"version of the data set); replace it with the original file")
    return {name: base / name for name in files}
