"""The README's Python example runs as it stands (digits, a few trials, real Ray); the README stays short and
its links and the docs' links resolve."""

import os
import re
import subprocess
import sys
import pandas as pd
import pytest

from tests.conftest import ROOT


@pytest.mark.slow
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


def _own_model_files(folder):
    """The task files of the README's "Bring your own model", written as the README shows them."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Bring your own model")
    section = readme[start:readme.index("\n## ", start)]  # up to the next section
    written = []
    for code in re.findall(r"```python\n(.*?)```", section, re.S):
        name = re.match(r"# (\w+\.py)\n", code).group(1)
        (folder / name).write_text(code)
        written.append(name.removesuffix(".py"))
    return written


@pytest.mark.slow
def test_the_readme_own_model_examples_run_as_written(tmp_path):
    import autocompress  # noqa: F401  (first, as the README says: torchvision then imports beside the CPU torch)

    pytest.importorskip("torchvision")
    pytest.importorskip("transformers")
    modules = _own_model_files(tmp_path)
    assert modules == ["vision_task", "text_task"]
    env_path = f"{tmp_path}{os.pathsep}{ROOT}"
    for module in modules:
        proc = subprocess.run([sys.executable, "-m", "autocompress.cli", "inspect", "--task", f"{module}:make_task"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, PYTHONPATH=env_path))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "coverage of the" in proc.stdout and "quantized" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "autocompress.cli", "search", "--task", "text_task:make_task",
                           "--trials", "2", "--steps", "2", "--no-sensitivity", "--out", "runs/my-bert"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONPATH=env_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = pd.read_csv(tmp_path / "runs" / "my-bert" / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 2


def _relative_link_targets(text):
    """The files a page's markdown links name: [text](path), not http/https/mailto or a bare #anchor."""
    for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text):
        if not target.startswith(("http://", "https://", "mailto:", "#")):
            yield target.split("#", 1)[0]


def test_the_readme_is_short_and_every_relative_link_resolves():
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 250
    broken = [f"{page.relative_to(ROOT)}: {target}"
              for page in [readme, *sorted((ROOT / "docs").glob("*.md"))]
              for target in _relative_link_targets(page.read_text())
              if not (page.parent / target).exists()]
    assert not broken, broken
