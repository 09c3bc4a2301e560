import json

import pytest

from autocompress import LayerPlan, Metrics, Plan


def test_plan_round_trips_through_json_and_is_hashable():
    plan = Plan(layers={"a": LayerPlan(prune=0.25, bits=4, rank=0.5), "b": LayerPlan(bits=2)},
                depth={"stage1": 1}, width=0.75, importance="taylor")
    again = Plan.from_json(json.dumps(json.loads(plan.to_json())))
    assert again == plan and hash(again) == hash(plan)
    assert again.layer("a") == LayerPlan(prune=0.25, bits=4, rank=0.5)


def test_identity_layer_plans_are_dropped_so_equal_plans_compare_equal():
    assert Plan(layers={"a": LayerPlan()}) == Plan()
    assert Plan(layers={"a": LayerPlan(rank=1.0)}) == Plan()


def test_a_layer_factorized_by_tucker2_round_trips_and_plans_written_before_it_read_as_svd():
    plan = Plan(layers={"conv": LayerPlan(rank=0.25, decomposition="tucker2"), "fc": LayerPlan(rank=0.5)})
    assert Plan.from_json(plan.to_json()) == plan != Plan(layers={"conv": LayerPlan(rank=0.25), "fc": LayerPlan(rank=0.5)})
    schema2 = {"schema": 2, "layers": {"conv": {"prune": 0.0, "bits": 8, "rank": 0.5}}}
    assert Plan.from_dict(schema2).layer("conv") == LayerPlan(bits=8, rank=0.5, decomposition="svd")
    assert LayerPlan(bits=8, decomposition="tucker2") == LayerPlan(bits=8)  # not factorized: how does not matter
    assert "low-rank 2 layers (1 Tucker-2)" in plan.summary()


@pytest.mark.parametrize("kwargs", [{"prune": 1.0}, {"prune": -0.1}, {"bits": 3}, {"rank": 0.0},
                                    {"rank": 0.5, "decomposition": "cp"}])
def test_layer_plan_rejects_values_the_artifact_cannot_hold(kwargs):
    with pytest.raises(ValueError):
        LayerPlan(**kwargs)


def test_plan_rejects_bad_fields():
    with pytest.raises(ValueError):
        Plan(width=0.0)
    with pytest.raises(ValueError):
        Plan(importance="random")
    with pytest.raises(ValueError, match="unknown plan fields"):
        Plan.from_dict({"layers": {}, "colour": "red"})


def test_metrics_round_trip():
    m = Metrics(accuracy=0.5, size_bytes=10, latency_ms=1.5, params=3, macs=4, fidelity="f")
    assert Metrics.from_dict(json.loads(json.dumps(m.to_dict()))) == m


@pytest.mark.parametrize("build", [
    lambda: LayerPlan(0.5, 8),
    lambda: Plan({"fc": LayerPlan(bits=8)}),
    lambda: Metrics(0.5, 10, 1.5, 3, 4, "f"),
], ids=["LayerPlan", "Plan", "Metrics"])
def test_core_types_take_keyword_arguments_only(build):
    """Like Task: a positional call could silently swap prune and bits, or size and latency."""
    with pytest.raises(TypeError, match="positional"):
        build()
