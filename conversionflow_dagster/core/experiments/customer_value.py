"""Customer value per paid channel from the journey log: LTV, CAC, LTV:CAC and payback.

A customer is *acquired* at their first conversion (``conversion == 1``) and credited to one
paid channel by a touch rule (first or last paid touch at or before the acquisition), or to
``"organic"`` when no paid touch came before it. A touch is a row of a paid touchpoint whose
``touch`` flag is 1: a purchase logged under 'search' is a conversion, not a search ad seen
(logs without the column, or rows stored before it existed, count every row as a touch).
Their value over a horizon (LTV) is the sum of the ``value`` of all their events in the
``horizon_days`` from the acquisition on: the first purchase, later conversions and repeat
purchases alike.

Only the *mature cohort* counts: customers whose whole horizon lies inside the data. A customer
acquired three weeks before the log ends has had three weeks to buy, not the horizon, and
including them would bias every LTV low. The cohort's acquisition period is also the period whose
spend is divided by its customers, so LTV, CAC and their ratio describe the same customers.

Customers whose first conversion happened before the log starts look newly acquired at their
first conversion in the log; give the log enough history before the cohort that matters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

from conversionflow_dagster.core.errors import ContractError, InputDataError
from conversionflow_dagster.core.stats import INTERVAL_PROB

EVENT_COLUMNS = ("customer_id", "timestamp", "touchpoint", "conversion", "value")
ORGANIC = "organic"
RULES = ("first_touch", "last_touch")
DAYS_PER_MONTH = 365.25 / 12  # a calendar month on average, as the report counts months
# (upper bound of LTV:CAC, exclusive; band): the first bound above the ratio names its band.
QUALITY_BANDS = (
    (1.0, "below 1: loses money"),
    (3.0, "1-3: marginal"),
    (math.inf, "3+: healthy"),
)
TABLE_COLUMNS = (
    "channel",
    "customers",
    "ltv_mean",
    "ltv_low",
    "ltv_high",
    "spend",
    "cac",
    "cac_low",
    "cac_high",
    "ltv_cac",
    "ltv_cac_low",
    "ltv_cac_high",
    "payback_months",
    "quality_band",
)
BOOTSTRAP_CELLS = 4_000_000  # customers drawn at once over a block of bootstrap replicates
Rule = Literal["first_touch", "last_touch"]


# --- validation -------------------------------------------------------------------------------


def _refuse_rows(events: pd.DataFrame, bad: np.ndarray, column: str, problem: str) -> None:
    """Raise InputDataError at the first bad row, with its file and line when the log has them."""
    if not bad.any():
        return
    index = int(np.flatnonzero(bad)[0])
    path = row = None
    if "source_file" in events.columns and "line" in events.columns:
        path = str(events["source_file"].iloc[index])
        row = int(events["line"].iloc[index])
    count = int(bad.sum())
    raise InputDataError(
        path, f"events: {problem} ({count} row(s), the first shown)", row=row, column=column
    )


def _validate_events(events: object) -> None:
    """The events contract columns customer_value needs, with readable values."""
    if not isinstance(events, pd.DataFrame):
        raise ContractError(
            f"events: expected a pandas DataFrame with columns {list(EVENT_COLUMNS)}, "
            f"got {type(events).__name__}"
        )
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ContractError(
            f"events: missing column(s) {missing}; expected the events contract columns "
            "customer_id, timestamp, touchpoint, conversion (0/1) and value (>= 0)"
        )
    if not pd.api.types.is_datetime64_any_dtype(events["timestamp"]):
        raise ContractError(
            f"events: column 'timestamp' must hold datetimes (datetime64), "
            f"got {events['timestamp'].dtype}"
        )
    if isinstance(events["timestamp"].dtype, pd.DatetimeTZDtype):
        raise ContractError("events: 'timestamp' must be time-zone naive, as the contract says")
    _refuse_rows(
        events,
        events[["customer_id", "timestamp"]].isna().any(axis=1).to_numpy(),
        "customer_id",
        "customer_id and timestamp must be filled in",
    )
    conversion = pd.to_numeric(events["conversion"], errors="coerce")
    _refuse_rows(
        events,
        ~conversion.isin([0, 1]).to_numpy(),
        "conversion",
        "conversion must be 0 or 1",
    )
    value = pd.to_numeric(events["value"], errors="coerce").to_numpy(dtype=float)
    _refuse_rows(
        events,
        ~(np.isfinite(value) & (value >= 0)),
        "value",
        "value must be a number >= 0",
    )
    if not (conversion.to_numpy() == 1).any():
        raise InputDataError(
            events.attrs.get("path"),
            "events: no conversion at all (no row with conversion == 1), so no customer was "
            "acquired; expected at least one conversion event",
        )


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {list(RULES)}, got {rule!r}")


def _check_horizon(horizon_days: int) -> None:
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int | np.integer):
        raise ValueError(f"horizon_days must be a whole number of days, got {horizon_days!r}")
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be >= 1, got {horizon_days}")


def _check_mapping(touchpoint_channel: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(touchpoint_channel, Mapping):
        raise ContractError(
            "touchpoint_channel: expected a mapping touchpoint -> paid channel "
            f"(ProjectConfig.touchpoint_channel()), got {type(touchpoint_channel).__name__}"
        )
    mapping = {str(tp): str(ch) for tp, ch in touchpoint_channel.items()}
    if ORGANIC in mapping.values():
        raise ContractError(
            f"touchpoint_channel: {ORGANIC!r} names the customers no paid channel acquired; "
            "rename the paid channel called that"
        )
    return mapping


def data_end(events: pd.DataFrame) -> pd.Timestamp:
    """The end of the data: midnight after the day of the last event (exclusive)."""
    return pd.Timestamp(events["timestamp"].max()).normalize() + pd.Timedelta(days=1)


def data_start(events: pd.DataFrame) -> pd.Timestamp:
    """The start of the data: midnight of the day of the first event."""
    return pd.Timestamp(events["timestamp"].min()).normalize()


# --- customers --------------------------------------------------------------------------------


def acquisition_channels(
    events: pd.DataFrame,
    touchpoint_channel: Mapping[str, str],
    rule: Rule = "first_touch",
) -> pd.DataFrame:
    """One row per customer with a conversion: customer_id, acquired_at, channel.

    ``acquired_at`` is the timestamp of the customer's first conversion. ``channel`` is the
    paid channel of the customer's first (``first_touch``) or last (``last_touch``) touch whose
    touchpoint ``touchpoint_channel`` maps to a channel, among those at or before
    ``acquired_at``; ``"organic"`` when there is none. Rows with ``touch == 0`` (conversions
    read from an event type) are not touches. Touches after the acquisition never
    count. Of several touches at the same timestamp the earlier row in the log counts as first.
    Rows are ordered by acquisition time.
    """
    _check_rule(rule)
    mapping = _check_mapping(touchpoint_channel)
    _validate_events(events)
    return _acquisitions(events, mapping, rule)


def _acquisitions(events: pd.DataFrame, mapping: dict[str, str], rule: Rule) -> pd.DataFrame:
    """:func:`acquisition_channels` on events already validated."""
    converted = (pd.to_numeric(events["conversion"]) == 1).to_numpy()
    acquired = (
        events.loc[converted, ["customer_id", "timestamp"]]
        .groupby("customer_id", sort=True)["timestamp"]
        .min()
        .rename("acquired_at")
        .reset_index()
    )
    touchpoint = events["touchpoint"]
    paid = touchpoint.isin(list(mapping)).to_numpy()
    if "touch" in events.columns:  # missing (NaN) where a stored month predates the flag
        paid = paid & (pd.to_numeric(events["touch"]).fillna(1).to_numpy() == 1)
    touches = pd.DataFrame(
        {
            "customer_id": events["customer_id"].to_numpy()[paid],
            "timestamp": events["timestamp"].to_numpy()[paid],
            "channel": touchpoint.loc[paid].astype(str).map(mapping).to_numpy(dtype=object),
        }
    )
    touches = touches.merge(acquired, on="customer_id", how="inner")
    touches = touches.loc[(touches["timestamp"] <= touches["acquired_at"]).to_numpy()]
    touches = touches.sort_values("timestamp", kind="stable")
    keep = "first" if rule == "first_touch" else "last"
    credited = touches.drop_duplicates("customer_id", keep=keep)[["customer_id", "channel"]]
    out = acquired.merge(credited, on="customer_id", how="left")
    out["channel"] = out["channel"].fillna(ORGANIC).astype(object)
    return out.sort_values("acquired_at", kind="stable").reset_index(drop=True)


def customer_values(
    events: pd.DataFrame, acquisitions: pd.DataFrame, horizon_days: int
) -> pd.DataFrame:
    """Value of each mature customer over ``horizon_days`` after acquisition, month by month.

    The value is the sum of ``value`` over the customer's events with
    ``acquired_at <= timestamp < acquired_at + horizon_days``. Only the mature cohort is
    returned: customers with ``acquired_at + horizon_days <= data_end`` (midnight after the day
    of the last event in the log), whose whole horizon lies inside the data. Younger customers
    have not had the horizon to buy in, so counting them would bias the LTV low; how many were
    left out is in ``attrs["excluded_immature"]``.

    Columns: the columns of ``acquisitions`` (customer_id, acquired_at, channel, ...), ``value``
    and ``month_1`` .. ``month_M``: the cumulative value by the end of month m after
    acquisition, a month being 365.25 / 12 days and the last one cut at the horizon, so
    ``month_M`` equals ``value`` (M = ceil(horizon_days / (365.25 / 12))).
    ``attrs`` also holds ``horizon_days``, ``months``, ``data_end`` and ``customers``.
    """
    _check_horizon(horizon_days)
    _validate_events(events)
    return _customer_values(events, acquisitions, horizon_days)


def _customer_values(
    events: pd.DataFrame, acquisitions: pd.DataFrame, horizon_days: int
) -> pd.DataFrame:
    """:func:`customer_values` on events already validated (the log is read once)."""
    missing = [c for c in ("customer_id", "acquired_at") if c not in acquisitions.columns]
    if missing:
        raise ContractError(
            f"acquisitions: missing column(s) {missing}; expected the frame "
            "acquisition_channels returns (customer_id, acquired_at, channel)"
        )
    if acquisitions["customer_id"].duplicated().any():
        raise ContractError("acquisitions: one row per customer expected, found duplicates")
    end = data_end(events)
    horizon = pd.Timedelta(days=int(horizon_days))
    mature = (acquisitions["acquired_at"] + horizon <= end).to_numpy()
    cohort = acquisitions.loc[mature].reset_index(drop=True)
    months = math.ceil(horizon_days / DAYS_PER_MONTH)

    value = pd.to_numeric(events["value"]).to_numpy(dtype=float)
    valued = value > 0
    position = pd.Index(cohort["customer_id"]).get_indexer(events["customer_id"].to_numpy()[valued])
    found = position >= 0
    position = position[found]
    amount = value[valued][found]
    stamps = events["timestamp"].to_numpy()[valued][found].astype("datetime64[ns]")
    acquired_at = cohort["acquired_at"].to_numpy().astype("datetime64[ns]")[position]
    age_days = (stamps - acquired_at) / np.timedelta64(1, "D")
    inside = (age_days >= 0) & (age_days < horizon_days)
    month = np.minimum((age_days[inside] // DAYS_PER_MONTH).astype(np.int64), months - 1)
    cells = np.bincount(
        position[inside] * months + month,
        weights=amount[inside],
        minlength=len(cohort) * months,
    ).reshape(len(cohort), months)
    cumulative = np.cumsum(cells, axis=1)

    out = cohort.copy()
    out["value"] = cumulative[:, -1] if len(cohort) else np.zeros(0)
    monthly = pd.DataFrame(
        cumulative, columns=[f"month_{m + 1}" for m in range(months)], index=out.index
    )
    out = pd.concat([out, monthly], axis=1)
    out.attrs = {
        "horizon_days": int(horizon_days),
        "months": months,
        "data_end": end,
        "customers": len(cohort),
        "excluded_immature": int((~mature).sum()),
    }
    return out


# --- the table --------------------------------------------------------------------------------


def quality_band(ratio: float) -> str | None:
    """The QUALITY_BANDS label of an LTV:CAC ratio; None when the ratio is not a number."""
    if ratio is None or not np.isfinite(ratio):
        return None
    return next(label for bound, label in QUALITY_BANDS if ratio < bound)


def _spend_frame(spend: pd.DataFrame, channels: list[str]) -> tuple[pd.DataFrame, pd.Timedelta]:
    """Validate a spend frame (rows = equal periods by start, columns = channels)."""
    if not isinstance(spend.index, pd.DatetimeIndex):
        raise ContractError(
            "spend: expected the index to be period starts (a DatetimeIndex, e.g. week_start "
            f"as WeeklyPanel.spend() returns), got {type(spend.index).__name__}"
        )
    missing = [c for c in channels if c not in spend.columns]
    if missing:
        raise ContractError(
            f"spend: no column for channel(s) {missing}; expected one column per paid "
            f"channel {channels}, indexed by period start"
        )
    if len(spend) == 0:
        raise ContractError("spend: the frame has no rows; expected one row per week (or day)")
    if not spend.index.is_monotonic_increasing or spend.index.has_duplicates:
        raise ContractError("spend: period starts must be increasing and unique")
    steps = np.diff(spend.index.values)
    step = pd.Timedelta(steps.min()) if len(steps) else pd.Timedelta(days=7)
    if len(steps) and (steps != steps.min()).any():
        gap = spend.index[1:][steps != steps.min()][0]
        raise ContractError(
            f"spend: rows must be equally spaced periods ({step} apart); the period "
            f"starting {gap.date()} does not follow its predecessor by {step}"
        )
    values = spend[channels].apply(pd.to_numeric, errors="coerce")
    bad = ~(np.isfinite(values.to_numpy(dtype=float)) & (values.to_numpy(dtype=float) >= 0))
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise InputDataError(
            None,
            f"spend: {channels[column]!r} in the period starting "
            f"{spend.index[row].date()} is not a number >= 0",
            column=channels[column],
        )
    return values, step


def _cohort_spend(
    spend: pd.DataFrame | Mapping[str, float] | pd.Series,
    channels: list[str],
    start: pd.Timestamp,
    latest: pd.Timestamp,
    horizon_days: int,
) -> tuple[dict[str, float], pd.Timestamp, pd.Timestamp | None]:
    """Spend per channel over the cohort's acquisition period, and that period.

    The end is None for a mapping: the cohort is then every mature customer.
    """
    if isinstance(spend, pd.DataFrame):
        values, step = _spend_frame(spend, channels)
        starts = values.index
        inside = (starts >= start) & (starts + step <= latest)
        if not inside.any():
            raise InputDataError(
                None,
                f"no spend period lies wholly between the first event day {start.date()} and "
                f"{latest.date()} (customers acquired later have less than {horizon_days} days of "
                f"data); the events and spend must cover at least {horizon_days} days plus "
                "one spend period",
            )
        rows = values.loc[inside]
        totals = {c: float(rows[c].sum()) for c in channels}
        return totals, rows.index[0], rows.index[-1] + step
    if isinstance(spend, Mapping | pd.Series):
        missing = [c for c in channels if c not in spend]
        if missing:
            raise ContractError(
                f"spend: no amount for channel(s) {missing}; expected one total per paid "
                f"channel {channels}"
            )
        totals = {}
        for channel in channels:
            amount = float(spend[channel])
            if not (np.isfinite(amount) and amount >= 0):
                raise InputDataError(
                    None, f"spend: {channel!r} is {spend[channel]!r}; expected a number >= 0"
                )
            totals[channel] = amount
        return totals, start, None
    raise ContractError(
        "spend: expected a DataFrame of spend per period (index period start, one column per "
        f"channel) or a mapping channel -> total, got {type(spend).__name__}"
    )


def _poisson_bootstrap(
    values: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Resampled customer counts and value sums of ``n_boot`` Poisson-bootstrap replicates.

    The Poisson form of the nonparametric bootstrap over customers weights each customer by an
    independent Poisson(1) count, so a resample's size varies like a Poisson count around the
    observed number of customers (what the CAC interval needs) while its mean value is an
    ordinary bootstrap mean. It is drawn the equivalent, cheaper way: the resample size N* ~
    Poisson(n), then N* customers uniformly with replacement (given their total, independent
    Poisson weights are multinomial). All replicates of a block are drawn as one flat array.
    """
    n = values.size
    counts = rng.poisson(float(n), size=n_boot)
    sums = np.zeros(n_boot)
    block = max(1, BOOTSTRAP_CELLS // max(n, 1))
    for lo in range(0, n_boot, block):
        sizes = counts[lo : lo + block]
        drawn = values[rng.integers(0, n, size=int(sizes.sum()))]
        running = np.concatenate([[0.0], np.cumsum(drawn)])
        ends = np.cumsum(sizes)
        sums[lo : lo + block] = running[ends] - running[ends - sizes]
    return counts.astype(float), sums


def _interval(draws: np.ndarray, interval: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of the draws that are numbers."""
    numbers = draws[~np.isnan(draws)]
    if numbers.size == 0:
        return math.nan, math.nan
    tail = (1.0 - interval) / 2.0
    low, high = np.quantile(numbers, [tail, 1.0 - tail])
    return float(low), float(high)


def _channel_row(
    channel: str,
    values: np.ndarray,
    cumulative: np.ndarray,
    spend: float,
    n_boot: int,
    interval: float,
    rng: np.random.Generator,
) -> dict[str, object]:
    n = values.size
    nan = math.nan
    row: dict[str, object] = {"channel": channel, "customers": n, "spend": spend}
    if n == 0:
        return dict.fromkeys(TABLE_COLUMNS, nan) | row | {"quality_band": None}
    counts, sums = _poisson_bootstrap(values, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ltv_draws = np.where(counts > 0, sums / counts, nan)
    ltv = float(values.mean())
    row["ltv_mean"] = ltv
    row["ltv_low"], row["ltv_high"] = _interval(ltv_draws, interval)
    if spend <= 0:
        return row | {
            "cac": nan,
            "cac_low": nan,
            "cac_high": nan,
            "ltv_cac": nan,
            "ltv_cac_low": nan,
            "ltv_cac_high": nan,
            "payback_months": nan,
            "quality_band": None,
        }
    cac = spend / n
    fewest, most = _interval(counts, interval)  # CAC falls as the count rises
    ratio = ltv / cac
    mean_cumulative = cumulative.mean(axis=0)
    reached = np.flatnonzero(mean_cumulative >= cac)
    row["cac"] = cac
    row["cac_low"] = spend / most
    row["cac_high"] = spend / fewest if fewest > 0 else nan  # unbounded
    row["ltv_cac"] = ratio
    row["ltv_cac_low"], row["ltv_cac_high"] = _interval(sums / spend, interval)
    row["payback_months"] = float(reached[0] + 1) if reached.size else nan
    row["quality_band"] = quality_band(ratio)
    return row


def channel_value_table(
    events: pd.DataFrame,
    spend: pd.DataFrame | Mapping[str, float] | pd.Series,
    touchpoint_channel: Mapping[str, str],
    *,
    horizon_days: int = 180,
    rule: Rule = "first_touch",
    n_boot: int = 1000,
    seed: int = 0,
    interval: float = INTERVAL_PROB,
) -> pd.DataFrame:
    """LTV, CAC, LTV:CAC and payback per paid channel, with bootstrap intervals.

    One row per paid channel, in the order the channels first appear in
    ``touchpoint_channel`` (touchpoint -> channel, as ``ProjectConfig.touchpoint_channel()``),
    with exactly the columns of ``TABLE_COLUMNS``. Customers are credited by ``rule`` (see
    :func:`acquisition_channels`); organic customers are left out of the table.

    **Cohort.** ``spend`` is normally a frame of spend per period, index = period start (week
    or day, equally spaced), one column per channel: ``WeeklyPanel.spend()``. The cohort
    period is then the run of whole periods lying inside ``[first event day, data_end -
    horizon_days]``, so every customer acquired in it has a full horizon in the data
    (``data_end`` = midnight after the last event's day). The cohort is the customers
    acquired in that period, and for each channel:

    * ``customers``: cohort customers credited to it;
    * ``ltv_mean``: their mean value over the horizon (:func:`customer_values`);
    * ``spend``: its spend summed over the cohort periods;
    * ``cac`` = spend / customers; ``ltv_cac`` = ltv_mean / cac (their total value / spend);
    * ``payback_months``: the first month m (1 .. ceil(horizon / (365.25 / 12))) by whose end
      the cohort's mean cumulative value per customer reaches the CAC; NaN if the horizon
      ends first (so exactly when ``ltv_cac`` < 1);
    * ``quality_band``: the ``QUALITY_BANDS`` label of ``ltv_cac``.

    ``spend`` may instead map each channel to a total (a mapping or a Series), which must then
    be the spend over ``[first event day, data_end - horizon_days]``; the cohort is then every
    mature customer.

    **Intervals** (``interval``, equal-tailed percentiles) come from one Poisson bootstrap per
    channel (``n_boot`` replicates, seeded by ``seed``): each customer is resampled with a
    Poisson(1) weight, so a replicate has a resampled customer count N* and value sum V*. LTV*
    = V* / N*, CAC* = spend / N* (the count's sampling noise, spend being known), LTV:CAC* =
    V* / spend. The CAC interval is spend over the interval of N*; its high end is NaN when
    that interval reaches 0 customers (unbounded, for a channel with a handful of customers).

    Channels without customers in the cohort get NaN figures (``customers`` 0); channels
    without spend keep their LTV and get NaN CAC, ratio, payback and band. ``attrs`` records
    ``horizon_days``, ``rule``, ``interval``, ``n_boot``, ``seed``, ``cohort_start``,
    ``cohort_end`` (exclusive; None when ``spend`` is a mapping), ``data_end``, and the
    customer counts: ``acquired`` (all), ``excluded_immature`` (horizon not complete),
    ``excluded_outside_cohort`` (mature but acquired outside the spend periods) and
    ``organic`` (cohort customers with no paid touch up to their acquisition).
    """
    _check_rule(rule)
    _check_horizon(horizon_days)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"n_boot must be a whole number >= 1, got {n_boot!r}")
    if not 0 < interval < 1:
        raise ValueError(f"interval must lie between 0 and 1, got {interval!r}")
    mapping = _check_mapping(touchpoint_channel)
    channels = list(dict.fromkeys(mapping.values()))
    if not channels:
        raise ContractError("touchpoint_channel maps no touchpoint to a paid channel")

    _validate_events(events)
    acquisitions = _acquisitions(events, mapping, rule)
    valued = _customer_values(events, acquisitions, horizon_days)
    start = data_start(events)
    end = valued.attrs["data_end"]
    latest = end - pd.Timedelta(days=int(horizon_days))
    totals, cohort_start, cohort_end = _cohort_spend(spend, channels, start, latest, horizon_days)
    in_cohort = (valued["acquired_at"] >= cohort_start).to_numpy()
    if cohort_end is not None:
        in_cohort = in_cohort & (valued["acquired_at"] < cohort_end).to_numpy()
    cohort = valued.loc[in_cohort]
    month_columns = [f"month_{m + 1}" for m in range(valued.attrs["months"])]
    by_channel = cohort["channel"].to_numpy()
    value = cohort["value"].to_numpy(dtype=float)
    cumulative = cohort[month_columns].to_numpy(dtype=float)
    streams = np.random.SeedSequence(seed).spawn(len(channels))
    rows = []
    for channel, stream in zip(channels, streams, strict=True):
        mine = by_channel == channel
        rows.append(
            _channel_row(
                channel,
                value[mine],
                cumulative[mine],
                totals[channel],
                n_boot,
                interval,
                np.random.default_rng(stream),
            )
        )
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table["customers"] = table["customers"].astype(np.int64)
    table["quality_band"] = pd.Series([r["quality_band"] for r in rows], dtype=object)
    table.attrs = {
        "horizon_days": int(horizon_days),
        "rule": rule,
        "interval": float(interval),
        "n_boot": int(n_boot),
        "seed": int(seed),
        "cohort_start": cohort_start,
        "cohort_end": cohort_end,
        "data_end": end,
        "acquired": len(acquisitions),
        "excluded_immature": valued.attrs["excluded_immature"],
        "excluded_outside_cohort": int((~in_cohort).sum()),
        "organic": int((by_channel == ORGANIC).sum()),
    }
    return table
