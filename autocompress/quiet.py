"""C-level output shut for a moment: libraries that print from C or C++ (torch's ONNX exporter,
Ray's GCS client) where our callers say what went wrong in one line.

Example:
    >>> with fd_silenced(1):
    ...     _ = os.write(1, b"not shown")
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def fd_silenced(fd: int) -> Iterator[None]:
    """File descriptor ``fd`` (1: stdout, 2: stderr) sent to /dev/null for the block. Main thread
    only (a file descriptor is process-wide); elsewhere it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    (sys.stdout if fd == 1 else sys.stderr).flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
