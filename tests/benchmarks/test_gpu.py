"""benchmarks/gpu.py on a machine without CUDA: one line, exit 2, nothing written (no numbers faked)."""

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the benchmark would really run")
def test_without_cuda_the_gpu_benchmark_says_so_in_one_line_and_writes_nothing(tmp_path):
    result = ROOT / "benchmarks" / "results" / "gpu.json"
    before = result.read_bytes() if result.is_file() else None
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "sees no CUDA device here" in lines[0], proc.stderr
    assert "nothing measured, nothing written" in lines[0] and proc.stdout == ""
    assert (result.read_bytes() if result.is_file() else None) == before
