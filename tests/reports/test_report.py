"""The report's data, files and commands, without a browser."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import pandas as pd

from autocompress.reports.collect import collect
from autocompress.reports.html_report import _script_json, report_payload
from autocompress.search.best import first_met, load_run, select
from autocompress.search.pareto import normalized_hypervolume, pareto_front
from tests.conftest import run_cli
from tests.fixtures.user_tasks import HOSTILE_NAME

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_script_json_cannot_end_its_script_element_and_round_trips():
    payload = {"name": "</script><script>alert(1)</script>", "error": "a & b \u2028 <!--"}
    text = _script_json(payload)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == payload


def test_search_writes_the_report_with_the_task_name_escaped(hostile_run):
    page = (hostile_run / "report.html").read_text()
    assert "<title>autocompress report: &lt;script&gt;alert(1)&lt;/script&gt;</title>" in page
    assert HOSTILE_NAME not in page  # not even inside the data: there it is \\u003cscript\\u003e...
    assert "Plotly" in page and len(page) > 1_000_000  # plotly.js is inside: the file works offline


def test_front_hypervolume_and_plans_agree_with_the_stored_results(synthetic_run):
    run = load_run(synthetic_run)
    data = collect(run)
    expected = pareto_front(run.trials, fidelity=run.fidelity)
    assert sorted(data.trials.loc[data.trials["on_front"], "number"]) == sorted(expected["number"])
    # the curve never falls and ends at the hypervolume of the final front
    assert np.all(np.diff(data.progress["hypervolume"]) >= 0)
    assert data.progress["hypervolume"].iloc[-1] == normalized_hypervolume(expected, run.info["teacher"])
    assert len(data.progress) == int(data.trials["full"].sum())
    # with the run's budget: the best accuracy within it, from the trial that met it first on, never falling
    within = data.progress["within_budget"]
    first = first_met(run.candidates, data.budget)
    assert not data.budget.is_empty and first is not None
    assert within.isna().sum() == list(data.progress["number"]).index(int(first["number"]))
    assert np.all(np.diff(within.dropna()) >= 0)
    assert within.iloc[-1] == select(run.candidates, data.budget)["accuracy"]  # what best answers
    # a plan rebuilt from the stored parameters says what the parameters say
    row = data.trials[data.trials["state"] == "COMPLETE"].iloc[0]
    plan = data.plans[int(row["number"])]
    assert plan.layer("fc").bits == (None if row["bits/fc"] == 32 else row["bits/fc"])
    assert plan.layer("stem.0").prune == row["prune/stem.0"] and plan.width == row["arch/width"]


@pytest.mark.slow
def test_importances_switch_to_ped_anova_beyond_fanovas_share(synthetic_run):
    payload = report_payload(load_run(synthetic_run), run_ref="runs/synthetic")
    trials = pd.read_csv(synthetic_run / "trials.csv")
    full = int(((trials["state"] == "COMPLETE") & (trials["fidelity"] == load_run(synthetic_run).fidelity)).sum())
    assert payload["importance"] == {"evaluator": "fANOVA" if full <= 200 else "PED-ANOVA", "trials": full}
    bars = payload["figures"]["importance"]["data"]
    assert [b["name"] for b in bars] == ["accuracy", "size_bytes", "latency_ms"]
    # size follows width and pruning in the synthetic cost model: one of them tops its bars
    size = dict(zip(bars[1]["y"], bars[1]["x"]))
    assert max(size, key=size.get).startswith(("arch/", "prune/"))
    assert payload["export_command"] == "autocompress best runs/synthetic"


@pytest.mark.slow
def test_report_command_writes_the_file_and_pngs(hostile_run, tmp_path):
    out, pngs = tmp_path / "r.html", tmp_path / "slides"
    proc = run_cli("report", str(hostile_run), "-o", str(out), "--png", str(pngs))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("<!DOCTYPE html>") and "works offline" in proc.stdout
    for name in ("pareto_size.png", "pareto_latency.png", "hypervolume.png"):
        data = (pngs / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name


@pytest.mark.slow
def test_report_of_a_folder_that_is_no_run_is_one_line(tmp_path):
    proc = run_cli("report", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "not a run directory" in proc.stderr


@pytest.mark.slow
def test_best_exports_a_trial_chosen_in_the_report(hostile_run, tmp_path):
    run = load_run(hostile_run)
    number = int(run.candidates["number"].iloc[-1])
    proc = run_cli("best", str(hostile_run), "--trial", str(number), "--export", str(tmp_path / "shipped"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "shipped" / "model.onnx").read_bytes() == run.candidate(number).artifact.read_bytes()
    screening = run.trials[(run.trials["state"] == "COMPLETE") & (run.trials["rung"] == 0)]
    refused = run_cli("best", str(hostile_run), "--trial", str(int(screening["number"].iloc[0])))
    assert refused.returncode == 2 and "lower rungs and failed trials cannot be shipped" in refused.stderr


def _one_line_error(proc) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autocompress: error: "), proc.stderr
    return lines[0]


@pytest.mark.slow
def test_report_output_that_cannot_be_written_is_one_line_and_leaves_nothing(hostile_run, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    protected = folder / "kept.html"
    protected.write_text("mine")
    protected.chmod(0o444)
    targets = {tmp_path / "missing" / "r.html": "does not exist", folder: "is a folder",
               protected: "is read-only", Path("/proc/report.html"): "cannot write the report"}  # not even root writes there
    if os.geteuid() != 0:  # root writes into a read-only folder anyway
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        targets[locked / "r.html"] = "cannot write the report"
    def beside(target):  # the target and anything named after it (a temporary file) in its folder
        return sorted(p for p in target.parent.iterdir() if target.name in p.name) if target.parent.is_dir() else None

    for target, problem in targets.items():
        before = beside(target)
        line = _one_line_error(run_cli("report", str(hostile_run), "-o", str(target)))
        assert problem in line and str(target) in line, line
        assert beside(target) == before, target  # no .tmp left behind
    assert sorted(folder.iterdir()) == [protected]
    assert protected.read_text() == "mine" and not (tmp_path / "missing").exists()
    line = _one_line_error(run_cli("report", str(hostile_run), "-o", str(tmp_path / "r.html"), "--png", str(protected)))
    assert "--png" in line and not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_a_run_without_recorded_groups_shows_each_prune_knob_on_its_own_layer(synthetic_run):
    run = load_run(synthetic_run)
    assert "groups" not in run.info["model"]  # written like runs made before run.json recorded them
    data = collect(run)
    assert data.groups == {c.removeprefix("prune/"): [c.removeprefix("prune/")] for c in run.trials if c.startswith("prune/")}
    payload = report_payload(run, run_ref="runs/synthetic")
    number, plan = next(iter(data.plans.items()))
    shown = payload["plans"][str(number)]
    for j, name in enumerate(data.layers):
        expected = plan.width * (1 - plan.layer(name).prune) if name in data.groups else 1.0
        assert shown["kept"][j] == expected, name


@pytest.mark.slow
def test_a_report_is_never_written_over_the_runs_own_files(synthetic_run):
    from autocompress.reports import write_report
    from autocompress.task import UsageError

    own = [path for path in synthetic_run.rglob("*") if path.is_file() and path.name != "report.html"]
    before = {path: path.read_bytes() for path in own}
    for target in [*own[:6], synthetic_run, synthetic_run / "trials.csv", synthetic_run / "notes.txt"]:
        with pytest.raises(UsageError, match="inside the run directory"):
            write_report(synthetic_run, target)
    assert {path: path.read_bytes() for path in own} == before and not (synthetic_run / "notes.txt").exists()
    assert write_report(synthetic_run, synthetic_run / "report.html").read_text().startswith("<!DOCTYPE html>")


READ_WITHOUT_TORCH = """
import sys
import autocompress.cli as cli
codes = [cli.main(["best", sys.argv[1], "--max-size", "1GB"]), cli.main(["report", sys.argv[1], "-o", sys.argv[2]])]
print(codes, sorted(m for m in ("torch", "torch_pruning", "onnx", "onnxruntime") if m in sys.modules))
"""


@pytest.mark.slow
def test_best_and_report_read_a_run_without_torch_or_the_compression_stack(hostile_run, tmp_path):
    """The read model (best, the report) needs none of torch, Torch-Pruning, ONNX or ONNX Runtime:
    it starts fast, and a machine without the compression stack can read a run."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run([sys.executable, "-c", READ_WITHOUT_TORCH, str(hostile_run), str(tmp_path / "r.html")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[0, 0] []"
    assert (tmp_path / "r.html").stat().st_size > 0


def test_a_trial_row_without_its_measurements_is_one_line_naming_trials_csv(synthetic_run, cli):
    """The synthetic run's trials carry no parameter counts: best says the table is damaged, in one line."""
    proc = cli("best", str(synthetic_run), "--max-size", "1GB")
    assert proc.returncode == 2 and "trials.csv (trial" in proc.stderr and "missing or not a number" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
