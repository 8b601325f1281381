"""The generator: deterministic, internally consistent, and its truth matches its files."""

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conversionflow_dagster.core.config import load_config, parse_config
from conversionflow_dagster.core.ingest.panel import build_panel_from_file
from conversionflow_dagster.core.synthetic.events import (
    ORGANIC_TOUCHPOINTS,
    REPEAT_TOUCHPOINT,
    SyntheticSpec,
    channel_catalogue,
    customer_value_truth,
    geometric_adstock,
    simulate,
    true_customer_value,
    write_sample,
)
from conversionflow_dagster.core.synthetic.markets import (
    contribution_shares,
    markets_frame,
    simulate_markets,
)

REPO = Path(__file__).resolve().parents[2]


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
    touches = (events["conversion"] == 0) & (events["touchpoint"] != REPEAT_TOUCHPOINT)
    touched = set(events.loc[touches, "customer_id"])
    # most channel-driven conversions belong to a customer the channel touched before
    assert converters.isin(touched).mean() > 0.3
    assert (events.loc[touches, "value"] == 0).all()  # only purchases carry value


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


def test_repeat_purchases_follow_acquisition_and_change_nothing_else(small_sample):
    data = small_sample
    repeats = data.events.loc[data.events["touchpoint"] == REPEAT_TOUCHPOINT]
    assert len(repeats) > 1000
    assert (repeats["conversion"] == 0).all() and (repeats["value"] > 0).all()
    acquired = data.customers.set_index("customer_id")["acquired_at"]
    since = repeats["timestamp"] - acquired.reindex(repeats["customer_id"]).to_numpy()
    assert since.notna().all()  # every repeat buyer was acquired
    assert (since >= pd.Timedelta(0)).all()
    assert (since < pd.Timedelta(days=data.spec.repeat_days)).all()
    assert repeats["timestamp"].max() < data.end  # inside the simulated weeks
    # without repeat purchases every other event, the spend and the weekly figures are the same
    plain = simulate(dataclasses.replace(data.spec, repeat_days=0))
    assert not (plain.events["touchpoint"] == REPEAT_TOUCHPOINT).any()
    others = data.events.loc[data.events["touchpoint"] != REPEAT_TOUCHPOINT]
    pd.testing.assert_frame_equal(others.reset_index(drop=True), plain.events)
    pd.testing.assert_frame_equal(data.spend, plain.spend)
    same = [c for c in plain.weekly.columns if "revenue" not in c and "repeat" not in c]
    pd.testing.assert_frame_equal(data.weekly[same], plain.weekly[same], check_dtype=False)
    np.testing.assert_allclose(
        data.weekly["revenue"], plain.weekly["revenue"] + data.weekly["repeat_revenue"]
    )


def test_repeat_purchase_is_organic_in_the_default_config():
    config = load_config(REPO / "configs" / "default.yaml")
    assert REPEAT_TOUCHPOINT not in config.touchpoint_channel()
    assert REPEAT_TOUCHPOINT in (REPO / "configs" / "default.yaml").read_text()


def test_true_customer_value_formula():
    search, *_, email = channel_catalogue(7)
    assert search.repeat_rate != email.repeat_rate  # repeat behaviour differs by channel
    # mean_value * (conversions + repeat_rate * min(horizon, repeat_days) / 30)
    assert true_customer_value(search, 90, 180) == pytest.approx(160 * (1 + 0.25 * 3))
    assert true_customer_value(search, 365, 180) == pytest.approx(160 * (1 + 0.25 * 6))
    assert true_customer_value(email, 30, 180, 1.1) == pytest.approx(80 * (1.1 + 0.45))
    assert true_customer_value(email, 30, 0) == pytest.approx(80.0)


def test_customer_value_truth_counts_the_realised_conversions(small_sample):
    truth = customer_value_truth(small_sample, 30).set_index("channel")
    assert (truth["customers"] > 100).all()
    # a touched customer can be handed a later conversion of the same channel too
    assert (
        (truth["conversions_per_customer"] >= 1) & (truth["conversions_per_customer"] < 1.3)
    ).all()
    assert (truth["true_customer_value"] >= truth["expected_value_per_acquisition"]).all()


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
    assert truth["channels"][0]["repeat_rate"] == data.channels[0].repeat_rate
    assert truth["n_events"] == len(data.events)
    assert REPEAT_TOUCHPOINT in truth["organic_touchpoints"]
    assert truth["repeat_purchases"]["repeat_days"] == data.spec.repeat_days
    value = truth["customer_value"]["channels"]["search"]["30"]
    expected = true_customer_value(
        data.channels[0], 30, data.spec.repeat_days, value["conversions_per_customer"]
    )
    assert value["true_customer_value"] == pytest.approx(expected)
    # 9 weeks are shorter than a 365-day horizon: no mature customer, so no number
    assert truth["customer_value"]["channels"]["search"]["365"]["true_customer_value"] is None


def test_spec_is_validated():
    with pytest.raises(ValueError, match="must be a Monday"):
        SyntheticSpec(start=dt.date(2023, 1, 3))


def test_simulated_markets_are_deterministic_per_seed():
    a, b = simulate_markets(n_weeks=40, seed=1), simulate_markets(n_weeks=40, seed=1)
    c = simulate_markets(n_weeks=40, seed=2)
    for name in a.panels:
        for field in ["spend", "target", "controls", "contributions", "mu", "decay"]:
            assert np.array_equal(getattr(a.panels[name], field), getattr(b.panels[name], field))
        assert not np.array_equal(a.panels[name].spend, c.panels[name].spend)
        assert not np.array_equal(a.panels[name].target, c.panels[name].target)
    for key in a.population:
        assert np.array_equal(a.population[key], b.population[key])
        assert not np.array_equal(a.population[key], c.population[key])


def test_markets_differ_in_size_but_share_one_process():
    markets = simulate_markets()
    names = list(markets.panels)
    assert names == [f"M{m:02d}" for m in range(8)]
    sizes = np.array([markets.panels[n].mu.mean() for n in names])
    assert (np.diff(sizes) < 0).all() and sizes[0] / sizes[-1] > 30  # largest first
    pop = markets.population
    assert set(pop) == {"adstock_decay", "saturation_lam", "effect_per_share"}
    assert set(markets.market_sd) == set(pop)
    assert ((pop["adstock_decay"] > 0.15) & (pop["adstock_decay"] < 0.6)).all()
    deviations = []
    for name, panel in markets.panels.items():
        assert contribution_shares(panel).sum() == pytest.approx(1.0, abs=1e-12)
        spend_share = panel.spend.sum(0) / panel.spend.sum()
        realised = panel.contributions.mean(0) / panel.mu.mean() / spend_share
        np.testing.assert_allclose(realised, markets.effect_per_share[name], rtol=1e-9)
        media = panel.contributions.sum() / panel.mu.sum()
        assert 0.1 < media < 0.7  # media is a sizeable minority of every market's sales
        deviations.append(np.log(markets.effect_per_share[name] / pop["effect_per_share"]))
    # market deviations spread around the population median as documented
    assert np.std(deviations) == pytest.approx(markets.market_sd["effect_per_share"], rel=0.4)
    assert abs(np.mean(deviations)) < 0.15


def test_hill_markets_carry_hill_truth():
    markets = simulate_markets(n_markets=3, n_weeks=30, saturation="hill", likelihood="normal")
    assert {"hill_k", "hill_n"} <= set(markets.population) and "saturation_lam" not in (
        markets.population
    )
    assert {"hill_k", "hill_n"} <= set(markets.market_sd)
    for panel in markets.panels.values():
        assert set(panel.saturation) == {"hill_k", "hill_n"}
        assert (panel.target % 1 != 0).any()  # normal noise, not counts
    with pytest.raises(ValueError, match="negbinomial"):
        simulate_markets(likelihood="negbinomial")


def test_markets_frame_reads_through_the_meridian_geo_config(tmp_path):
    markets = simulate_markets(n_markets=3, n_weeks=60, n_channels=4, seed=5)
    frame = markets_frame(markets)
    assert len(frame) == 3 * 60 and list(frame["geo"].unique()) == ["M00", "M01", "M02"]
    numbers = frame.drop(columns=["geo", "time"])
    assert all(pd.api.types.is_numeric_dtype(t) for t in numbers.dtypes)
    path = tmp_path / "markets.csv"
    frame.to_csv(path, index=False)
    document = yaml.safe_load((REPO / "configs" / "meridian_geo.yaml").read_text())
    document["project"]["markets"] = list(markets.panels)
    document["sources"]["panel"]["path"] = str(path)
    config = parse_config(document)
    truth = markets.panels["M01"]
    panel = build_panel_from_file(path, config, market="M01")
    assert list(panel.frame.index) == list(truth.week_start)
    np.testing.assert_allclose(panel.spend().to_numpy(), truth.spend, rtol=1e-12)
    np.testing.assert_allclose(panel.frame["conversions"], truth.target, rtol=1e-12)
    assert panel.frame.filter(like="control__").to_numpy().tolist() == truth.controls.tolist()
