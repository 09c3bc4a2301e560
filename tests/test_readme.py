"""The README's Python example runs as it stands (digits, a few trials, real Ray)."""

import os
import re
import subprocess
import sys
import pandas as pd

from tests.conftest import ROOT


def test_the_readme_python_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "autocompress.search(" in code and "resume=True" in code
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = pd.read_csv(tmp_path / "runs" / "api-demo" / "trials.csv")
    assert trials["duplicate_of"].isna().sum() == 8  # 8 trials (a repeated plan is answered, not counted)
    assert (tmp_path / "runs" / "one-plan" / "model.onnx").is_file()
