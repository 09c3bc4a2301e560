"""Shared fixtures: the digits task with its teacher trained once per test session, and one local
Ray for every search run in this process (``search_here``)."""

import contextlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import machine_alone

ROOT = Path(__file__).resolve().parents[1]

# The tiers (pyproject.toml declares the markers; README "Development" says how to run them):
# a test that runs a search, starts Ray or a browser, or builds a run for others is ``slow``.
# Beyond the tests marked one by one, these fixtures make every test that uses them slow,
# and these doctests run a real search.
SLOW_FIXTURES = {"budget_run", "elsewhere_run", "tight_search", "scanned_run", "small_run", "compared",
                 "hostile_run", "tiny_run", "synthetic_report", "chromium", "postgres_url", "two_node_cluster"}
TIER_OF_FIXTURE = {"chromium": "browser", "postgres_url": "postgres", "two_node_cluster": "cluster"}
SLOW_DOCTESTS = {"autocompress.search.controller"}


def pytest_collection_modifyitems(items):
    """Marks what the fixtures and doctests above imply (``pytest -m "not slow"``: the fast tier).
    The tests that need the machine without any other Ray go first (the other pytest-xdist session
    has not started its Ray yet: ``machine_alone``); the rest keep their order, which mixes slow
    and fast tests in both sessions (the slow ones first took 868 s against 589-678 s: the two
    sessions then ran searches at the same time)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SLOW_FIXTURES or item.name in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)
        for fixture in fixtures & TIER_OF_FIXTURE.keys():
            item.add_marker(getattr(pytest.mark, TIER_OF_FIXTURE[fixture]))
    items.sort(key=lambda item: item.get_closest_marker("alone") is None)  # stable


XDIST_WORKERS_AT_MOST = 2  # more sessions on 2 cores ran the suite slower (829 s at 4 vs 623 s at 2)


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one test session per CPU, at most XDIST_WORKERS_AT_MOST
    (each runs its own Ray with every CPU; the tests wait on processes as much as they compute)."""
    return max(1, min(XDIST_WORKERS_AT_MOST, os.cpu_count() or 1))


def pytest_configure(config):
    """Beside other sessions, torch in this one computes on one thread: two sessions each spinning
    two threads on two cores trained the digits teacher 10x slower."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def teacher_cache(tmp_path_factory):
    """A fresh teacher cache per test run, shared by its pytest-xdist sessions (the cache trains a
    teacher once for all of them), unless AUTOCOMPRESS_CACHE is already set."""
    if "AUTOCOMPRESS_CACHE" not in os.environ:
        base = tmp_path_factory.getbasetemp()
        base = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's, not this worker's
        os.environ["AUTOCOMPRESS_CACHE"] = str(base / "cache")
    return Path(os.environ["AUTOCOMPRESS_CACHE"])


@pytest.fixture(scope="session", autouse=True)
def one_ray_for_the_session():
    """The searches run in this process (``search_here``, ``cli``, ``search()``) share one local Ray:
    the first starts it, the session's end stops it (a process pays ~4 s to start one and ~3 s to
    stop it). Its workers import the tests' task factories (``tests.fixtures...``) as a CLI
    process started by ``run_cli`` does."""
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    machine_alone.hold_shared()  # pytest-xdist: a test that needs no Ray on the machine waits for it
    yield
    machine_alone.stop_the_ray_of_this_process()


def pytest_runtest_setup(item):
    """Between tests, this session steps aside (stops its Ray) for one that needs the machine alone."""
    machine_alone.step_aside_if_asked()


@pytest.fixture(scope="session")
def digits_task(teacher_cache):
    from autocompress import load_task

    return load_task("digits")


@pytest.fixture(scope="session")
def tiny_task():
    from tests.fixtures.user_tasks import tiny

    return tiny()


def ctrl_c_as_in_a_terminal() -> None:
    """For ``preexec_fn``: a child started from a shell that ignores SIGINT (a background job, nohup)
    inherits the ignore, and a test's Ctrl-C would not reach it; a user's terminal delivers it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args, cwd=None, timeout=600):
    """Run the installed CLI as a user would; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "autocompress.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout, preexec_fn=ctrl_c_as_in_a_terminal)


def one_clear_line(proc) -> str:
    """The one line a refused command prints: exit code 2, no traceback, 'autocompress: error: ...'."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("autocompress: error: "), proc.stderr
    return lines[0]


def search_here(*args, cwd=None) -> "CliResult":
    """Run the CLI in this process, as ``run_cli`` runs it in a new one, on the session's one Ray
    (``one_ray_for_the_session``): for every command that need not be a process of its own (one
    that is killed, joins a cluster by address, or must load no torch is run with ``run_cli``).
    A search runs its trials on one worker unless it says ``--workers``: each further worker is a
    process of its own that imports torch and Ray Tune (measured: a 4-trial digits search took 16
    CPU-seconds on 2 workers, 11.5 on one)."""
    from autocompress.cli import main

    args = [str(a) for a in args]
    if args[:1] == ["search"] and not {"--workers", "--address"} & set(args):
        args += ["--workers", "1"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    return CliResult(code, out.getvalue(), err.getvalue())


class CliResult:
    """What a CLI call run in this process gave: returncode, stdout, stderr (as subprocess would)."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys):
    """Run the CLI in this process (no interpreter start-up: for the many calls that fail fast).
    Use run_cli for anything that starts Ray or must be a separate process."""
    from autocompress.cli import main

    def call(*args):
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return call
