"""Synthetic marketing data with known truth, so every stage can be checked against it.

The generator simulates a marketing-mix process week by week (geometric adstock, logistic
saturation, per-channel effects, a baseline with trend, yearly seasonality and holiday/promo
controls), draws the conversions each source causes, and then writes what a company would
actually hold: a customer-journey event log and a daily spend feed, one file per month, plus
the weekly controls. The true parameters and the true weekly contributions are written beside
them so tests can ask whether the model recovers them.

After acquisition (a customer's first conversion) customers keep buying: each makes repeat
purchases at its source's ``repeat_rate`` per 30 days for ``SyntheticSpec.repeat_days`` days.
Repeat purchases are events with touchpoint ``repeat_purchase``, ``conversion`` 0 (conversion
marks what the marketing-mix model counts, so weekly conversions do not change) and a value
drawn like the first purchase's. They come from a separate random stream, so everything else the
generator draws is the same with or without them. :func:`true_customer_value` and
:func:`customer_value_truth` give the customer value per channel that this process implies.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from conversionflow_dagster.core.atomic import atomic_path, write_text_atomic
from conversionflow_dagster.core.stats import finite_or_none

WEEKS_PER_YEAR = 365.25 / 7
SECONDS_PER_WEEK = 7 * 24 * 3600
# Relative weight of each weekday (Monday first) in a week's spend.
DAY_WEIGHTS = np.array([1.1, 1.15, 1.15, 1.1, 1.0, 0.75, 0.75]) / 7.0
ORGANIC_TOUCHPOINTS = ("organic_search", "direct_visit", "newsletter_open")
CONVERSION_TOUCHPOINT = "checkout"
REPEAT_TOUCHPOINT = "repeat_purchase"  # organic (mapped to no channel): value after acquisition
LOOKBACK = np.timedelta64(28, "D")
ORGANIC = "organic"
ORGANIC_MEAN_VALUE = 120.0  # mean value of an organic conversion
ORGANIC_REPEAT_RATE = 0.15  # repeat purchases per organic customer per 30 days
REPEAT_RATE_DAYS = 30.0  # repeat_rate counts purchases per this many days
CUSTOMER_VALUE_HORIZONS = (30, 90, 180, 365)  # days after acquisition, in truth/parameters.json


@dataclass(frozen=True)
class ChannelTruth:
    """True parameters of one paid channel."""

    name: str
    touchpoint: str
    mean_weekly_spend: float
    cost_per_touch: float  # money per tracked touch event
    adstock_decay: float
    saturation_lam: float  # logistic saturation on spend / spend_scale
    beta: float  # conversions per week at full saturation
    mean_value: float  # mean value of a purchase (first or repeat) by customers it brings
    flighted: bool  # spends in bursts with weeks off (TV-like)
    spend_feed: bool  # False: spend is touches x cost_per_touch (no feed)
    repeat_rate: float  # repeat purchases per acquired customer per 30 days (for repeat_days)
    spend_scale: float = 0.0  # mean weekly spend, filled in after simulation


CATALOGUE = (
    # name, mean weekly spend, cost/touch, decay, lam, beta, value, flighted, spend feed,
    # repeat purchases per customer per 30 days
    ("search", 32000.0, 80.0, 0.15, 1.6, 150.0, 160.0, False, True, 0.25),
    ("social", 28000.0, 70.0, 0.35, 1.2, 120.0, 120.0, False, True, 0.10),
    ("video", 30000.0, 110.0, 0.55, 1.0, 100.0, 140.0, False, True, 0.12),
    ("display", 18000.0, 60.0, 0.30, 2.2, 45.0, 90.0, False, True, 0.06),
    ("tv", 45000.0, 150.0, 0.70, 0.9, 170.0, 200.0, True, True, 0.30),
    ("affiliate", 14000.0, 45.0, 0.10, 1.8, 60.0, 110.0, False, False, 0.08),
    ("email", 8000.0, 25.0, 0.25, 2.5, 40.0, 80.0, False, True, 0.45),
)


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Defaults: three years of weeks, seven channels, ~660k events."""

    n_weeks: int = 156
    n_channels: int = 7
    start: dt.date = dt.date(2023, 1, 2)  # a Monday
    seed: int = 0
    touch_scale: float = 1.0  # multiplies touch volumes: 2.5 gives ~1M events
    baseline: float = 320.0  # conversions per week without marketing
    trend_per_year: float = 0.06  # relative baseline growth per year
    seasonality_amplitude: float = 0.12  # relative
    holiday_effect: float = 140.0  # extra conversions in holiday weeks
    promo_effect: float = 90.0
    promo_rate: float = 0.08  # share of weeks with a promotion
    max_lag: int = 8
    repeat_days: int = 180  # customers make repeat purchases for this many days after acquisition
    file_format: str = "csv"  # csv | parquet

    def __post_init__(self) -> None:
        if self.start.weekday() != 0:
            raise ValueError(f"start must be a Monday, got {self.start} ({self.start:%A})")
        if self.n_weeks < 8 or self.n_channels < 1:
            raise ValueError("need at least 8 weeks and 1 channel")
        if self.file_format not in ("csv", "parquet"):
            raise ValueError(f"file_format must be csv or parquet, got {self.file_format!r}")
        if self.repeat_days < 0:
            raise ValueError(f"repeat_days must be >= 0, got {self.repeat_days}")


@dataclass
class SyntheticData:
    """Everything generated, in memory; :func:`write_sample` puts it on disk."""

    spec: SyntheticSpec
    channels: list[ChannelTruth]
    weeks: pd.DatetimeIndex
    events: pd.DataFrame  # customer_id, timestamp, touchpoint, conversion, value
    spend: pd.DataFrame  # daily long: date, channel, spend (feed channels only)
    controls: pd.DataFrame  # week_start, holiday, promo
    weekly: pd.DataFrame  # per week: realised totals and true expected contributions
    baseline_params: dict[str, float] = field(default_factory=dict)
    # one row per acquired customer: customer_id, acquired_at (first conversion), source (the
    # channel or "organic" that caused it), tracked (the source's touch is in the log)
    customers: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def end(self) -> pd.Timestamp:
        """The end (exclusive) of the simulated period: midnight after its last day."""
        return pd.Timestamp(self.spec.start) + pd.Timedelta(days=7 * self.spec.n_weeks)


def channel_catalogue(n_channels: int) -> list[ChannelTruth]:
    """The first ``n_channels`` channels; beyond the seven named ones, generated variants."""
    rows = []
    for i in range(n_channels):
        base = CATALOGUE[i % len(CATALOGUE)]
        name = base[0] if i < len(CATALOGUE) else f"{base[0]}_{i // len(CATALOGUE) + 1}"
        shrink = 1.0 / (1 + i // len(CATALOGUE))  # more channels split the market
        rows.append(
            ChannelTruth(
                name=name,
                touchpoint=f"{name}_touch",
                mean_weekly_spend=base[1] * shrink,
                cost_per_touch=base[2],
                adstock_decay=base[3],
                saturation_lam=base[4],
                beta=base[5] * shrink,
                mean_value=base[6],
                flighted=base[7],
                spend_feed=base[8],
                repeat_rate=base[9],
            )
        )
    return rows


def geometric_adstock(x: np.ndarray, decay: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised geometric adstock of ``x`` (T, C) with per-channel ``decay`` (C,)."""
    lags = np.arange(max_lag)
    weights = decay[None, :] ** lags[:, None]  # (L, C)
    weights = weights / weights.sum(axis=0)
    out = np.zeros_like(x)
    for lag in range(max_lag):  # L is small; T and C stay vectorised
        out[lag:] += weights[lag] * x[: x.shape[0] - lag]
    return out


def logistic_saturation(a: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """(1 - exp(-lam a)) / (1 + exp(-lam a)), written as tanh for numerical stability."""
    return np.tanh(lam * a / 2.0)


def _planned_spend(rng: np.random.Generator, channels: list[ChannelTruth], n_weeks: int):
    t = np.arange(n_weeks)
    out = np.empty((n_weeks, len(channels)))
    for j, ch in enumerate(channels):
        phase = rng.uniform(0, 2 * np.pi)
        wave = 1 + 0.25 * np.sin(2 * np.pi * t / WEEKS_PER_YEAR + phase)
        noise = rng.lognormal(0.0, 0.25, n_weeks)
        level = ch.mean_weekly_spend * wave * noise
        if ch.flighted:
            on = rng.random(n_weeks) < 0.6
            level = np.where(on, level / 0.6, 0.0)
        out[:, j] = level
    return out


def _daily_spend(weekly: np.ndarray) -> np.ndarray:
    """Split weekly spend (T, C) into days (T, 7, C) rounded to cents; weekly = sum of days."""
    return np.round(weekly[:, None, :] * DAY_WEIGHTS[None, :, None], 2)


def _holiday_weeks(weeks: pd.DatetimeIndex) -> np.ndarray:
    """Weeks containing Black Friday or 20-31 December."""
    flags = np.zeros(len(weeks))
    for i, start in enumerate(weeks):
        days = pd.date_range(start, periods=7, freq="D")
        black_friday = (days.month == 11) & (days.day_of_week == 4) & (days.day >= 23)
        xmas = (days.month == 12) & (days.day >= 20)
        flags[i] = float(black_friday.any() or xmas.any())
    return flags


def _uniform_times(rng, week_starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``counts[i]`` timestamps uniform within the week starting at ``week_starts[i]``."""
    starts = np.repeat(week_starts.astype("datetime64[s]"), counts)
    offsets = rng.integers(0, SECONDS_PER_WEEK, size=starts.size).astype("timedelta64[s]")
    return np.sort(starts + offsets)


def simulate(spec: SyntheticSpec = SyntheticSpec()) -> SyntheticData:
    """Simulate the marketing-mix process and the event log it leaves behind."""
    rng = np.random.default_rng(spec.seed)
    channels = channel_catalogue(spec.n_channels)
    weeks = pd.date_range(pd.Timestamp(spec.start), periods=spec.n_weeks, freq="7D")
    week_starts = weeks.values.astype("datetime64[s]")
    n_weeks = spec.n_weeks

    planned = _planned_spend(rng, channels, n_weeks)  # (T, C)
    cost_per_touch = np.array([c.cost_per_touch for c in channels]) / spec.touch_scale
    touches = rng.poisson(planned / cost_per_touch)  # (T, C)
    daily = _daily_spend(planned)  # (T, 7, C)
    feed = np.array([c.spend_feed for c in channels])
    # Channels without a feed are paid per touch: their spend is what the touches cost.
    spend = np.where(feed, daily.sum(axis=1), touches * cost_per_touch)  # (T, C)

    spend_scale = spend.mean(axis=0)
    channels = [
        ChannelTruth(**{**asdict(c), "spend_scale": float(s), "cost_per_touch": float(cpt)})
        for c, s, cpt in zip(channels, spend_scale, cost_per_touch, strict=True)
    ]
    decay = np.array([c.adstock_decay for c in channels])
    lam = np.array([c.saturation_lam for c in channels])
    beta = np.array([c.beta for c in channels])
    adstocked = geometric_adstock(spend / spend_scale, decay, spec.max_lag)
    contributions = beta * logistic_saturation(adstocked, lam)  # (T, C) expected conversions

    t_years = np.arange(n_weeks) / WEEKS_PER_YEAR
    holiday = _holiday_weeks(weeks)
    promo = (rng.random(n_weeks) < spec.promo_rate).astype(float)
    season = spec.seasonality_amplitude * (
        np.sin(2 * np.pi * t_years) + 0.5 * np.cos(4 * np.pi * t_years)
    )
    baseline = spec.baseline * (1 + spec.trend_per_year * t_years + season)
    baseline_total = baseline + spec.holiday_effect * holiday + spec.promo_effect * promo

    organic_conv = rng.poisson(baseline_total)  # (T,)
    channel_conv = rng.poisson(contributions)  # (T, C)
    events, values_by_week, conversions = _journeys(
        rng, spec, channels, week_starts, touches, organic_conv, channel_conv
    )
    customers = _acquired_customers(conversions)
    end = week_starts[-1] + np.timedelta64(7, "D")
    repeats = _repeat_purchases(spec, channels, customers, end)
    repeat_week = (repeats["timestamp"].to_numpy() - week_starts[0]) // np.timedelta64(7, "D")
    repeat_week = repeat_week.astype(int)
    repeat_revenue = np.bincount(repeat_week, weights=repeats["value"], minlength=n_weeks)
    events = pd.concat([events, repeats], ignore_index=True)
    events = events.sort_values("timestamp", kind="stable").reset_index(drop=True)

    weekly = pd.DataFrame(index=pd.Index(weeks, name="week_start"))
    for j, ch in enumerate(channels):
        weekly[f"spend__{ch.name}"] = spend[:, j]
        weekly[f"touches__{ch.touchpoint}"] = touches[:, j]
        weekly[f"true_contribution__{ch.name}"] = contributions[:, j]
        weekly[f"conversions_from__{ch.name}"] = channel_conv[:, j]
    weekly["true_baseline"] = baseline_total
    weekly["true_mu"] = baseline_total + contributions.sum(axis=1)
    weekly["conversions_from__organic"] = organic_conv
    weekly["conversions"] = organic_conv + channel_conv.sum(axis=1)
    weekly["revenue"] = values_by_week + repeat_revenue  # every event's value, as in the panel
    weekly["repeat_purchases"] = np.bincount(repeat_week, minlength=n_weeks)
    weekly["repeat_revenue"] = repeat_revenue

    spend_rows = _spend_rows(channels, week_starts, daily, feed)
    controls = pd.DataFrame({"week_start": weeks, "holiday": holiday, "promo": promo})
    params = {
        "baseline": spec.baseline,
        "trend_per_year": spec.trend_per_year,
        "seasonality_amplitude": spec.seasonality_amplitude,
        "holiday_effect": spec.holiday_effect,
        "promo_effect": spec.promo_effect,
    }
    return SyntheticData(
        spec, channels, weeks, events, spend_rows, controls, weekly, params, customers
    )


def _journeys(rng, spec, channels, week_starts, touches, organic_conv, channel_conv):
    """Build the event log: tracked touches, organic touches and conversion events.

    A conversion caused by a channel goes to a customer that channel touched in the previous
    four weeks when there is one (their journey); otherwise to a customer it never tracked.
    Customer ids never cross channels, but a touched customer can be picked by more than one of
    its channel's conversions, so some customers convert more than once.

    Returns the events, the value per week, and one row per conversion: customer_id,
    timestamp, source (channel name or "organic") and tracked (the customer came through a
    journey the log shows).
    """
    n_weeks = len(week_starts)
    frames = []
    next_id = 0

    def new_ids(n: int) -> np.ndarray:
        nonlocal next_id
        ids = np.arange(next_id, next_id + n)
        next_id += n
        return ids

    touch_log = []  # per channel: (times, customer ids)
    for j, ch in enumerate(channels):
        times = _uniform_times(rng, week_starts, touches[:, j])
        ids = new_ids(times.size)
        repeat = rng.random(times.size) < 0.15  # returning customers touched again
        if repeat.any() and times.size > 1:
            ids[repeat] = rng.choice(ids[: max(1, times.size // 2)], size=int(repeat.sum()))
        touch_log.append((times, ids))
        frames.append(_event_frame(ids, times, ch.touchpoint, 0, 0.0))

    organic_level = 150.0 * spec.touch_scale
    for name in ORGANIC_TOUCHPOINTS:
        counts = rng.poisson(organic_level, n_weeks)
        times = _uniform_times(rng, week_starts, counts)
        frames.append(_event_frame(new_ids(times.size), times, name, 0, 0.0))

    revenue = np.zeros(n_weeks)
    sources = [(None, ORGANIC, organic_conv, ORGANIC_MEAN_VALUE)] + [
        (j, ch.name, channel_conv[:, j], ch.mean_value) for j, ch in enumerate(channels)
    ]
    conversions = []
    for j, source, counts, mean_value in sources:
        times = _uniform_times(rng, week_starts, counts)
        ids = new_ids(times.size)
        tracked = np.zeros(times.size, dtype=bool)
        if j is not None and touch_log[j][0].size:
            ids, tracked = _journey_customers(rng, touch_log[j], times, ids)
        values = _purchase_values(rng, mean_value, times.size)
        week_index = ((times - week_starts[0]) // np.timedelta64(7, "D")).astype(int)
        revenue += np.bincount(week_index, weights=values, minlength=n_weeks)
        frames.append(_event_frame(ids, times, CONVERSION_TOUCHPOINT, 1, values))
        conversions.append(
            pd.DataFrame(
                {"customer_id": ids, "timestamp": times, "source": source, "tracked": tracked}
            )
        )

    events = pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable")
    return events.reset_index(drop=True), revenue, pd.concat(conversions, ignore_index=True)


def _purchase_values(rng, mean_value, size) -> np.ndarray:
    """Purchase values: lognormal with mean ``mean_value`` (sigma 0.5), in cents."""
    return np.round(rng.lognormal(np.log(mean_value) - 0.125, 0.5, size), 2)


def _journey_customers(rng, touch_log, conv_times, fresh_ids):
    """Customers whose touch from this channel came at most four weeks before converting.

    Returns the customer ids and whether each conversion found such a touch (else a fresh id).
    """
    touch_times, touch_ids = touch_log
    hi = np.searchsorted(touch_times, conv_times, side="left")
    lo = np.searchsorted(touch_times, conv_times - LOOKBACK, side="left")
    has = hi > lo
    pick = lo + (rng.random(conv_times.size) * np.maximum(hi - lo, 1)).astype(int)
    return np.where(has, touch_ids[np.minimum(pick, touch_ids.size - 1)], fresh_ids), has


def _acquired_customers(conversions: pd.DataFrame) -> pd.DataFrame:
    """One row per customer: the first conversion, when and from which source."""
    first = conversions.sort_values(["timestamp", "customer_id"], kind="stable")
    first = first.drop_duplicates("customer_id").rename(columns={"timestamp": "acquired_at"})
    return first.reset_index(drop=True)[["customer_id", "acquired_at", "source", "tracked"]]


def _repeat_purchases(spec, channels, customers, end) -> pd.DataFrame:
    """Repeat-purchase events after each customer's acquisition, from a separate random stream.

    Each customer buys again as a Poisson process at its source's repeat rate (per 30 days)
    from the moment of acquisition for ``spec.repeat_days`` days; each value is drawn like a
    first purchase of that source. Purchases after the simulated period are dropped.
    """
    rng = np.random.default_rng([spec.seed, 1])  # the main stream stays untouched
    rates = {c.name: c.repeat_rate for c in channels} | {ORGANIC: ORGANIC_REPEAT_RATE}
    means = {c.name: c.mean_value for c in channels} | {ORGANIC: ORGANIC_MEAN_VALUE}
    rate = customers["source"].map(rates).to_numpy(dtype=float)
    mean_value = customers["source"].map(means).to_numpy(dtype=float)
    counts = rng.poisson(rate * spec.repeat_days / REPEAT_RATE_DAYS)
    owner = np.repeat(np.arange(len(customers)), counts)
    seconds = rng.integers(0, max(spec.repeat_days * 86400, 1), size=owner.size)
    acquired = customers["acquired_at"].to_numpy().astype("datetime64[s]")
    times = acquired[owner] + seconds.astype("timedelta64[s]")
    values = np.round(rng.lognormal(np.log(mean_value[owner]) - 0.125, 0.5), 2)
    keep = times < end
    ids = customers["customer_id"].to_numpy()[owner]
    frame = _event_frame(
        ids[keep], times[keep], REPEAT_TOUCHPOINT, 0, np.maximum(values[keep], 0.01)
    )
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def true_customer_value(
    channel: ChannelTruth,
    horizon_days: float,
    repeat_days: float,
    conversions_per_customer: float = 1.0,
) -> float:
    """Expected value of a customer ``channel`` acquired, over ``horizon_days`` after acquisition.

    ``mean_value * (conversions_per_customer + repeat_rate * min(horizon, repeat_days) / 30)``:
    the value of the customer's conversions in the horizon (the acquisition itself, plus any
    later conversion of the same channel) and of the repeat purchases expected in it, each
    purchase worth ``mean_value`` on average. Repeat purchases are a Poisson process from the
    acquisition on, so the expected count in a window of ``min(horizon, repeat_days)`` days is
    exactly the rate times its length.

    ``conversions_per_customer`` = 1 is the designed process (one conversion per customer). The
    journey model can hand a later conversion to a customer the channel touched again, so the
    log holds slightly more; :func:`customer_value_truth` passes the realised mean.
    """
    window = max(0.0, min(float(horizon_days), float(repeat_days)))
    repeats = channel.repeat_rate * window / REPEAT_RATE_DAYS
    return float(channel.mean_value * (conversions_per_customer + repeats))


def customer_value_truth(
    data: SyntheticData,
    horizon_days: float,
    acquired_from: pd.Timestamp | None = None,
    acquired_before: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """True customer value per paid channel for the customers it acquired through a journey.

    The cohort is the customers acquired in ``[acquired_from, acquired_before)`` (default: the
    whole period) whose horizon ends inside the simulated period; "acquired through a journey"
    means the channel's touch is in the log, so any touch-based attribution can see it (customer
    ids never cross channels here, so first and last touch agree). ``conversions_per_customer``
    is the realised mean number of conversion events in the horizon per cohort customer (1 plus
    the later conversions the journey model gave them); ``true_customer_value`` is
    :func:`true_customer_value` with it.
    """
    customers = data.customers
    horizon = pd.Timedelta(days=horizon_days)
    acquired = customers["acquired_at"]
    keep = customers["tracked"].to_numpy() & (acquired + horizon <= data.end).to_numpy()
    if acquired_from is not None:
        keep &= (acquired >= acquired_from).to_numpy()
    if acquired_before is not None:
        keep &= (acquired < acquired_before).to_numpy()
    cohort = customers.loc[keep]
    events = data.events
    conv = events.loc[events["conversion"].to_numpy() == 1, ["customer_id", "timestamp"]]
    conv = conv.merge(cohort[["customer_id", "acquired_at", "source"]], on="customer_id")
    in_horizon = (conv["timestamp"] < conv["acquired_at"] + horizon).to_numpy()
    counts = conv.loc[in_horizon].groupby("source").size()
    sizes = cohort.groupby("source").size()
    rows = []
    for ch in data.channels:
        n = int(sizes.get(ch.name, 0))
        per_customer = float(counts.get(ch.name, 0)) / n if n else float("nan")
        rows.append(
            {
                "channel": ch.name,
                "customers": n,
                "mean_value": ch.mean_value,
                "repeat_rate": ch.repeat_rate,
                "expected_value_per_acquisition": true_customer_value(
                    ch, horizon_days, data.spec.repeat_days
                ),
                "conversions_per_customer": per_customer,
                "true_customer_value": true_customer_value(
                    ch, horizon_days, data.spec.repeat_days, per_customer
                ),
            }
        )
    return pd.DataFrame(rows)


def _event_frame(ids, times, touchpoint, conversion, values) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "timestamp": times,
            "touchpoint": touchpoint,
            "conversion": np.full(n, conversion, dtype=np.int8),
            "value": np.broadcast_to(values, (n,)).astype(float),
        }
    )


def _spend_rows(channels, week_starts, daily, feed) -> pd.DataFrame:
    """Daily long spend rows for the channels that have a spend feed."""
    days = (week_starts.astype("datetime64[D]")[:, None] + np.arange(7)).ravel()  # (T*7,)
    frames = [
        pd.DataFrame({"date": days, "channel": ch.name, "spend": daily[:, :, j].ravel()})
        for j, ch in enumerate(channels)
        if feed[j]
    ]
    rows = pd.concat(frames, ignore_index=True).sort_values(["date", "channel"], kind="stable")
    return rows.reset_index(drop=True)


def _month_key(values: pd.Series) -> pd.Series:
    return values.dt.strftime("%Y-%m")


# Channels a team would test first: small budgets the observational data identify poorly,
# with short carry-over, so a six-week test sees nearly all of its effect.
LIFT_TEST_CHANNELS = ("display", "email", "search")
LIFT_TEST_WEEKS = 6
LIFT_TEST_BUMP = 1.0  # the test doubles the channel's spend for its cohort
LIFT_TEST_BASE_CONVERSIONS = 40.0  # expected control-cohort conversions over a test
LIFT_TEST_BASE_RATE = 0.02  # the cohorts' conversion rate without the extra spend


def lift_tests(data: SyntheticData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Randomised lift tests of up to two channels and their true incremental conversions.

    Each test adds ``LIFT_TEST_BUMP`` times a channel's spend on top of the spend feed for
    ``LIFT_TEST_WEEKS`` weeks near the end of the data, for a test cohort; a control cohort of
    the same size gets nothing extra. The true effect is the expected extra conversions in
    the test weeks under the simulated adstock and saturation (build-up included); cohort
    conversions are binomial draws around it, from a random stream of their own.

    Returns the file's rows (the lift-test contract) and the truth per test.
    """
    rng = np.random.default_rng([data.spec.seed, 2])
    by_name = {c.name: c for c in data.channels}
    chosen = [by_name[n] for n in LIFT_TEST_CHANNELS if n in by_name][:2] or data.channels[:1]
    size = int(LIFT_TEST_BASE_CONVERSIONS / LIFT_TEST_BASE_RATE)
    rows, truth = [], []
    for k, channel in enumerate(chosen):
        first = max(0, data.spec.n_weeks - LIFT_TEST_WEEKS - 2 - 8 * k)
        weeks = slice(first, first + LIFT_TEST_WEEKS)
        spend = data.weekly[f"spend__{channel.name}"].to_numpy()  # (T,)
        bumped = spend.copy()
        bumped[weeks] *= 1 + LIFT_TEST_BUMP

        def contribution(x: np.ndarray, ch: ChannelTruth = channel) -> np.ndarray:
            a = geometric_adstock(
                x[:, None] / ch.spend_scale, np.array([ch.adstock_decay]), data.spec.max_lag
            )[:, 0]
            return ch.beta * logistic_saturation(a, ch.saturation_lam)

        incremental = float((contribution(bumped) - contribution(spend))[weeks].sum())
        control = rng.binomial(size, LIFT_TEST_BASE_RATE)
        test = rng.binomial(size, LIFT_TEST_BASE_RATE + incremental / size)
        start = data.weeks[first]
        end = data.weeks[first + LIFT_TEST_WEEKS - 1] + pd.Timedelta(days=6)
        test_id = f"LT-{k + 1:02d}-{channel.name}"
        rows.append(
            {
                "test_id": test_id,
                "channel": channel.name,
                "start": start.strftime("%Y-%m-%d"),
                "end": end.strftime("%Y-%m-%d"),
                "test_size": size,
                "test_conversions": int(test),
                "control_size": size,
                "control_conversions": int(control),
                "spend_change": round(float(spend[weeks].sum() * LIFT_TEST_BUMP), 2),
            }
        )
        truth.append({"test_id": test_id, "true_incremental_conversions": incremental})
    return pd.DataFrame(rows), pd.DataFrame(truth)


def write_sample(data: SyntheticData, directory: str | Path) -> dict[str, list[Path]]:
    """Write monthly event and spend files, controls, lift tests, and the truth beside them.

    Layout: ``events/YYYY-MM.<ext>``, ``spend/YYYY-MM.<ext>``, ``controls.csv``,
    ``lift_tests.csv``, ``truth/parameters.json``, ``truth/weekly.csv``,
    ``truth/lift_tests.csv``. Every file is written atomically.
    """
    directory = Path(directory)
    ext = data.spec.file_format
    written: dict[str, list[Path]] = {"events": [], "spend": [], "other": []}

    events = data.events.assign(
        customer_id=lambda d: "C" + d["customer_id"].astype(str).str.zfill(7),
        timestamp=np.datetime_as_string(data.events["timestamp"].values, unit="s"),
    )
    event_months = _month_key(data.events["timestamp"])
    for month, part in events.groupby(event_months, sort=True):
        path = directory / "events" / f"{month}.{ext}"
        _write_table(part, path)
        written["events"].append(path)

    spend = data.spend.assign(date=data.spend["date"].dt.strftime("%Y-%m-%d"))
    for month, part in spend.groupby(_month_key(data.spend["date"]), sort=True):
        path = directory / "spend" / f"{month}.{ext}"
        _write_table(part, path)
        written["spend"].append(path)

    controls = data.controls.assign(week_start=data.controls["week_start"].dt.strftime("%Y-%m-%d"))
    _write_table(controls, directory / "controls.csv")
    tests, tests_truth = lift_tests(data)
    _write_table(tests, directory / "lift_tests.csv")
    _write_table(tests_truth, directory / "truth" / "lift_tests.csv")
    weekly = data.weekly.reset_index()
    weekly["week_start"] = weekly["week_start"].dt.strftime("%Y-%m-%d")
    _write_table(weekly, directory / "truth" / "weekly.csv")
    truth = {
        "spec": {**asdict(data.spec), "start": data.spec.start.isoformat()},
        "channels": [asdict(c) for c in data.channels],
        "baseline": data.baseline_params,
        "max_lag": data.spec.max_lag,
        "adstock": "geometric, normalised",
        "saturation": "logistic on spend / spend_scale",
        "organic_touchpoints": [*ORGANIC_TOUCHPOINTS, REPEAT_TOUCHPOINT],
        "conversion_touchpoint": CONVERSION_TOUCHPOINT,
        "repeat_purchases": {
            "touchpoint": REPEAT_TOUCHPOINT,
            "repeat_days": data.spec.repeat_days,
            "rate_per_days": REPEAT_RATE_DAYS,
            "organic_repeat_rate": ORGANIC_REPEAT_RATE,
            "organic_mean_value": ORGANIC_MEAN_VALUE,
        },
        "customer_value": _customer_value_truth_json(data),
        "n_events": len(data.events),
    }
    write_text_atomic(directory / "truth" / "parameters.json", json.dumps(truth, indent=2))
    written["other"] += [
        directory / "controls.csv",
        directory / "lift_tests.csv",
        directory / "truth" / "lift_tests.csv",
        directory / "truth" / "weekly.csv",
        directory / "truth" / "parameters.json",
    ]
    return written


def _customer_value_truth_json(data: SyntheticData) -> dict[str, object]:
    """Per channel and horizon: the true customer value and what it is made of."""
    by_channel: dict[str, dict[str, dict[str, float | int | None]]] = {
        c.name: {} for c in data.channels
    }
    for horizon in CUSTOMER_VALUE_HORIZONS:
        for row in customer_value_truth(data, horizon).to_dict("records"):
            by_channel[row["channel"]][str(horizon)] = {
                "customers": int(row["customers"]),
                "expected_value_per_acquisition": row["expected_value_per_acquisition"],
                "conversions_per_customer": finite_or_none(row["conversions_per_customer"]),
                "true_customer_value": finite_or_none(row["true_customer_value"]),
            }
    return {
        "definition": (
            "value of a customer a channel acquired (first conversion) through a journey the "
            "log shows, summed over the horizon_days after acquisition = mean_value * "
            "(conversions_per_customer + repeat_rate * min(horizon_days, repeat_days) / 30); "
            "expected_value_per_acquisition is the same with conversions_per_customer = 1; "
            "conversions_per_customer is the realised mean over the customers whose horizon "
            "ends inside the simulated period (null when there are none)"
        ),
        "horizon_days": list(CUSTOMER_VALUE_HORIZONS),
        "channels": by_channel,
    }


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
