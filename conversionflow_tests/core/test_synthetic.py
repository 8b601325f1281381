"""The generator: deterministic, internally consistent, and its truth matches its files."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from conversionflow_dagster.core.synthetic import (
    ORGANIC_TOUCHPOINTS,
    SyntheticSpec,
    geometric_adstock,
    simulate,
    write_sample,
)


def test_default_sample_shape():
    spec = SyntheticSpec()
    assert spec.n_weeks >= 104 and spec.n_channels >= 5


def test_same_seed_same_files_different_seed_different(tmp_path):
    spec = SyntheticSpec(n_weeks=10, n_channels=3, seed=3)
    write_sample(simulate(spec), tmp_path / "a")
    write_sample(simulate(spec), tmp_path / "b")
    write_sample(simulate(SyntheticSpec(n_weeks=10, n_channels=3, seed=4)), tmp_path / "c")
    for name in ["events/2023-01.csv", "spend/2023-02.csv", "truth/weekly.csv"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a/events/2023-01.csv").read_bytes() != (
        tmp_path / "c/events/2023-01.csv"
    ).read_bytes()


def test_weekly_truth_equals_the_event_log_and_spend_feed(small_sample):
    data = small_sample
    events = data.events
    week = (events["timestamp"] - pd.Timestamp(data.spec.start)) // pd.Timedelta(days=7)
    conversions = events.groupby(week)["conversion"].sum().to_numpy()
    revenue = events.groupby(week)["value"].sum().to_numpy()
    assert np.array_equal(conversions, data.weekly["conversions"].to_numpy())
    np.testing.assert_allclose(revenue, data.weekly["revenue"].to_numpy(), rtol=1e-12)
    spend_week = (data.spend["date"] - pd.Timestamp(data.spec.start)) // pd.Timedelta(days=7)
    fed = data.spend.groupby([spend_week, "channel"])["spend"].sum().unstack()
    for channel in fed.columns:
        np.testing.assert_allclose(
            fed[channel].to_numpy(), data.weekly[f"spend__{channel}"], rtol=1e-12
        )
    # conversions decompose into organic and per-channel sources
    parts = data.weekly.filter(like="conversions_from__").sum(axis=1)
    assert np.array_equal(parts.to_numpy(), data.weekly["conversions"].to_numpy())


def test_channel_without_feed_is_paid_per_touch(small_sample):
    affiliate = next(c for c in small_sample.channels if not c.spend_feed)
    assert affiliate.name not in set(small_sample.spend["channel"])
    weekly = small_sample.weekly
    np.testing.assert_allclose(
        weekly[f"spend__{affiliate.name}"],
        weekly[f"touches__{affiliate.touchpoint}"] * affiliate.cost_per_touch,
    )


def test_journeys_and_organic_touchpoints(small_sample):
    events = small_sample.events
    assert set(ORGANIC_TOUCHPOINTS) <= set(events["touchpoint"])
    converters = events.loc[events["conversion"] == 1, "customer_id"]
    touched = set(events.loc[events["conversion"] == 0, "customer_id"])
    # most channel-driven conversions belong to a customer the channel touched before
    assert converters.isin(touched).mean() > 0.3
    assert (events.loc[events["conversion"] == 0, "value"] == 0).all()


def test_contributions_follow_the_documented_process(small_sample):
    data = small_sample
    spend = data.weekly[[f"spend__{c.name}" for c in data.channels]].to_numpy()
    scale = np.array([c.spend_scale for c in data.channels])
    decay = np.array([c.adstock_decay for c in data.channels])
    lam = np.array([c.saturation_lam for c in data.channels])
    beta = np.array([c.beta for c in data.channels])
    expected = beta * np.tanh(lam * geometric_adstock(spend / scale, decay, 8) / 2)
    got = data.weekly[[f"true_contribution__{c.name}" for c in data.channels]].to_numpy()
    np.testing.assert_allclose(got, expected)


def test_adstock_matches_an_explicit_loop():
    rng = np.random.default_rng(0)
    x = rng.random((30, 3))
    decay = np.array([0.1, 0.5, 0.9])
    got = geometric_adstock(x, decay, 4)
    w = decay ** np.arange(4)[:, None]
    w = w / w.sum(axis=0)
    for t in range(30):
        for c in range(3):
            want = sum(w[lag, c] * x[t - lag, c] for lag in range(4) if t - lag >= 0)
            assert got[t, c] == pytest.approx(want)


def test_volume_scales_for_benchmarks():
    small = simulate(SyntheticSpec(n_weeks=8, n_channels=5, touch_scale=1.0))
    large = simulate(SyntheticSpec(n_weeks=8, n_channels=5, touch_scale=4.0))
    ratio = len(large.events) / len(small.events)
    assert 2.5 < ratio < 4.5


def test_truth_file_describes_the_parameters(tmp_path):
    data = simulate(SyntheticSpec(n_weeks=9, n_channels=2, seed=1))
    write_sample(data, tmp_path)
    truth = json.loads((tmp_path / "truth/parameters.json").read_text())
    assert [c["name"] for c in truth["channels"]] == ["search", "social"]
    assert truth["channels"][0]["adstock_decay"] == data.channels[0].adstock_decay
    assert truth["n_events"] == len(data.events)


def test_spec_is_validated():
    with pytest.raises(ValueError, match="must be a Monday"):
        SyntheticSpec(start=dt.date(2023, 1, 3))
