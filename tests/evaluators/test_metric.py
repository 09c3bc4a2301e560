"""The task's metric is checked where it is called: a number comes back, or a MetricError saying
what the metric did (the teacher's is then the user's to fix; a candidate's fails that trial)."""

import numpy as np
import pytest
import torch

from autocompress.evaluators.measure import MetricError, metric_value

LOGITS, LABELS = np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])


@pytest.mark.parametrize("returned", [0.5, np.float32(0.5), np.array(0.5), np.array([0.5]), torch.tensor(0.5)])
def test_numbers_of_every_kind_are_read(returned):
    assert metric_value(lambda logits, labels: returned, LOGITS, LABELS) == 0.5


def top1(logits, labels):
    return (logits.argmax(1) == labels).mean()


def test_a_numpy_metric_is_computed_on_the_logits():
    assert metric_value(top1, LOGITS, LABELS) == 0.5


@pytest.mark.parametrize("returned,expected", [
    (float("inf"), "returned inf, not a finite number"),
    (np.float64("nan"), "returned nan, not a finite number"),
    (True, "returned bool 'True', not a number"),
    (np.array([0.5, 0.7]), "returned ndarray '[0.5 0.7]', not a number"),
    (None, "returned NoneType 'None', not a number"),
    ({"accuracy": 0.5}, "returned dict \"{'accuracy': 0.5}\", not a number"),
])
def test_what_is_not_a_finite_number_is_refused_with_what_it_was(returned, expected):
    with pytest.raises(MetricError, match="the task's metric <lambda> ") as info:
        metric_value(lambda logits, labels: returned, LOGITS, LABELS)
    assert expected in str(info.value)


def test_a_metric_that_raises_is_named_with_its_error_on_one_line():
    def weighted_f1(logits, labels):
        raise ValueError("class 7\n  is not in labels")

    with pytest.raises(MetricError) as info:
        metric_value(weighted_f1, LOGITS, LABELS)
    assert str(info.value) == "the task's metric weighted_f1 raised ValueError: class 7 is not in labels"
