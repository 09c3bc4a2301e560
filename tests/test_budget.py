import math

import pytest

from autocompress.budget import Budget, parse_accuracy, parse_latency, parse_size
from autocompress.task import UsageError


@pytest.mark.parametrize("text,expected", [("50KB", 50_000), ("50kb", 50_000), ("1.5MiB", 1_572_864),
                                           ("800B", 800), ("2 MB", 2_000_000), ("1KiB", 1024)])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text,expected", [("2ms", 2.0), ("250us", 0.25), ("0.01s", 10.0), ("1.5 ms", 1.5)])
def test_latencies(text, expected):
    assert math.isclose(parse_latency(text), expected)


@pytest.mark.parametrize("text,expected", [("0.97", 0.97), ("97%", 0.97), ("1", 1.0)])
def test_accuracies(text, expected):
    assert math.isclose(parse_accuracy(text), expected)


@pytest.mark.parametrize("parse,text,message", [
    (parse_size, "-5KB", "not a positive number"), (parse_size, "0KB", "must be a positive number"),
    (parse_size, "nanKB", "not a positive number"), (parse_size, "5XB", "unknown unit 'xb'"),
    (parse_size, "5", "unknown unit ''"), (parse_latency, "2 hours", "unknown unit"),
    (parse_latency, "0ms", "must be a positive"), (parse_accuracy, "1.5", "must be in (0, 1]"),
    (parse_accuracy, "nan", "must be in (0, 1]"), (parse_accuracy, "high", "not a number"),
])
def test_bad_budgets_are_usage_errors_that_say_the_fix(parse, text, message):
    with pytest.raises(UsageError, match=None) as err:
        parse(text)
    assert message in str(err.value) and "e.g." in str(err.value)


def test_constraints_are_zero_or_less_when_feasible():
    budget = Budget(max_size_bytes=100, max_latency_ms=1.0, min_accuracy=0.9)
    inside = {"accuracy": 0.95, "size_bytes": 100, "latency_ms": 0.5}
    assert all(v <= 0 for v in budget.constraints(inside).values()) and budget.feasible(inside)
    outside = {"accuracy": 0.85, "size_bytes": 150, "latency_ms": 0.5}
    assert budget.violations(outside) == pytest.approx({"size_bytes": 50, "accuracy": 0.05})
    assert Budget().feasible(outside) and Budget().is_empty


def test_a_size_too_large_for_any_file_is_one_clear_refusal():
    with pytest.raises(UsageError, match="too large to be a size"):
        parse_size("1e300GB")
