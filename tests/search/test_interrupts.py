"""Ctrl-C as a terminal sends it: SIGINT to the whole process group, the Ray workers included."""

import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, ctrl_c_as_in_a_terminal


def _search_stopped_when(marker: str, out, *extra) -> tuple[int, str]:
    """Start ``autocompress search`` in its own process group, press Ctrl-C once ``marker`` is
    printed; (exit code, everything it printed)."""
    log = out.parent / "search.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "autocompress.cli", "search", "--task", "digits", "--trials", "6",
                                 "--steps", "5", "--out", str(out), *extra], stdout=sink, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True,
                                preexec_fn=ctrl_c_as_in_a_terminal)
        deadline = time.monotonic() + 300
        while marker not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=180)
    return code, log.read_text()


@pytest.mark.slow
def test_ctrl_c_during_the_sensitivity_scan_exits_130_with_the_command_that_continues(tmp_path, digits_task):
    """(The README: 130 and the resume command.) The command is printed once, quoted for the
    shell: an --out with a space in it survives copy and paste."""
    out = tmp_path / "my run"
    code, printed = _search_stopped_when("sensitivity scan:", out)
    assert code == 130, printed
    commands = [line.partition("continue with: ")[2] for line in printed.splitlines() if "continue with: " in line]
    assert len(commands) == 1, printed
    args = shlex.split(commands[0])
    assert args[:2] == ["autocompress", "search"] and args[args.index("--out") + 1] == str(out)
    assert args[-1] == "--resume" and "Traceback" not in printed
    scan = out / "sensitivity.csv"
    assert not scan.exists() or "KeyboardInterrupt" not in scan.read_text()  # what Ctrl-C cut is measured again
