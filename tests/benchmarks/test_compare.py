"""benchmarks/compare.py on digits, end to end: a real search under a time budget, the manual
recipe and uniform int8, the fronts re-measured side by side, the result files and --keep."""

import copy
import doctest
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import compare  # noqa: E402
import manual  # noqa: E402
from keep import KeepMismatch  # noqa: E402

FRONT_KEYS = {"seed": int, "trial": int, "size_x": float, "latency_x": float, "test_accuracy": float, "drop_pt": float}
TODAY_KEYS = ("hypervolume", "best_size_ratio_1pt", "best_latency_ratio_1pt", "trials", "seeds", "wall_s",
              "complete_trials", "command", "median_hypervolume")


BUDGET_S = 60.0  # a quiet machine stores ~16 trials in 30 s; beside another test session on a slow machine,
# 30 s went to the start and the scan and stored none (the test needs one)
TRIALS = 4  # the joint search ends at 4 trials, or at BUDGET_S on a slow machine


def _argv(tmp: Path, *extra: str) -> list[str]:
    return ["--task", "digits", "--time-budget", str(BUDGET_S), "--trials", str(TRIALS), "--seeds", "0", "--steps", "20", "--workers", "1",
            "--strategies", "joint", "manual", "uniform-int8", "--keep", str(tmp / "keep"),
            "--results", str(tmp / "results"), "--reports", str(tmp / "reports"), "--rounds", "2", "--runs", "10",
            "--quiet-timeout", "0", *extra]


@pytest.fixture(scope="module")
def compared(tmp_path_factory, teacher_cache):
    tmp = tmp_path_factory.mktemp("compare")
    args = compare.parse_args(_argv(tmp))
    result = compare.compare(args)
    return tmp, args, result


def _walk(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    else:
        yield value


@pytest.mark.slow
def test_result_json_keeps_todays_keys_and_adds_budget_and_front(compared):
    tmp, args, _ = compared
    result = json.loads((tmp / "results" / "digits.json").read_text())
    assert {"task", "teacher", "teacher_latency_ms_all_runs", "command", "machine", "steps",
            "strategies"} <= set(result)
    assert list(result["strategies"]) == ["joint", "manual", "uniform-int8"]
    for name, entry in result["strategies"].items():
        assert set(TODAY_KEYS) <= set(entry), name
        assert entry["budget_s"] == (BUDGET_S if name == "joint" else None)
        assert entry["front"], name
        for candidate in entry["front"]:
            for key, kind in FRONT_KEYS.items():
                assert isinstance(candidate[key], kind) and not isinstance(candidate[key], bool), (name, key)
            assert candidate["seed"] == 0 and candidate["size_x"] > 0 and candidate["latency_x"] > 0
            teacher_test = result["teacher_remeasured"]["test_accuracy"]
            assert candidate["drop_pt"] == pytest.approx(100 * (teacher_test - candidate["test_accuracy"]), abs=1e-3)
    assert not [v for v in _walk(result) if isinstance(v, str) and v in ("True", "False", "true", "false")]
    assert result["strategies"]["joint"]["complete_trials"][0] >= 1


def test_front_numbers_are_those_of_the_exported_files(compared, digits_task):
    from autocompress.evaluators.measure import onnx_metric, onnx_session

    tmp, args, result = compared
    teacher_file = tmp / "keep" / "joint-0" / "teacher" / "model.onnx"
    teacher_bytes = teacher_file.stat().st_size
    assert result["teacher_remeasured"]["size_bytes"] == teacher_bytes
    candidate = result["strategies"]["joint"]["front"][0]
    path = tmp / "keep" / "joint-0" / "artifacts" / str(candidate["trial"]) / "model.onnx"
    assert candidate["size_x"] == pytest.approx(teacher_bytes / path.stat().st_size, rel=1e-3)
    test = onnx_metric(onnx_session(str(path)), digits_task.test, digits_task.metric)
    assert candidate["test_accuracy"] == pytest.approx(test, abs=1e-6)
    manual_plans = {(c["trial"], c["plan"]) for c in result["strategies"]["manual"]["front"]}
    assert manual_plans and manual_plans <= {(0, "global30"), (1, "global50"), (2, "global70")}


def test_markdown_headline_is_one_candidate(compared):
    tmp, _, result = compared
    text = (tmp / "results" / "digits.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("**Headline**")]
    assert len(lines) == 1
    head = result["headline"]
    if head is not None:  # one file's size and latency ratios and test accuracy, from the re-measured front
        assert head in [{"strategy": head["strategy"], **c} for c in result["strategies"][head["strategy"]]["front"]]
        assert f"trial {head['trial']}" in lines[0] and f"{head['size_x']:.1f}x smaller" in lines[0]
    assert (tmp / "results" / "digits.png").stat().st_size > 0


def test_keep_reuses_finished_runs_and_refuses_other_settings(compared):
    tmp, args, _ = compared
    stored = tmp / "keep" / "manual-0" / "result.json"
    before = stored.stat().st_mtime_ns
    again = compare.run_one("manual", 0, args, tmp / "keep")
    assert stored.stat().st_mtime_ns == before and len(again["trials"]) == 3
    other = compare.parse_args(_argv(tmp, "--steps", "40"))
    with pytest.raises(KeepMismatch) as refused:
        compare.run_one("joint", 0, other, tmp / "keep")
    message = str(refused.value)
    assert "\n" not in message and re.search(r"made with steps 20, this request has steps 40", message)
    with pytest.raises(SystemExit):  # the command line says the same, and stops
        compare.main(_argv(tmp, "--steps", "40", "--strategies", "manual"))


def test_a_kept_search_continues_only_with_the_budget_it_has_left(compared):
    tmp, args, _ = compared
    run_dir = tmp / "keep" / "joint-0"
    run = json.loads((run_dir / "run.json").read_text())
    searched, stored = compare.searched_s(run), run["sessions"][-1]["trials"]
    assert (searched >= BUDGET_S or stored >= TRIALS) and compare.budget_left(run_dir, args) == 0  # done: reused
    more = compare.parse_args(_argv(tmp, "--time-budget", "90", "--trials", str(stored + 1)))
    assert compare.budget_left(run_dir, more) == round(90 - searched, 1)  # continues for what is left
    assert compare.budget_left(run_dir, compare.parse_args(_argv(tmp, "--trials", str(stored + 1)))) == (
        0 if searched >= 0.98 * BUDGET_S else round(BUDGET_S - searched, 1))


def test_manual_plans_remove_30_50_70_percent_of_channels_globally(digits_task):
    """The plans' per-group ratios are exactly those Torch-Pruning's own global magnitude pruner
    leaves, their totals 30/50/70% of the channels, and the product removes those channels."""
    import torch_pruning as tp

    from autocompress.compressors.pipeline import build, task_context

    info = task_context(digits_task).discovery
    groups = {g.name: g.channels for g in info.groups}
    total = sum(groups.values())
    plans = manual.manual_plans(digits_task)
    assert sorted(plans) == ["global30", "global50", "global70"]
    for amount, plan in zip(manual.AMOUNTS, (plans["global30"], plans["global50"], plans["global70"])):
        removed = {name: round(plan.layer(name).prune * channels) for name, channels in groups.items()}
        assert sum(removed.values()) == total - int(total * (1 - amount))
        assert len({plan.layer(name).prune for name in groups}) > 1  # ranked across groups, not per group
        assert all(plan.layer(layer.name).bits == 8 for layer in info.layers)
        model = copy.deepcopy(digits_task.teacher).eval()
        pruner = tp.pruner.MetaPruner(model, digits_task.example_inputs, importance=tp.importance.MagnitudeImportance(),
                                      pruning_ratio=amount, global_pruning=True,
                                      ignored_layers=[model.get_submodule(info.head)])
        pruner.step()
        assert removed == {name: channels - model.get_submodule(name).out_channels for name, channels in groups.items()}
        notes = build(digits_task, plan).notes
        built = {m[1]: int(m[2]) - int(m[3]) for m in (re.match(r"pruned (\S+) (\d+)->(\d+)", n) for n in notes) if m}
        assert built == {name: r for name, r in removed.items() if r}


@pytest.mark.parametrize("module", ["manual", "keep", "remeasure", "compare_report", "common", "controller_overhead", "hv_ceiling",
                                    "latency_states", "lowrank_pays", "front_goal", "tucker_pays", "latency_agreement"])
def test_benchmark_doctests(module):
    failed, _ = doctest.testmod(__import__(module), optionflags=doctest.ELLIPSIS)
    assert failed == 0


def test_the_ceiling_bounds_every_strategys_remeasured_hypervolume(tmp_path):
    import hv_ceiling

    stored = (ROOT / "benchmarks" / "results" / "mnist-lenet5.json").read_text()
    (tmp_path / "mnist-lenet5.json").write_text(stored)
    assert hv_ceiling.main(["mnist-lenet5", "--results", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "mnist-lenet5.ceiling.json").read_text())
    assert out["hypervolume"] > 0 and set(out["fraction"]) == set(json.loads(stored)["strategies"])
    assert all(0 <= share <= 1 for share in out["fraction"].values())
    with pytest.raises(SystemExit):
        hv_ceiling.main(["no-such-task", "--results", str(tmp_path)])


def test_manual_plans_of_a_transformer_whose_token_table_joins_the_width_group():
    """The model-width group of a transformer also holds its token table (it loses the same
    channels); the manual recipe still finds every Torch-Pruning group among the space's groups."""
    import torch
    from torch.utils.data import TensorDataset

    from autocompress import Task
    from autocompress.compressors.pipeline import task_context
    from autocompress.tasks.sst2 import TextEncoder

    torch.manual_seed(0)
    ids = torch.randint(1, 50, (32, 8))
    data = TensorDataset(ids, torch.arange(32) % 2)
    task = Task(name="tiny-text", teacher=TextEncoder(vocab=50, dim=16, num_heads=2, ffn=32, depth=2, max_tokens=8),
                train=data, val=data, test=data, example_inputs=ids[:1])
    groups = {g.name: g for g in task_context(task).discovery.groups if g.unit == "channels"}
    assert any("tokens" in g.members for g in groups.values())
    total = sum(g.channels for g in groups.values())
    for amount, plan in zip(manual.AMOUNTS, manual.manual_plans(task).values()):
        removed = sum(round(plan.layer(name).prune * g.channels) for name, g in groups.items())
        assert removed == total - int(total * (1 - amount))


@pytest.mark.parametrize("flag, value", [("--time-budget", "0"), ("--time-budget", "-5"), ("--time-budget", "nan"),
                                         ("--trials", "0"), ("--workers", "0"), ("--steps", "-1"), ("--seeds", "-1"),
                                         ("--rounds", "0"), ("--runs", "0"), ("--quiet-timeout", "inf")])
def test_a_number_out_of_range_is_one_line_naming_the_flag(flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        compare.parse_args(["--task", "digits", f"{flag}={value}", "--keep", str(tmp_path / "keep")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert refused.value.code == 2 and lines[-1].startswith("compare.py: error: " + flag)
    assert "must be a finite number" in lines[-1]


def test_a_keep_that_is_a_file_an_unknown_task_and_missing_data_are_refused_before_any_search(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        compare.parse_args(["--task", "digits", "--keep", str(tmp_path / "file")])
    assert "a file, not a folder" in capsys.readouterr().err
    assert compare.main(["--task", "no-such-task", "--keep", str(tmp_path / "keep")]) == 2
    assert "no-such-task" in capsys.readouterr().err
    missing = tmp_path / "missing"
    assert compare.main(["--task", "cifar10-resnet20", "--data-dir", str(missing), "--keep", str(tmp_path / "keep")]) == 2
    error = capsys.readouterr().err
    assert str(missing) in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "keep").exists()


@pytest.mark.parametrize("script, extra", [("lowrank_pays", []),
                                           ("front_goal", ["--size-x", "60", "--latency-x", "2.5", "--drop-pt", "0.2"])])
def test_a_script_given_a_folder_that_is_no_run_says_so_in_one_line(script, extra, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        __import__(script).main([str(tmp_path / "missing"), "--out", str(tmp_path / "out.json"), *extra])
    error = capsys.readouterr().err.strip()
    assert refused.value.code == 2 and len(error.splitlines()) == 1 and error.startswith(f"{script}.py: error: ")
    assert str(tmp_path / "missing") in error and not (tmp_path / "out.json").exists()


def test_refit_pays_given_missing_data_says_so_in_one_line(tmp_path, capsys):
    import refit_pays

    with pytest.raises(SystemExit) as refused:
        refit_pays.main(["--data-dir", str(tmp_path / "missing"), "--no-write"])
    error = capsys.readouterr().err.strip().splitlines()
    assert refused.value.code == 2 and error[-1].startswith("refit_pays.py: error: ") and "Traceback" not in error
    assert str(tmp_path / "missing") in error[-1]


@pytest.mark.parametrize("extra", [["--data-dir", "{missing}"], ["--task", "digits", "--layers", "fc"]])
def test_tucker_pays_given_missing_data_or_no_convolution_says_so_in_one_line(extra, tmp_path, capsys):
    import tucker_pays

    with pytest.raises(SystemExit) as refused:
        tucker_pays.main([x.format(missing=tmp_path / "missing") for x in extra] + ["--out", str(tmp_path / "out.json")])
    error = capsys.readouterr().err.strip().splitlines()  # progress lines (loading the task), then the error
    assert refused.value.code == 2 and error[-1].startswith("tucker_pays.py: error: ") and "Traceback" not in error
    assert not (tmp_path / "out.json").exists()
