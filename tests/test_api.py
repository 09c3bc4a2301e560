"""The Python API: what `autocompress` exports, `inspect_task`, and `Run.export` called from Python."""

import json

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import autocompress
from autocompress import DistillConfig, LayerPlan, Plan, Task, UsageError
from tests.conftest import run_cli, search_here


class ConvOnly(nn.Module):
    """A teacher whose output layer is a 1x1 conv head, then global average pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.head(torch.relu(self.stem(x))).mean(dim=(2, 3))


def conv_only_task():
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(24, 1, 6, 6, generator=g), torch.randint(0, 3, (24,), generator=g))
    return Task(name="conv-only", teacher=ConvOnly().eval(), train=data, val=data, test=data,
                example_inputs=data.tensors[0][:1])


def flatten_only_task():
    data = TensorDataset(torch.rand(8, 2, 3), torch.randint(0, 3, (8,)))
    return Task(name="flatten-only", teacher=nn.Flatten().eval(), train=data, val=data, test=data,
                example_inputs=data.tensors[0][:1])


def test_the_public_names_are_exported():
    for name in ("Candidate", "NothingFeasible", "Run", "inspect_task", "load_run", "Plan", "LayerPlan", "Metrics"):
        assert name in autocompress.__all__ and getattr(autocompress, name)


def test_importing_autocompress_loads_no_torch_and_torchvision_still_imports_after_it():
    """A run is read without torch (best, report), and the latency actor's process holds none
    (its module imports none); torchvision's models, imported after autocompress as the README
    says, still import beside the CPU torch (compat.py)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys, autocompress, autocompress.search.latency_actor\nprint('torch' in sys.modules)\n"
            "try:\n    from torchvision.models import resnet18\n    print(type(resnet18()).__name__)\n"
            "except ModuleNotFoundError:\n    print('ResNet')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "ResNet"]


def test_a_ray_worker_loads_neither_optuna_nor_pandas_nor_the_controller():
    """What a trial's process imports (``search.worker``): compressing, fine-tuning, measuring; not the search."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys, autocompress.search.worker\n"
            "print(*[name in sys.modules for name in ('optuna', 'pandas', 'autocompress.search.controller')])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "False", "False"]


@pytest.mark.slow
def test_inspect_task_describes_the_space_the_cli_prints(digits_task):
    info = autocompress.inspect_task(digits_task)
    json.dumps(info)  # plain data
    assert info["head"] == "fc" and info["task"]["splits"] == {"train": 1078, "val": 359, "test": 360}
    assert {layer["name"] for layer in info["layers"]} >= {"stem.0", "fc"}
    assert info["space"]["bits/fc"] == [32, 8, 4, 2]
    proc = run_cli("inspect", "--task", "digits")
    assert proc.returncode == 0, proc.stderr
    assert f"search space: {len(info['space'])} parameters" in proc.stdout
    assert all(layer["name"] in proc.stdout for layer in info["layers"])


def test_a_teacher_whose_output_layer_is_a_convolution_is_inspected():
    info = autocompress.inspect_task(conv_only_task())
    assert info["head"] == "head" and "head (outputs)" in info["not_compressed"]
    assert info["coverage"]["quantized"] == 1.0


def test_a_teacher_that_runs_no_layer_to_compress_is_one_line():
    proc = run_cli("inspect", "--task", "tests.test_api:flatten_only_task")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "runs no Conv1d, Conv2d or Linear layer" in proc.stderr


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, digits_task):
    """A run directory assembled from the teacher and two plans evaluated here (no Ray, no fine-tuning)."""
    out, config = tmp_path_factory.mktemp("api") / "run", DistillConfig(steps=0)
    teacher = autocompress.evaluate(digits_task, Plan(), out_dir=out / "teacher", config=config)
    plans = [Plan(layers={"fc": LayerPlan(bits=8)}), Plan(layers={"fc": LayerPlan(bits=4)})]
    rows = [{"number": n, "state": "COMPLETE", **autocompress.evaluate(
        digits_task, plan, out_dir=out / "artifacts" / str(n), config=config).to_dict()} for n, plan in enumerate(plans)]
    pd.DataFrame(rows).to_csv(out / "trials.csv", index=False)
    (out / "run.json").write_text(json.dumps({"task": {"name": "digits", "spec": "digits"},
                                              "teacher": teacher.to_dict(), "settings": {"fidelity": teacher.fidelity}}))
    return out


def test_run_export_from_python_checks_and_writes_the_card(small_run, tmp_path, digits_task):
    run = autocompress.load_run(small_run)
    report = run.export(1, tmp_path / "shipped", task=digits_task)
    shipped = tmp_path / "shipped"
    assert (shipped / "model.onnx").read_bytes() == run.candidate(1).artifact.read_bytes()
    assert report["measured"]["size_bytes"] == report["recorded"]["size_bytes"] == run.candidate(1).size_bytes
    assert report["measured"]["accuracy_val"] == report["recorded"]["accuracy_val"]  # same file, same data
    assert json.loads((shipped / "metrics.json").read_text()) == json.loads(json.dumps(report))
    card = (shipped / "MODEL_CARD.md").read_text()
    assert card.startswith("# digits: trial 1, compressed by autocompress") and "Chosen: trial 1, picked by hand." in card
    assert autocompress.Plan.from_json((shipped / "plan.json").read_text()) == run.candidate(1).plan


def test_run_export_refuses_another_task_naming_the_keyword(small_run, tmp_path, tiny_task):
    run = autocompress.load_run(small_run)
    with pytest.raises(UsageError, match=r"task='tiny' is not the task of .* \('digits'\)"):
        run.export(0, tmp_path / "shipped", task=tiny_task)
    with pytest.raises(UsageError, match="give task= or data_dir=, not both"):
        run.export(0, tmp_path / "shipped", task=tiny_task, data_dir="data")
    assert not list(tmp_path.iterdir())


def test_an_export_is_all_or_nothing_even_when_the_target_fills_up_meanwhile(tmp_path):
    from autocompress.evaluators.verify import staged_folder

    target = tmp_path / "shipped"
    with pytest.raises(UsageError, match="could not be written"):
        with staged_folder(target, run_dir=tmp_path / "run") as staging:
            (staging / "model.onnx").write_bytes(b"ours")
            target.mkdir()
            (target / "theirs.txt").write_text("written by someone else meanwhile")
    assert [p.name for p in tmp_path.iterdir()] == ["shipped"]
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    with pytest.raises(RuntimeError, match="measurement failed"):
        with staged_folder(tmp_path / "other", run_dir=tmp_path / "run"):
            raise RuntimeError("measurement failed")
    assert [p.name for p in tmp_path.iterdir()] == ["shipped"]


@pytest.mark.parametrize("call, keyword", [
    (lambda task: autocompress.search("digits"), "search(task='digits')"),
    (lambda task: autocompress.search(task, settings={"steps": 3}), "search(settings=...)"),
    (lambda task: autocompress.search(task, execution={"workers": 2}), "search(execution=...)"),
    (lambda task: autocompress.search(task, out=None), "search(out=None)"),
    (lambda task: autocompress.search(task, out=3), "search(out=3)"),
    (lambda task: autocompress.search(task, out=""), "search(out='')"),
    (lambda task: autocompress.search(task, resume="yes"), "search(resume='yes')"),
    (lambda task: autocompress.search(task, progress="print"), "search(progress=...)"),
    (lambda task: autocompress.evaluate(task, "plan.json", out_dir="x"), "evaluate(plan='plan.json')"),
    (lambda task: autocompress.evaluate(task, Plan(), out_dir=None), "evaluate(out_dir=None)"),
    (lambda task: autocompress.evaluate(task, Plan(), out_dir="x", config={"steps": 1}), "evaluate(config=...)"),
    (lambda task: autocompress.inspect_task(3), "inspect_task(task=3)"),
])
def test_the_python_api_refuses_a_wrong_type_in_one_line_naming_the_keyword(call, keyword, digits_task, tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as refused:
        call(digits_task)
    message = str(refused.value)
    assert message.startswith(keyword) and "give " in message and "\n" not in message
    assert not list(tmp_path.iterdir())  # nothing written: no run folder, no plan.json


def test_run_best_refuses_a_budget_that_is_not_a_budget(small_run):
    with pytest.raises(UsageError, match=r"^Run.best\(budget=\.\.\.\): expected a Budget or None, got dict"):
        autocompress.load_run(small_run).best(budget={"max_size_bytes": 1000})


def test_a_plan_naming_a_layer_the_model_lacks_is_refused_before_anything_is_written(digits_task, tmp_path):
    plan = Plan(layers={"fc": LayerPlan(bits=8), "decoder.fc9": LayerPlan(bits=4)}, depth={"nowhere": 1})
    with pytest.raises(UsageError, match=r"the plan names decoder.fc9, nowhere, which this model's search space"):
        autocompress.evaluate(digits_task, plan, out_dir=tmp_path / "candidate", config=DistillConfig(steps=0))
    assert not (tmp_path / "candidate" / "model.onnx").exists()


def test_techniques_given_as_one_name_is_that_technique():
    assert autocompress.SearchSettings(techniques="prune").techniques == ("prune",)


@pytest.mark.slow
def test_errors_name_the_keyword_to_python_callers_and_the_flag_to_the_cli(tmp_path, tiny_task):
    """The same check speaks both: a Python caller reads keywords (data_dir, out, resume=True),
    the CLI its flags."""
    with pytest.raises(UsageError) as raised:
        autocompress.load_task("digits", data_dir=tmp_path / "missing")
    assert "data_dir" in str(raised.value) and "--" not in str(raised.value)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError) as raised:
        autocompress.search(tiny_task, out=tmp_path / "taken", trials=1)
    assert str(raised.value).startswith("out ") and "--" not in str(raised.value)
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    proc = search_here("search", "--task", "digits", "--out", str(tmp_path / "taken"), "--trials", "1")
    assert proc.returncode == 2 and proc.stderr.splitlines()[-1].startswith("autocompress: error: --out ")
