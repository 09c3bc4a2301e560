import pandas as pd

from autocompress.search.pareto import pareto_front, pareto_mask


def test_known_front():
    frame = pd.DataFrame({
        "accuracy": [0.90, 0.95, 0.95, 0.80, 0.95],
        "size_bytes": [100, 200, 200, 300, 150],
        "latency_ms": [1.0, 1.0, 2.0, 3.0, 1.0],
    })
    # row 1 dominated by row 4 (same acc/latency, smaller); row 2 dominated by 4; row 3 by all
    assert pareto_mask(frame) == [True, False, False, False, True]


def test_front_uses_complete_trials_of_the_requested_fidelity_only():
    frame = pd.DataFrame({
        "number": [0, 1, 2, 3], "state": ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"],
        "accuracy": [0.9, 0.99, None, 0.999], "size_bytes": [100, 100, None, 1],
        "latency_ms": [1.0, 1.0, None, 0.1], "fidelity": ["full", "full", "full", "cheap"],
    })
    front = pareto_front(frame, fidelity="full")
    assert front["number"].tolist() == [1]


def test_hypervolume_matches_optunas_on_random_fronts():
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    from autocompress.search.pareto import hypervolume

    rng = np.random.default_rng(0)
    for _ in range(20):
        points = rng.uniform(0, 1.2, size=(rng.integers(1, 15), 3))
        ref = np.array([1.0, 1.0, 1.0])
        inside = points[np.all(points < ref, axis=1)]
        expected = compute_hypervolume(inside, ref) if len(inside) else 0.0
        assert abs(hypervolume(points, tuple(ref)) - expected) < 1e-9


def test_dominated_agrees_with_the_front_on_random_trials():
    import numpy as np

    from autocompress.search.pareto import dominated

    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(1, 12))
        frame = pd.DataFrame({"accuracy": rng.choice([0.8, 0.9, 0.95], n), "size_bytes": rng.choice([10, 20, 30], n),
                              "latency_ms": rng.choice([1.0, 2.0], n)})
        mask = pareto_mask(frame)
        for i in range(n):
            assert dominated(frame.iloc[i], frame.drop(index=i)) == (not mask[i])
    assert not dominated({"accuracy": 0.5, "size_bytes": 1, "latency_ms": 1.0}, frame.iloc[:0])


def test_normalized_hypervolume_is_teacher_relative_and_ignores_dominated_trials():
    from autocompress.search.pareto import HV_REFERENCE, hypervolume, normalized_hypervolume

    teacher = {"accuracy": 0.9, "size_bytes": 1000, "latency_ms": 2.0}
    front = pd.DataFrame({"accuracy": [0.9, 0.882], "size_bytes": [500, 100], "latency_ms": [1.0, 1.5]})
    expected = hypervolume([[0.0, 0.5, 0.5], [0.02, 0.1, 0.75]], HV_REFERENCE)
    assert abs(normalized_hypervolume(front, teacher) - expected) < 1e-12 and expected > 0
    worse = pd.concat([front, pd.DataFrame({"accuracy": [0.85], "size_bytes": [600], "latency_ms": [1.9]})])
    assert normalized_hypervolume(worse, teacher) == normalized_hypervolume(front, teacher)
