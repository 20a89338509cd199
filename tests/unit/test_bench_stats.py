"""Percentiles and ratios of the benchmark's figures."""

from __future__ import annotations

import pytest

from benchmarks.stats import percentile, ratio


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 99) == 7.0


def test_percentile_refuses_no_values_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_ratio_is_none_without_a_ceiling() -> None:
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(50.0, 0.0) is None
    assert ratio(None, 10.0) is None
