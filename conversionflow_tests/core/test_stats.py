"""Shared helpers: the one HDI (against ArviZ), JSON-safe numbers, and month arithmetic."""

import datetime as dt
import json

import arviz as az
import numpy as np
import pandas as pd
import pytest

from conversionflow_dagster.core.months import (
    month_start,
    months_between,
    next_month_start,
    previous_month,
    shift_month,
)
from conversionflow_dagster.core.stats import INTERVAL_PROB, finite_or_none, hdi


def arviz_hdi(draws: np.ndarray, prob: float = INTERVAL_PROB) -> tuple[float, float]:
    low, high = az.hdi(np.asarray(draws, dtype=float), hdi_prob=prob)
    return float(low), float(high)


# --- HDI ----------------------------------------------------------------------------------


def test_hdi_of_known_samples():
    assert hdi(np.arange(100.0)) == (0.0, 94.0)
    assert hdi(np.full(50, 3.5)) == (3.5, 3.5)
    # Skewed: the narrowest interval hugs the mode at 0 instead of cutting 3% off each tail.
    skewed = np.r_[np.zeros(60), np.linspace(0, 10, 40)]
    assert hdi(skewed) == (0.0, np.sort(skewed)[94])


def test_hdi_of_a_known_distribution():
    draws = np.random.default_rng(1).normal(0, 1, 400_000)
    low, high = hdi(draws, 0.94)
    assert high - low == pytest.approx(2 * 1.8808, abs=0.01)  # the central 94% of N(0, 1)
    assert abs(low + high) < 0.06


def test_hdi_agrees_with_arviz():
    rng = np.random.default_rng(3)
    draws = rng.gamma(2.0, 1.0, 4001)
    assert hdi(draws) == pytest.approx(tuple(az.hdi(draws, hdi_prob=0.94)))
    for sample in (rng.normal(size=500), rng.gamma(2.0, size=777), np.array([4.0])):
        np.testing.assert_allclose(hdi(sample), az.hdi(sample, hdi_prob=0.94))
    stacked = rng.normal(size=(3, 400))
    np.testing.assert_allclose(hdi(stacked), [az.hdi(row, hdi_prob=0.94) for row in stacked])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 16, 17, 33, 50, 99, 100, 101, 250, 4000])
def test_hdi_equals_arviz_exactly_on_small_and_large_samples(n):
    rng = np.random.default_rng(n)
    samples = (
        rng.normal(size=n),
        rng.gamma(0.5, size=n),  # skewed: the interval is not the central one
        rng.integers(0, 4, size=n).astype(float),  # ties
    )
    for draws in samples:
        for prob in (0.5, 0.8, INTERVAL_PROB, 0.99):
            assert hdi(draws, prob) == arviz_hdi(draws, prob)


def test_hdi_spans_the_same_draws_as_arviz_where_the_old_lift_test_hdi_was_narrower():
    # 100 draws at 94%: ArviZ's window holds floor(0.94 * 100) + 1 = 95 draws; the lift tests'
    # own HDI held ceil(0.94 * 100) = 94 and so ended one order statistic lower.
    draws = np.random.default_rng(7).permutation(np.arange(100.0))
    assert hdi(draws) == arviz_hdi(draws) == (0.0, 94.0)


def test_hdi_of_rows_is_arviz_row_by_row():
    draws = np.random.default_rng(5).gamma(2.0, size=(2, 3, 1000))
    bounds = hdi(draws)
    assert bounds.shape == (2, 3, 2)
    expected = [[arviz_hdi(row) for row in block] for block in draws]
    np.testing.assert_array_equal(bounds, expected)
    # The allocation's layout: (channels, draws), one interval per channel.
    per_channel = np.random.default_rng(6).lognormal(size=(20, 4000))
    np.testing.assert_array_equal(hdi(per_channel), az.hdi(per_channel.T[None], hdi_prob=0.94))


def test_hdi_of_a_single_row_is_an_array_and_of_a_vector_a_pair_of_floats():
    draws = np.random.default_rng(8).normal(size=300)
    low, high = hdi(draws)
    assert type(low) is float and type(high) is float
    np.testing.assert_array_equal(hdi(draws[None]), [[low, high]])


# --- JSON-safe numbers --------------------------------------------------------------------


def test_finite_or_none_keeps_numbers_and_drops_what_json_cannot_hold():
    values = [1.5, np.float64(2.0), np.int64(3), np.nan, np.inf, -np.inf]
    converted = [finite_or_none(v) for v in values]
    assert converted == [1.5, 2.0, 3.0, None, None, None]
    assert all(type(v) is float for v in converted[:3])
    assert json.loads(json.dumps(converted, allow_nan=False)) == converted


# --- months -------------------------------------------------------------------------------


def test_months_between_is_inclusive_across_years_and_empty_when_reversed():
    assert months_between("2023-11", "2024-02") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    assert months_between("2024-03", "2024-03") == ["2024-03"]
    assert months_between("2024-03", "2024-02") == []


@pytest.mark.parametrize(("first", "last"), [("2019-07", "2025-01"), ("2024-12", "2025-01")])
def test_months_between_matches_pandas_periods(first, last):
    periods = pd.period_range(first, last, freq="M").strftime("%Y-%m")
    assert months_between(first, last) == list(periods)


def test_month_bounds_and_shifts():
    assert month_start("2024-02") == dt.datetime(2024, 2, 1)
    assert next_month_start("2024-02") == dt.datetime(2024, 3, 1)
    assert next_month_start("2024-12") == dt.datetime(2025, 1, 1)
    assert shift_month("2024-01", -1) == "2023-12"
    assert shift_month("2024-01", 25) == "2026-02"
    # The bounds compare with pandas timestamps: a month's rows are start <= t < next start.
    stamps = pd.Series(pd.to_datetime(["2024-01-31 23:59", "2024-02-01 00:00", "2024-02-29 23:59"]))
    inside = (stamps >= month_start("2024-02")) & (stamps < next_month_start("2024-02"))
    assert inside.tolist() == [False, True, True]


def test_previous_month_is_the_last_complete_one():
    assert previous_month(dt.date(2024, 1, 15)) == "2023-12"
    assert previous_month(dt.date(2024, 3, 1)) == "2024-02"
    assert previous_month(dt.date(2024, 12, 31)) == "2024-11"


def test_a_month_that_is_not_yyyy_mm_is_refused():
    with pytest.raises(ValueError):
        months_between("2024-13", "2025-01")
