"""`autocompress dashboard`: optuna-dashboard on the run's study, listening on 127.0.0.1 only."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from autocompress.reports.dashboard import study_storage
from autocompress.search.best import Run
from autocompress.task import UsageError
from tests.conftest import ROOT, ctrl_c_as_in_a_terminal


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dashboard_serves_the_study_on_loopback_and_says_how_to_reach_it(hostile_run):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "autocompress.cli", "dashboard", str(hostile_run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        studies = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as response:
                    studies = json.loads(response.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        assert studies is not None, "the dashboard never answered"
        summary = studies["study_summaries"]
        assert [s["study_name"] for s in summary] == ["autocompress"]
        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="tcp") if c.status == "LISTEN"]
        assert listening and all(addr.ip == "127.0.0.1" and addr.port == port for addr in listening)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert f"ssh -N -L {port}:127.0.0.1:{port}" in output and "Traceback" not in output


def test_a_database_study_needs_its_url_again(tmp_path):
    run = Run(tmp_path, {"study": {"name": "s", "storage": "postgresql://alice:***@db/studies"}}, None)
    with pytest.raises(UsageError, match="--storage URL"):
        study_storage(run, None)
    assert study_storage(run, "postgresql://alice:pw@db/studies") == "postgresql://alice:pw@db/studies"


@pytest.mark.slow
def test_a_port_in_use_is_one_line_and_nothing_says_it_is_served(hostile_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "autocompress.cli", "dashboard", str(hostile_run), "--port", str(port)],
                              capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == (f"autocompress: error: cannot listen on 127.0.0.1:{port} (Address already in use); "
                                   "choose another --port")
    assert proc.stdout == ""  # no "Listening on", no "open http://...": nothing is served
