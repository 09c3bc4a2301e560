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
