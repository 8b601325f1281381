"""Customer value per channel: attribution, horizon and cohort, the table, and truth recovery."""

import math

import numpy as np
import pandas as pd
import pytest

from conversionflow_dagster.core.errors import ContractError, InputDataError
from conversionflow_dagster.core.experiments.customer_value import (
    QUALITY_BANDS,
    TABLE_COLUMNS,
    acquisition_channels,
    channel_value_table,
    customer_values,
    quality_band,
)
from conversionflow_dagster.core.synthetic.events import (
    SyntheticSpec,
    customer_value_truth,
    simulate,
)

TOUCHPOINTS = {"search_touch": "search", "social_touch": "social", "display_touch": "display"}
DAY = pd.Timedelta(days=1)


def log(rows) -> pd.DataFrame:
    """An event log in the events contract from (customer, timestamp, touchpoint, conv, value)."""
    frame = pd.DataFrame(
        rows, columns=["customer_id", "timestamp", "touchpoint", "conversion", "value"]
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame["conversion"] = frame["conversion"].astype(np.int8)
    frame["value"] = frame["value"].astype(float)
    return frame


def weekly_spend(first: str, weeks: int, **per_week: float) -> pd.DataFrame:
    index = pd.date_range(first, periods=weeks, freq="7D", name="week_start")
    return pd.DataFrame({name: float(amount) for name, amount in per_week.items()}, index=index)


# --- attribution ------------------------------------------------------------------------------


def journeys() -> pd.DataFrame:
    return log(
        [
            ["a", "2024-01-01 09:00", "search_touch", 0, 0],
            ["a", "2024-01-02 09:00", "social_touch", 0, 0],
            ["a", "2024-01-03 09:00", "checkout", 1, 100],
            ["a", "2024-01-04 09:00", "display_touch", 0, 0],  # after acquisition: never counts
            ["a", "2024-01-09 09:00", "checkout", 1, 80],  # a second conversion
            ["b", "2024-01-05 09:00", "organic_search", 0, 0],
            ["b", "2024-01-05 10:00", "checkout", 1, 60],
            ["c", "2024-01-06 09:00", "checkout", 1, 70],
            ["c", "2024-01-07 09:00", "search_touch", 0, 0],  # after acquisition
            ["d", "2024-01-08 09:00", "social_touch", 0, 0],  # never converts
            ["e", "2024-01-08 12:00", "display_touch", 0, 0],
            ["e", "2024-01-08 12:00", "social_touch", 0, 0],  # same second: the later row
            ["e", "2024-01-08 12:00", "checkout", 1, 50],  # a touch at the same time counts
        ]
    )


def test_first_and_last_touch_credit_paid_touches_up_to_the_acquisition():
    first = acquisition_channels(journeys(), TOUCHPOINTS, "first_touch").set_index("customer_id")
    last = acquisition_channels(journeys(), TOUCHPOINTS, "last_touch").set_index("customer_id")
    assert list(first.index) == ["a", "b", "c", "e"]  # by acquisition time; d never converted
    assert first.loc["a", "acquired_at"] == pd.Timestamp("2024-01-03 09:00")  # first conversion
    assert first["channel"].to_dict() == {
        "a": "search",
        "b": "organic",
        "c": "organic",
        "e": "display",
    }
    assert last["channel"].to_dict() == {
        "a": "social",
        "b": "organic",
        "c": "organic",
        "e": "social",
    }


def test_organic_touchpoints_are_whatever_the_mapping_leaves_out():
    everything_organic = acquisition_channels(journeys(), {})
    assert set(everything_organic["channel"]) == {"organic"}


def test_a_conversion_logged_under_a_paid_touchpoint_acquires_no_customer_for_it():
    events = log(
        [
            ["a", "2024-01-01 09:00", "social_touch", 0, 0],
            ["a", "2024-01-02 09:00", "search_touch", 1, 120],  # the purchase, sourced 'search'
            ["b", "2024-01-03 09:00", "search_touch", 1, 80],  # bought without an ad seen
            ["c", "2024-01-04 09:00", "search_touch", 0, 0],
            ["c", "2024-01-05 09:00", "search_touch", 1, 60],
        ]
    )
    events["touch"] = np.array([1, 0, 0, 1, 0], dtype=np.int8)  # from the event type
    credited = acquisition_channels(events, TOUCHPOINTS, "last_touch").set_index("customer_id")
    assert credited["channel"].to_dict() == {"a": "social", "b": "organic", "c": "search"}
    # a month stored before the flag existed counts every row as a touch, beside a newer one
    older = events.iloc[:2].drop(columns="touch")
    mixed = pd.concat([older, events.iloc[2:]], ignore_index=True)
    credited = acquisition_channels(mixed, TOUCHPOINTS, "last_touch").set_index("customer_id")
    assert credited["channel"].to_dict() == {"a": "search", "b": "organic", "c": "search"}


# --- customer values --------------------------------------------------------------------------


def test_value_sums_events_in_the_horizon_and_leaves_out_immature_customers():
    events = log(
        [
            ["a", "2024-01-01 00:00", "repeat_purchase", 0, 999],  # before acquisition
            ["a", "2024-01-01 10:00", "checkout", 1, 100],
            ["a", "2024-01-11 10:00", "repeat_purchase", 0, 50],
            ["a", "2024-01-30 09:59", "repeat_purchase", 0, 25],  # just inside 30 days
            ["a", "2024-01-31 10:00", "repeat_purchase", 0, 40],  # exactly 30 days: outside
            ["b", "2024-02-20 10:00", "checkout", 1, 70],  # only 11 days of data after it
            ["z", "2024-03-01 08:00", "organic_search", 0, 0],  # the last event day
        ]
    )
    acquisitions = acquisition_channels(events, TOUCHPOINTS)
    values = customer_values(events, acquisitions, horizon_days=30)
    assert values["customer_id"].tolist() == ["a"]
    assert values["value"].tolist() == [175.0]
    assert values.attrs["excluded_immature"] == 1
    assert values.attrs["data_end"] == pd.Timestamp("2024-03-02")


def test_a_customer_whose_horizon_ends_at_the_end_of_the_data_is_mature():
    events = log(
        [
            ["a", "2024-01-01 00:00", "checkout", 1, 100],
            ["a", "2024-01-30 23:00", "repeat_purchase", 0, 10],  # last event day: Jan 30
        ]
    )
    values = customer_values(events, acquisition_channels(events, {}), horizon_days=30)
    assert values["value"].tolist() == [110.0]  # acquired_at + 30 days == data_end (Jan 31)
    assert customer_values(events, acquisition_channels(events, {}), 31).empty


def test_cumulative_value_by_month_since_acquisition():
    start = pd.Timestamp("2024-01-01")
    events = log(
        [
            ["a", start, "checkout", 1, 100],
            ["a", start + 30 * DAY, "repeat_purchase", 0, 10],  # month 1: < 30.44 days
            ["a", start + 31 * DAY, "repeat_purchase", 0, 50],  # month 2
            ["a", start + 61 * DAY, "repeat_purchase", 0, 20],  # month 3: >= 60.875 days
            ["a", start + 89 * DAY, "repeat_purchase", 0, 5],  # month 3, cut at 90 days
            ["z", start + 200 * DAY, "direct_visit", 0, 0],
        ]
    )
    values = customer_values(events, acquisition_channels(events, {}), horizon_days=90)
    assert values.attrs["months"] == 3
    row = values.iloc[0]
    assert [row["month_1"], row["month_2"], row["month_3"]] == [110.0, 160.0, 185.0]
    assert row["value"] == row["month_3"]


# --- the table --------------------------------------------------------------------------------


def cohort_log() -> pd.DataFrame:
    """Data from 2024-01-01 to 2024-03-31; with a 60-day horizon the cohort weeks are Jan 1-28.

    Search acquires two customers in the cohort (200 each over the horizon, 100 in the first
    month), social one, display none; one organic customer; one search customer acquired just
    after the cohort weeks and one too late to be mature.
    """
    return log(
        [
            ["s1", "2024-01-01 08:00", "search_touch", 0, 0],
            ["s1", "2024-01-02 09:00", "checkout", 1, 100],
            ["s1", "2024-02-11 09:00", "repeat_purchase", 0, 100],  # day 40: month 2
            ["s2", "2024-01-09 08:00", "search_touch", 0, 0],
            ["s2", "2024-01-10 09:00", "checkout", 1, 100],
            ["s2", "2024-02-14 09:00", "repeat_purchase", 0, 50],  # day 35: month 2
            ["s2", "2024-02-29 09:00", "repeat_purchase", 0, 50],  # day 50: month 2
            ["m1", "2024-01-12 08:00", "social_touch", 0, 0],
            ["m1", "2024-01-12 09:00", "checkout", 1, 90],
            ["o1", "2024-01-15 09:00", "checkout", 1, 40],
            ["s3", "2024-01-29 08:00", "search_touch", 0, 0],
            ["s3", "2024-01-30 09:00", "checkout", 1, 500],  # mature, after the cohort weeks
            ["s4", "2024-03-01 08:00", "search_touch", 0, 0],
            ["s4", "2024-03-01 09:00", "checkout", 1, 500],  # immature
            ["zz", "2024-03-31 12:00", "direct_visit", 0, 0],
        ]
    )


@pytest.mark.parametrize(
    ("search_per_week", "cac", "ratio", "payback", "band"),
    [
        (25.0, 50.0, 4.0, 1.0, "3+: healthy"),
        (50.0, 100.0, 2.0, 1.0, "1-3: marginal"),
        (100.0, 200.0, 1.0, 2.0, "1-3: marginal"),  # paid back exactly at the end of month 2
        (150.0, 300.0, 2 / 3, math.nan, "below 1: loses money"),
    ],
)
def test_cac_ratio_payback_and_band(search_per_week, cac, ratio, payback, band):
    spend = weekly_spend("2024-01-01", 13, search=search_per_week, social=0, display=30)
    table = channel_value_table(cohort_log(), spend, TOUCHPOINTS, horizon_days=60, n_boot=200)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["channel"].tolist() == ["search", "social", "display"]
    search = table.set_index("channel").loc["search"]
    assert search["customers"] == 2
    assert search["spend"] == 4 * search_per_week  # the four cohort weeks
    assert search["ltv_mean"] == 200.0
    assert search["cac"] == pytest.approx(cac)
    assert search["ltv_cac"] == pytest.approx(ratio)
    assert search["payback_months"] == payback or (
        math.isnan(payback) and math.isnan(search["payback_months"])
    )
    assert search["quality_band"] == band
    assert table.attrs["cohort_start"] == pd.Timestamp("2024-01-01")
    assert table.attrs["cohort_end"] == pd.Timestamp("2024-01-29")
    assert table.attrs["excluded_immature"] == 1  # s4
    assert table.attrs["excluded_outside_cohort"] == 1  # s3
    assert table.attrs["organic"] == 1  # o1


def test_channels_without_spend_or_customers_get_nan_not_a_crash():
    spend = weekly_spend("2024-01-01", 13, search=100, social=0, display=30)
    table = channel_value_table(cohort_log(), spend, TOUCHPOINTS, horizon_days=60, n_boot=200)
    social, display = (table.set_index("channel").loc[c] for c in ("social", "display"))
    assert social["customers"] == 1 and social["ltv_mean"] == 90.0  # the LTV is still known
    assert all(math.isnan(social[c]) for c in ("cac", "cac_low", "ltv_cac", "payback_months"))
    assert social["quality_band"] is None
    assert display["customers"] == 0 and display["spend"] == 120.0
    numbers = [
        c for c in TABLE_COLUMNS if c not in ("channel", "customers", "spend", "quality_band")
    ]
    assert all(math.isnan(display[c]) for c in numbers)
    assert display["quality_band"] is None


def test_spend_totals_cover_every_mature_customer():
    totals = {"search": 600.0, "social": 0.0, "display": 0.0}
    table = channel_value_table(cohort_log(), totals, TOUCHPOINTS, horizon_days=60, n_boot=200)
    search = table.set_index("channel").loc["search"]
    assert search["customers"] == 3  # s3 is mature, so with totals it belongs to the cohort
    assert search["cac"] == 200.0
    assert table.attrs["cohort_end"] is None
    as_series = channel_value_table(
        cohort_log(), pd.Series(totals), TOUCHPOINTS, horizon_days=60, n_boot=200
    )
    pd.testing.assert_frame_equal(as_series, table)


def test_intervals_are_reproducible_with_a_seed_and_bracket_the_estimate():
    rng = np.random.default_rng(5)
    rows = []
    for i in range(300):
        day = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=int(rng.integers(0, 24 * 60)))
        channel = ["search_touch", "social_touch"][i % 2]
        rows += [[i, day, channel, 0, 0], [i, day + DAY, "checkout", 1, rng.lognormal(4, 0.5)]]
    rows.append([999, pd.Timestamp("2024-12-31"), "direct_visit", 0, 0])
    events = log(rows)
    spend = weekly_spend("2024-01-01", 53, search=1000, social=500, display=0)
    one = channel_value_table(events, spend, TOUCHPOINTS, seed=3)
    two = channel_value_table(events, spend, TOUCHPOINTS, seed=3)
    other = channel_value_table(events, spend, TOUCHPOINTS, seed=4)
    pd.testing.assert_frame_equal(one, two)
    pd.testing.assert_series_equal(one["ltv_mean"], other["ltv_mean"])
    assert not np.allclose(one["ltv_low"].iloc[:2], other["ltv_low"].iloc[:2])
    paid = one.iloc[:2]
    for name in ("ltv", "cac", "ltv_cac"):
        point = paid["ltv_mean" if name == "ltv" else name]
        assert (paid[f"{name}_low"] < point).all() and (point < paid[f"{name}_high"]).all()


def test_quality_bands():
    assert [label for _, label in QUALITY_BANDS] == [
        "below 1: loses money",
        "1-3: marginal",
        "3+: healthy",
    ]
    assert quality_band(0.999) == "below 1: loses money"
    assert quality_band(1.0) == "1-3: marginal"
    assert quality_band(2.999) == "1-3: marginal"
    assert quality_band(3.0) == "3+: healthy"
    assert quality_band(math.nan) is None


# --- bad input --------------------------------------------------------------------------------


def test_missing_column_is_named():
    events = journeys().drop(columns=["value"])
    with pytest.raises(ContractError, match=r"missing column\(s\) \['value'\].*value \(>= 0\)"):
        acquisition_channels(events, TOUCHPOINTS)


def test_no_conversion_at_all_is_refused():
    events = journeys().assign(conversion=np.int8(0))
    with pytest.raises(InputDataError, match=r"no conversion at all.*expected at least one"):
        channel_value_table(events, {"search": 1.0}, {"search_touch": "search"})


def test_bad_values_point_at_the_file_and_line_when_known():
    events = journeys()
    events.loc[4, "conversion"] = 2
    events["source_file"] = "2024-01.csv"
    events["line"] = np.arange(len(events)) + 2
    with pytest.raises(InputDataError, match=r"2024-01.csv, line 6, column 'conversion'.*0 or 1"):
        acquisition_channels(events, TOUCHPOINTS)


def test_timestamps_must_be_datetimes():
    events = journeys().assign(timestamp=lambda d: d["timestamp"].astype(str))
    with pytest.raises(ContractError, match="'timestamp' must hold datetimes"):
        acquisition_channels(events, TOUCHPOINTS)


def test_spend_must_cover_every_channel_and_a_whole_cohort_period():
    spend = weekly_spend("2024-01-01", 13, search=100, social=0)
    with pytest.raises(ContractError, match=r"no column for channel\(s\) \['display'\]"):
        channel_value_table(cohort_log(), spend, TOUCHPOINTS, horizon_days=60)
    spend = weekly_spend("2024-01-01", 13, search=100, social=0, display=0)
    with pytest.raises(InputDataError, match=r"no spend period lies wholly.*at least 90 days"):
        channel_value_table(cohort_log(), spend, TOUCHPOINTS, horizon_days=90)
    with pytest.raises(ValueError, match="rule must be one of"):
        channel_value_table(cohort_log(), spend, TOUCHPOINTS, rule="linear")


# --- truth recovery ---------------------------------------------------------------------------

RECOVERY_SPEC = SyntheticSpec(n_weeks=70, seed=0)  # 16 months: a 180-day cohort of 44 weeks


def recovery(spec: SyntheticSpec, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = simulate(spec)
    names = [c.name for c in data.channels]
    spend = data.weekly[[f"spend__{n}" for n in names]].set_axis(names, axis=1)
    touchpoints = {c.touchpoint: c.name for c in data.channels}
    table = channel_value_table(data.events, spend, touchpoints, horizon_days=180, seed=seed)
    truth = customer_value_truth(
        data, 180, table.attrs["cohort_start"], table.attrs["cohort_end"]
    ).set_index("channel")
    return table.set_index("channel"), truth


def test_recovers_the_true_customer_value_of_every_channel():
    """Each channel's true value over 180 days lies in its 94% interval.

    The truth is mean_value * (conversions per customer + repeat_rate * 180 / 30): the repeat
    process is known exactly, and the conversions per customer (1 plus the later conversions
    the journey model gave a touched customer, 1.07-1.18 here) are the realised ones.

    With these fixed seeds all seven intervals hold the truth, and the run is deterministic.
    It is not a certainty for any seed: a 94% interval misses 6% of the time, so all seven hold
    in about 0.94^7 = 65% of seeds (measured: coverage 93.8% over 100 simulation seeds; all
    seven in 26 and at least six in 38 of the first 40; the slow test below checks coverage).
    Should a numpy upgrade change the random streams and one channel miss narrowly, that is
    chance; the chi-square bound on the standardised errors is the check that does not depend
    on the seed (its 99.9% point is 24.3; the 40 seeds gave at most 14.5) and still fails on a
    real bias. Leaving out the later conversions (expected_value_per_acquisition, 7-18% low)
    puts the truth below most intervals (at least five of seven in all 40 seeds): the
    comparison is sharp enough to tell.
    """
    table, truth = recovery(RECOVERY_SPEC)
    # the estimator credits exactly the customers each channel acquired through a journey
    assert table["customers"].to_dict() == truth["customers"].to_dict()
    value = truth["true_customer_value"]
    inside = (table["ltv_low"] <= value) & (value <= table["ltv_high"])
    assert inside.all(), pd.concat([table[["ltv_low", "ltv_mean", "ltv_high"]], value], axis=1)
    half_width = (table["ltv_high"] - table["ltv_low"]) / 2
    z = (table["ltv_mean"] - value) / (half_width / 1.881)  # 94%: +-1.881 standard errors
    assert float((z**2).sum()) < 24.3  # chi-square, 7 degrees of freedom, 99.9%
    designed = truth["expected_value_per_acquisition"]
    assert (designed < table["ltv_low"]).sum() >= 4


@pytest.mark.slow
def test_interval_coverage_over_seeds():
    """Over 20 simulations the 94% intervals hold the truth about 94% of the time."""
    hits = []
    for seed in range(1, 21):
        table, truth = recovery(SyntheticSpec(n_weeks=70, seed=seed), seed=seed)
        value = truth["true_customer_value"]
        hits += ((table["ltv_low"] <= value) & (value <= table["ltv_high"])).tolist()
    coverage = float(np.mean(hits))
    assert 0.85 <= coverage <= 0.99, coverage
