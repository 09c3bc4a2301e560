"""A test that needs this machine free of every other Ray (``--address auto`` joins any Ray running
here) gets it, though pytest-xdist runs other test sessions beside it.

Each test session holds a shared lock on one file of the machine while it may run a Ray (its own or
a subprocess's). A test that needs the machine alone announces it (a request file holding its pid),
stops its own Ray and takes the lock exclusively; the other sessions see the request when their
current test ends, stop their Ray, let go, and wait until the request is gone. Without xdist (one
session) nothing waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "autocompress-tests-ray.lock"
REQUEST = LOCK.with_suffix(".wanted")
_held = {}  # "file": this session's open lock file


def hold_shared() -> None:
    """At the start of a session: this session may run a Ray from now on."""
    if "file" not in _held:
        _held["file"] = open(LOCK, "a+")  # noqa: SIM115 (held for the session)
    fcntl.flock(_held["file"], fcntl.LOCK_SH)


def step_aside_if_asked() -> None:
    """Between tests: if another session needs the machine alone, stop this session's Ray, let go
    until that test is over, then hold the lock again (the next search starts a new Ray)."""
    if "file" not in _held or _requester() in (None, os.getpid()):
        return
    stop_the_ray_of_this_process()
    fcntl.flock(_held["file"], fcntl.LOCK_UN)
    while _requester() not in (None, os.getpid()):
        time.sleep(0.2)
    fcntl.flock(_held["file"], fcntl.LOCK_SH)


@contextlib.contextmanager
def alone():
    """Within it no other session of these tests runs a Ray on this machine, nor does this one."""
    while not _ask():  # another test asked first: after it
        time.sleep(0.2)
    stop_the_ray_of_this_process()
    hold_shared()  # (opens the lock file if this session has none yet)
    fcntl.flock(_held["file"], fcntl.LOCK_UN)
    fcntl.flock(_held["file"], fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(_held["file"], fcntl.LOCK_UN)
        REQUEST.unlink(missing_ok=True)
        fcntl.flock(_held["file"], fcntl.LOCK_SH)


def _ask() -> bool:
    """Write the request, unless another live session's request is there."""
    _requester()  # removes one left by a session that died
    mine = REQUEST.with_suffix(f".{os.getpid()}")
    mine.write_text(str(os.getpid()))
    try:
        os.link(mine, REQUEST)  # appears whole, with its pid, or not at all
    except FileExistsError:
        return False
    finally:
        mine.unlink()
    return True


def _requester() -> int | None:
    """The pid of the session that asked to be alone, if it still runs."""
    try:
        text = REQUEST.read_text()
    except OSError:
        return None
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        REQUEST.unlink(missing_ok=True)  # left by a session that died
        return None
    except PermissionError:
        pass
    return pid


def stop_the_ray_of_this_process() -> None:
    """Stop the Ray this process started, if any; the next search here starts a new one."""
    if "ray" in sys.modules:
        import ray

        ray.shutdown()
