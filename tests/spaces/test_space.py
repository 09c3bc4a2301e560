import copy

import optuna
import pytest
import torch
from torch import nn

from autocompress.compressors.pipeline import task_context
from autocompress.compressors.quantize import calibrate, freeze, prepare_qat
from autocompress.evaluators.export import export_onnx
from autocompress.spaces.layers import discover
from autocompress.search.first_trials import warm_start_plans
from autocompress.search.proposers.startup import startup_plans
from autocompress.spaces.space import SearchSpace, applied_params, techniques_used


def test_digits_groups_tie_residual_layers_together(digits_task):
    info = task_context(digits_task).discovery
    groups = {g.name: g.members for g in info.groups}
    assert groups["stem.0"] == ("stem.0", "stage1.0.conv2", "stage1.1.conv2")
    assert groups["down.0"] == ("down.0", "stage2.0.conv2", "stage2.1.conv2")
    assert info.head == "fc" and all(info.head not in m for m in groups.values())
    assert info.stages == {"stage1": ("stage1.0", "stage1.1"), "stage2": ("stage2.0", "stage2.1")}


def test_space_has_one_prefixed_parameter_per_knob(digits_task):
    space = SearchSpace(task_context(digits_task).discovery)
    names = space.param_names()
    assert {n.split("/")[0] for n in names} == {"prune", "bits", "rank", "arch", "use"}
    assert {n for n in names if n.startswith("use/")} == {"use/prune", "use/quant", "use/lowrank", "use/student"}
    assert "prune/stem.0" in names and "prune/stage1.0.conv2" not in names  # groups, not layers
    assert "bits/fc" in names and "arch/depth/stage2" in names and "arch/width" in names


def test_suggested_plan_round_trips_through_params(digits_task):
    space = SearchSpace(task_context(digits_task).discovery)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=1))
    gated_off = 0
    for _ in range(12):
        trial = study.ask(fixed_distributions=space.distributions())  # how the searcher samples a plan
        plan = space.plan_from_params(trial.params)
        assert set(trial.params) == set(space.param_names())
        assert space.plan_from_params(space.params_from_plan(plan)) == plan
        # trials.csv shows the knobs applied: the same values whatever a gated-off knob sampled
        knobs = {k: v for k, v in applied_params(trial.params, trial.distributions, plan).items()
                 if not k.startswith("use/")}
        assert knobs == {k: v for k, v in space.params_from_plan(plan).items() if not k.startswith("use/")}
        gated_off += knobs != {k: v for k, v in trial.params.items() if not k.startswith("use/")}
        study.tell(trial, [0.0, 0.0])
    assert gated_off > 0  # some trial sampled inactive knobs that trials.csv must not show


def test_layers_where_low_rank_cannot_save_parameters_have_no_rank_knob_and_a_reason():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3))
    info = discover(net, torch.randn(1, 2))
    first = info.layer("0")
    assert first.rank_ratios == () and "would not save parameters" in first.rank_reason
    assert "rank/0" not in SearchSpace(info).param_names()


def test_a_convolution_with_a_kernel_larger_than_1x1_offers_tucker2_beside_svd(digits_task):
    info = task_context(digits_task).discovery
    space = SearchSpace(info)
    assert space.distributions()["rank/stage2.0.conv1"].choices == (1.0, 0.5, -0.5, 0.25, -0.25)  # weights kept, down
    assert space.distributions()["rank/fc"].choices == (1.0, 0.5, 0.25)  # a linear layer: SVD only
    plan = space.plan_from_params({"rank/stage2.0.conv1": -0.25, "rank/fc": 0.5, "use/lowrank": 1})
    assert plan.layer("stage2.0.conv1").decomposition == "tucker2" and plan.layer("stage2.0.conv1").rank == 0.25
    assert plan.layer("fc").decomposition == "svd" and space.params_from_plan(plan)["rank/stage2.0.conv1"] == -0.25
    one_by_one = discover(nn.Sequential(nn.Conv2d(64, 64, 1)), torch.randn(1, 64, 4, 4)).layer("0")
    assert one_by_one.rank_ratios == (0.25,)  # a 1x1 kernel: Tucker-2 would be the SVD with one more layer


def test_unknown_parameters_are_refused(digits_task):
    space = SearchSpace(task_context(digits_task).discovery)
    with pytest.raises(ValueError, match="not in this search space"):
        space.plan_from_params({"prune/nonexistent": 0.5})


def test_a_single_technique_space_searches_only_its_knobs(digits_task):
    info = task_context(digits_task).discovery
    quant = SearchSpace(info, techniques=("quant",))
    assert quant.param_names() and all(n.startswith("bits/") for n in quant.param_names())
    assert [p.summary() for p in warm_start_plans(quant)] == ["int8", "int4/8"]  # the recipes of pure quantization
    student = SearchSpace(info, techniques=("student",))
    assert set(student.param_names()) == {"arch/width", "arch/depth/stage1", "arch/depth/stage2"}
    assert warm_start_plans(student) == []
    plan = student.plan_from_params({"arch/width": 0.5, "arch/depth/stage1": 1, "arch/depth/stage2": 2})
    assert all(layer.bits is None and layer.prune == 0 for _, layer in plan.layers) and plan.width == 0.5
    with pytest.raises(ValueError, match="subset of prune, quant, lowrank, student"):
        SearchSpace(info, techniques=("distill",))


def test_startup_plans_try_each_technique_alone_first(digits_task):
    from autocompress.spaces.space import techniques_used

    space = SearchSpace(task_context(digits_task).discovery)
    plans = startup_plans(space, 8, seed=0)
    assert len(plans) == 8
    alone = [techniques_used(p) for p in plans[:4]]
    assert all(used <= {t} for used, t in zip(alone, ["prune", "quant", "lowrank", "student"]))
    assert any(len(techniques_used(p)) >= 2 for p in plans[4:])
    assert startup_plans(space, 8, seed=0) == plans  # seeded
    dists = space.distributions()
    for plan in plans:  # every plan is a point of the space
        params = space.params_from_plan(plan)
        assert params.keys() == dists.keys()
        assert all(dists[k]._contains(dists[k].to_internal_repr(v)) for k, v in params.items())


def test_a_technique_gated_off_leaves_its_knobs_inactive(digits_task):
    space = SearchSpace(task_context(digits_task).discovery)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(8):
        trial = study.ask(fixed_distributions=space.distributions())
        plan = space.plan_from_params(trial.params)
        gated_off = {t for t in ("prune", "quant", "lowrank", "student") if trial.params[f"use/{t}"] == 0}
        assert not gated_off & techniques_used(plan)
        assert space.params_from_plan(plan)["use/quant"] == int("quant" in techniques_used(plan))
        study.tell(trial, [0.0, 0.0])
    assert not [n for n in SearchSpace(space.discovery, techniques=("quant",)).param_names() if n.startswith("use/")]


def test_an_embedding_looked_up_by_constant_ids_is_left_float_and_the_export_of_a_search_plan_works(tmp_path):
    class Text(nn.Module):  # positions from a literal range: the exporter folds their lookup into a constant
        def __init__(self):
            super().__init__()
            self.tokens, self.positions, self.head = nn.Embedding(30, 8), nn.Embedding(5, 8), nn.Linear(8, 2)

        def forward(self, ids):
            return self.head((self.tokens(ids) + self.positions(torch.arange(5))).mean(1))

    model, ids = Text().eval(), torch.randint(0, 30, (4, 5))
    space = SearchSpace(discover(model, ids[:1]))
    assert "bits/tokens" in space.param_names() and "bits/positions" not in space.param_names()
    int8 = warm_start_plans(space)[0]
    assert int8.layer("tokens").bits == 8
    prepare_qat(model, {name: lp.bits for name, lp in int8.layers if lp.bits})
    calibrate(model, [ids])
    frozen, specs = freeze(copy.deepcopy(model))
    export_onnx(frozen, ids[:1], str(tmp_path / "text.onnx"), specs)  # no table the export cannot find


def test_a_table_looked_up_twice_or_never_is_left_float_with_its_reason():
    class Pair(nn.Module):  # one table shared by two sentences, one never used
        def __init__(self):
            super().__init__()
            self.tokens, self.spare, self.head = nn.Embedding(30, 8), nn.Embedding(30, 8), nn.Linear(16, 2)

        def forward(self, ids):
            return self.head(torch.cat([self.tokens(ids[:, :3]).mean(1), self.tokens(ids[:, 3:]).mean(1)], 1))

    info = discover(Pair().eval(), torch.randint(0, 30, (1, 6)))
    assert [layer.name for layer in info.layers] == ["head"]
    assert "looked up 2 times" in info.not_compressible["tokens"]
    assert "looked up 0 times" in info.not_compressible["spare"]
