"""The model zoo (tests/fixtures/zoo.py): architectures users bring, as their libraries build them,
each through inspect, a 2-trial search with every technique, the export of its best file, and the
all-off plan's file reproducing the teacher. The torchvision and Hugging Face models need those
packages (the test extra installs them); without them their cases are skipped."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import autocompress
from autocompress import DistillConfig, Execution, Plan, SearchSettings
from autocompress import model_io
from tests.fixtures import zoo

QUANTIZED_GOAL, PRUNED_OR_FACTORIZED_GOAL = 0.95, 0.80
# Models still short of a coverage goal, with what is missing. The test expects them to fail the
# goal (strict xfail): once the gap is closed the case fails until it is taken off this list.
SHORT_OF_GOAL: dict[str, str] = {}


def _needs(name: str) -> None:
    package = zoo.MODELS[name][2]
    if package is not None:
        pytest.importorskip(package)


@pytest.fixture(scope="module")
def zoo_tasks():
    made = {}

    def get(name: str):
        if name not in made:
            _needs(name)
            made[name] = zoo.make_task(name)
        return made[name]

    return get


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_inspect_shows_what_each_technique_covers(name, zoo_tasks):
    info = autocompress.inspect_task(zoo_tasks(name))
    shares = info["coverage"]
    assert shares["weights"] > 0 and info["layers"]
    for part, why in info["not_compressed"].items():
        assert why and "Traceback" not in why, part
    met = shares["quantized"] >= QUANTIZED_GOAL and shares["pruned or factorized"] >= PRUNED_OR_FACTORIZED_GOAL
    if name in SHORT_OF_GOAL:
        pytest.xfail(SHORT_OF_GOAL[name]) if not met else pytest.fail(f"{name} now meets the coverage goals: "
                                                                       "take it off SHORT_OF_GOAL")
    assert met, shares


def _onnx_outputs(path, inputs) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, model_io.feed(session, inputs))[0]


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_the_all_off_plan_reproduces_the_teacher(name, zoo_tasks, tmp_path):
    task = zoo_tasks(name)
    autocompress.evaluate(task, Plan(), out_dir=tmp_path, config=DistillConfig(steps=0))
    inputs = model_io.collate([task.val[i][0] for i in range(16)])
    with torch.no_grad():
        expected = model_io.forward(task.teacher, inputs).numpy()
    got = _onnx_outputs(tmp_path / "model.onnx", inputs)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_a_search_with_every_technique_exports_its_best(name, zoo_tasks, tmp_path):
    task = zoo_tasks(name)
    settings = SearchSettings(distill=DistillConfig(steps=2, batch_size=16), sensitivity=False)
    result = autocompress.search(task, settings=settings, trials=2, out=tmp_path / "run",
                                 execution=Execution(workers=1), progress=lambda line: None)
    complete = result.trials[result.trials["state"] == "COMPLETE"]
    assert len(complete) == 2, result.trials[["number", "state"]]
    run = autocompress.load_run(tmp_path / "run")
    best = run.best(prefer="smallest")
    report = autocompress.load_run(tmp_path / "run").export(best, tmp_path / "shipped", task=task)
    assert report["measured"]["size_bytes"] == best.size_bytes
    assert best.size_bytes < run.teacher.size_bytes  # the smallest of a warm-started search is compressed
    outputs = _onnx_outputs(tmp_path / "shipped" / "model.onnx", model_io.collate([task.test[0][0]]))
    assert np.isfinite(outputs).all()
