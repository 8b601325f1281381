"""The weekly panel: the one table every later stage reads, built by either input route.

Route 1 aggregates monthly event and spend partitions into complete weeks (a week that
straddles two months takes events from both). Route 2 reads a ready weekly table through the
column mapping in the config (or a coarser one, each row spread over the days of its period).
Both yield the same :class:`WeeklyPanel` contract (see docs/contracts.md), which carries,
besides the table, the weeks that had no source data and totals computed directly from the
source rows, so the checks can prove nothing was lost.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from conversionflow_dagster.core.atomic import atomic_path
from conversionflow_dagster.core.config import PERIODICALLY, ProjectConfig
from conversionflow_dagster.core.errors import ContractError, InputDataError
from conversionflow_dagster.core.ingest.controls import (
    CONTROL_PREFIX,
    control_columns,
    required_control_columns,
)
from conversionflow_dagster.core.ingest.events import refuse_misspelt_touchpoints
from conversionflow_dagster.core.ingest.periods import row_dates, spread_over_days
from conversionflow_dagster.core.ingest.tables import (
    Table,
    parse_numbers,
    parse_timestamps,
    read_table,
    refuse_duplicates,
    require_columns,
)
from conversionflow_dagster.core.months import month_start, months_between, next_month_start
from conversionflow_dagster.core.rules import CheckOutcome

SPEND_PREFIX = "spend__"
TOUCHES_PREFIX = "touches__"
TARGETS = ("conversions", "revenue")
METADATA_KEY = b"conversionflow.weekly_panel"
RECONCILE_TOLERANCE = 1e-3  # relative: 0.1%
WEEK = pd.Timedelta(days=7)


@dataclass(frozen=True)
class WeeklyPanel:
    """A weekly table plus what is needed to check it against its sources."""

    frame: pd.DataFrame  # index week_start; columns per docs/contracts.md
    channels: tuple[str, ...]
    touchpoints: tuple[str, ...]
    controls: tuple[str, ...]  # full column names, control__...
    route: str  # "events" or "panel"
    missing_weeks: tuple[str, ...] = ()  # ISO dates of weeks with no source data
    source_totals: Mapping[str, float] = field(default_factory=dict)
    sources: tuple[str, ...] = ()  # input file names

    @property
    def weeks(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.frame.index)

    def spend(self) -> pd.DataFrame:
        """Spend per week (rows) and channel (columns, named by channel)."""
        columns = [SPEND_PREFIX + c for c in self.channels]
        return self.frame[columns].set_axis(list(self.channels), axis=1)

    def describe(self) -> dict[str, object]:
        """Summary figures for run metadata."""
        return {
            "weeks": len(self.frame),
            "first_week": str(self.weeks[0].date()) if len(self.frame) else None,
            "last_week": str(self.weeks[-1].date()) if len(self.frame) else None,
            "channels": len(self.channels),
            "touchpoints": len(self.touchpoints),
            "controls": len(self.controls),
            "total_spend": float(self.spend().to_numpy().sum()),
            **{t: float(self.frame[t].sum()) for t in TARGETS if t in self.frame},
        }


def week_floor(stamps: pd.Series, week_start_index: int) -> pd.Series:
    """The start (midnight) of the week containing each timestamp."""
    days_back = (stamps.dt.day_of_week - week_start_index) % 7
    return stamps.dt.normalize() - pd.to_timedelta(days_back, unit="D")


def complete_weeks(first_month: str, last_month: str, week_start_index: int) -> pd.DatetimeIndex:
    """Weeks lying entirely inside the months ``first_month``..``last_month``."""
    start, end = month_start(first_month), next_month_start(last_month)
    first = start + pd.Timedelta(days=(week_start_index - start.weekday()) % 7)
    count = (end - first).days // 7
    return pd.date_range(first, periods=max(count, 0), freq="7D")


def _contiguous_months(months: list[str], what: str) -> None:
    gaps = sorted(set(months_between(min(months), max(months))) - set(months))
    if gaps:
        shown = ", ".join(gaps[:6]) + (f" ... ({len(gaps)} in all)" if len(gaps) > 6 else "")
        raise ContractError(
            f"{what} has no data for month(s) {shown} between {months[0]} and {months[-1]}; "
            "materialise those partitions (or fix their files) before building the panel"
        )


def build_panel_from_events(
    events_by_month: Mapping[str, pd.DataFrame],
    spend_by_month: Mapping[str, pd.DataFrame] | None,
    controls: pd.DataFrame | None,
    config: ProjectConfig,
) -> WeeklyPanel:
    """Aggregate monthly events and spend into complete weeks (route 1)."""
    months = sorted(events_by_month)
    if not months:
        raise ContractError("no raw_events partitions are materialised yet")
    _contiguous_months(months, "raw_events")
    for month in months:
        refuse_misspelt_touchpoints(events_by_month[month], config)
    if spend_by_month is not None and sorted(spend_by_month) != months:
        raise ContractError(
            f"raw_spend months {sorted(spend_by_month)} differ from raw_events months {months}; "
            "materialise both for the same months"
        )
    wd = config.project.week_start_index
    weeks = complete_weeks(months[0], months[-1], wd)
    if weeks.empty:
        raise ContractError(f"months {months[0]}..{months[-1]} hold no complete week")
    lo, hi = weeks[0], weeks[-1] + WEEK

    touches, targets, totals = _aggregate_events(events_by_month, wd, lo, hi)
    frame = pd.DataFrame(index=pd.Index(weeks, name="week_start"))
    tp_counts = touches.unstack("touchpoint", fill_value=0).reindex(weeks, fill_value=0)
    touchpoints = tuple(sorted(tp_counts.columns))
    channel_spend = _channel_spend(spend_by_month, tp_counts, config, wd, lo, hi, totals)
    for name in config.channels:
        frame[SPEND_PREFIX + name] = channel_spend[name].reindex(weeks, fill_value=0.0)
    for tp in touchpoints:
        frame[TOUCHES_PREFIX + tp] = tp_counts[tp].astype(np.int64)
    event_targets = targets.reindex(weeks, fill_value=0)
    frame["conversions"] = event_targets["conversions"].astype(np.int64)
    frame["revenue"] = event_targets["revenue"].astype(float)

    missing = set(weeks[event_targets["events"].to_numpy() == 0])
    if spend_by_month is not None:
        spend_weeks = set(channel_spend.attrs["weeks_with_rows"])
        missing |= set(weeks) - spend_weeks
    control_frame = _controls_for(controls, weeks)
    frame = frame.join(control_frame)
    sources = tuple(
        sorted({str(f) for df in events_by_month.values() for f in df["source_file"].unique()})
    )
    return WeeklyPanel(
        frame=frame,
        channels=tuple(config.channels),
        touchpoints=touchpoints,
        controls=tuple(control_frame.columns),
        route="events",
        missing_weeks=tuple(sorted(str(w.date()) for w in missing)),
        source_totals=totals,
        sources=sources,
    )


def _aggregate_events(events_by_month, wd, lo, hi):
    """Weekly touch counts and targets, plus totals taken straight from the rows in range."""
    touch_parts, target_parts = [], []
    totals = {"conversions": 0.0, "revenue": 0.0, "events": 0.0}
    touch_totals: dict[str, float] = {}
    for month in sorted(events_by_month):
        events = events_by_month[month]
        in_range = ((events["timestamp"] >= lo) & (events["timestamp"] < hi)).to_numpy()
        events = events.loc[in_range]
        week = week_floor(events["timestamp"], wd).rename("week_start")
        # Rows an event-type column marks as no touch (a purchase) count no touch; files
        # stored before the 'touch' column existed touch on every row.
        touching = events["touch"].to_numpy() == 1 if "touch" in events else slice(None)
        touches = events.loc[touching]
        touch_parts.append(
            touches.groupby([week.loc[touching], touches["touchpoint"]], observed=True).size()
        )
        target_parts.append(
            pd.DataFrame(
                {
                    "conversions": events["conversion"].astype(np.int64),
                    "revenue": events["value"],
                    "events": 1,
                }
            )
            .groupby(week)
            .sum()
        )
        totals["conversions"] += float(events["conversion"].sum())
        totals["revenue"] += float(events["value"].sum())
        totals["events"] += float(len(events))
        for tp, n in touches["touchpoint"].value_counts().items():
            touch_totals[str(tp)] = touch_totals.get(str(tp), 0.0) + float(n)
    touches = pd.concat(touch_parts).groupby(level=[0, 1], observed=True).sum()
    touches.index = touches.index.set_names(["week_start", "touchpoint"])
    touches = touches.rename(index=str, level="touchpoint")
    targets = pd.concat(target_parts).groupby(level=0).sum()
    totals.update({f"{TOUCHES_PREFIX}{tp}": n for tp, n in touch_totals.items()})
    return touches, targets, totals


def _channel_spend(spend_by_month, tp_counts, config, wd, lo, hi, totals) -> pd.DataFrame:
    """Weekly spend per channel: from the feed, or touches x cost per touch."""
    columns = {}
    weeks_with_rows: set[pd.Timestamp] = set()
    if spend_by_month is not None:
        parts = []
        for month in sorted(spend_by_month):
            spend = spend_by_month[month]
            spend = spend.loc[((spend["date"] >= lo) & (spend["date"] < hi)).to_numpy()]
            week = week_floor(spend["date"], wd).rename("week_start")
            parts.append(spend.groupby([week, spend["channel"].astype(str)])["spend"].sum())
            for channel, value in (
                spend.groupby(spend["channel"].astype(str))["spend"].sum().items()
            ):
                key = SPEND_PREFIX + channel
                totals[key] = totals.get(key, 0.0) + float(value)
            weeks_with_rows |= set(week.unique())
        fed = pd.concat(parts).groupby(level=[0, 1]).sum().unstack(fill_value=0.0)
        columns.update({name: fed[name] for name in fed.columns})
    for name, channel in config.channels.items():
        if channel.cost_per_touch is not None:
            present = [tp for tp in channel.touchpoints if tp in tp_counts]
            touches = tp_counts[present].sum(axis=1) if present else 0.0 * tp_counts.sum(axis=1)
            columns[name] = touches * channel.cost_per_touch
            totals[SPEND_PREFIX + name] = float(
                sum(totals.get(TOUCHES_PREFIX + tp, 0.0) for tp in channel.touchpoints)
                * channel.cost_per_touch
            )
        elif name not in columns:
            columns[name] = pd.Series(dtype=float)
            totals.setdefault(SPEND_PREFIX + name, 0.0)
    out = pd.DataFrame({k: v for k, v in columns.items()}).fillna(0.0)
    out.attrs["weeks_with_rows"] = sorted(weeks_with_rows)
    return out


def _controls_for(controls: pd.DataFrame | None, weeks: pd.DatetimeIndex) -> pd.DataFrame:
    if controls is None:
        return pd.DataFrame(index=weeks)
    missing = weeks.difference(controls.index)
    if len(missing):
        shown = [str(w.date()) for w in missing[:5]]
        raise InputDataError(
            controls.attrs.get("path"),
            f"controls have no row for {len(missing)} panel week(s), first {shown}; "
            "expected one row per week",
        )
    return controls.loc[weeks]


def read_controls(path: Path, config: ProjectConfig) -> pd.DataFrame | None:
    """The weekly controls file (events route), indexed by week start."""
    section = config.controls
    if not section.series:
        return None
    table = read_table(path)
    require_columns(
        table,
        {"date_column": section.date_column} | required_control_columns(section),
        "controls",
    )
    weeks = week_floor(
        parse_timestamps(table, section.date_column), config.project.week_start_index
    )
    _refuse_duplicate_weeks(table, weeks, section.date_column)
    encoded = control_columns(table, section).set_index(pd.DatetimeIndex(weeks))
    encoded.attrs["path"] = str(path)
    return encoded.sort_index()


def _refuse_duplicate_weeks(table, weeks: pd.Series, column: str) -> None:
    duplicated = weeks.duplicated().to_numpy()
    if duplicated.any():
        index = int(np.flatnonzero(duplicated)[0])
        first = int(np.flatnonzero((weeks == weeks.iloc[index]).to_numpy())[0])
        raise table.error(
            f"two rows fall in the week starting {weeks.iloc[index].date()} "
            f"({table.row_kind} {table.lines[first]} and this one); expected one row per week",
            index=index,
            column=column,
        )


def build_panel_from_file(
    path: Path, config: ProjectConfig, market: str | None = None
) -> WeeklyPanel:
    """Read a ready weekly table through the config's column mapping (route 2).

    With markets configured the file is long (one row per market and week) and ``market``
    selects one of them; errors still name the line in the file. With
    ``sources.panel.period`` each row covers a month (quarter, year, week): amounts are
    spread over its days and summed by week, controls averaged over the week's days.
    """
    panel_cfg = config.sources.panel
    cols = panel_cfg.columns
    table = read_table(path)
    if cols.market is not None:
        table = market_rows(table, cols.market, config.project.markets, market)
    targets = {t: getattr(cols, t) for t in TARGETS}
    targets = {t: c for t, c in targets.items() if c is not None}
    touch_columns = {n: c.touches_column for n, c in config.channels.items() if c.touches_column}
    date_columns = cols.date_fields()
    require_columns(
        table,
        date_columns
        | {f"{t}": c for t, c in targets.items()}
        | {f"{n}.spend_column": c.spend_column for n, c in config.channels.items()}
        | {f"{n}.touches_column": c for n, c in touch_columns.items()}
        | required_control_columns(config.controls),
        "sources.panel.columns / channels / controls",
    )
    period, date_column = panel_cfg.row_period, next(iter(date_columns.values()))
    dates = row_dates(table, cols, period, "sources.panel", panel_cfg.date_format)
    if period is None:
        weeks = week_floor(dates, config.project.week_start_index)
        _refuse_duplicate_weeks(table, weeks, date_column)
    else:
        refuse_duplicates(
            table, pd.DataFrame({"date": dates}), date_column, f"one row per {period}"
        )
    numbers = {SPEND_PREFIX + n: c.spend_column for n, c in config.channels.items()}
    numbers |= {TOUCHES_PREFIX + n: c for n, c in touch_columns.items()} | targets
    columns = {
        key: parse_numbers(
            table,
            column,
            blank_as_zero=panel_cfg.blank_as_zero,
            blank_key="sources.panel.blank_as_zero",
            non_negative=True,
        )
        for key, column in numbers.items()
    }
    for name in config.channels:  # in money, as the revenue is
        columns[SPEND_PREFIX + name] = columns[SPEND_PREFIX + name] * panel_cfg.spend_unit
    frame = pd.DataFrame(columns).join(control_columns(table, config.controls))
    if period is None:
        frame.index = pd.DatetimeIndex(weeks, name="week_start")
        frame = frame.sort_index()
        expected = pd.date_range(frame.index[0], frame.index[-1], freq="7D")
        missing = expected.difference(frame.index)
        totals = {k: float(v) for k, v in frame[list(numbers)].sum().items()}
    else:
        frame, missing, totals = _spread_to_weeks(
            frame.assign(date=dates.to_numpy()), period, list(numbers), config, path
        )
    return WeeklyPanel(
        frame=frame,
        channels=tuple(config.channels),
        touchpoints=tuple(touch_columns),
        controls=tuple(_controls_of(frame)),
        route="panel",
        missing_weeks=tuple(str(w.date()) for w in missing),
        source_totals=totals,
        sources=(path.name,),
    )


def _spread_to_weeks(
    frame: pd.DataFrame, period: str, flows: list[str], config: ProjectConfig, path: Path
) -> tuple[pd.DataFrame, pd.DatetimeIndex, dict[str, float]]:
    """Rows that each cover a period, as the weeks their days cover completely: amounts
    summed over the days, levels (controls) averaged. Weeks at either end that the periods
    cover only in part are left out; one inside that lacks days is a missing week."""
    daily = spread_over_days(frame, period, flows)
    week = week_floor(daily["date"], config.project.week_start_index).rename("week_start")
    grouped = daily.drop(columns="date").groupby(week)
    levels = _controls_of(frame)
    weekly = pd.concat([grouped[flows].sum(), grouped[levels].mean()], axis=1)
    days = grouped.size()
    complete = days.index[(days == 7).to_numpy()]
    if complete.empty:
        raise ContractError(
            f"{path}: its rows ({PERIODICALLY[period]}, sources.panel.period) cover no complete "
            "week (a week needs all 7 of its days)"
        )
    expected = pd.date_range(complete[0], complete[-1], freq="7D", name="week_start")
    in_weeks = week.isin(complete).to_numpy()
    totals = {k: float(v) for k, v in daily.loc[in_weeks, flows].sum().items()}
    frame = weekly.loc[complete, [c for c in frame.columns if c != "date"]]
    return frame, expected.difference(complete), totals


def market_rows(table: Table, column: str, markets: list[str], market: str | None) -> Table:
    """The rows of ``market``; refuse a market the file lacks or one the config does not list."""
    require_columns(table, {"market": column}, "sources.panel.columns")
    labels = table.frame[column].astype(str).str.strip()
    if market not in markets:
        raise ContractError(f"market {market!r} is not one of project.markets {markets}")
    keep = (labels == market).to_numpy()
    if not keep.any():
        present = sorted(labels.unique())
        raise table.error(
            f"no rows for market {market!r} in column {column!r}; the file has {present}",
            column=column,
        )
    return table.subset(keep)


def _controls_of(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(CONTROL_PREFIX)]


def panel_rules(panel: WeeklyPanel) -> list[CheckOutcome]:
    """The panel checks: every week present, and totals equal to the source rows."""
    return [_no_missing_weeks(panel), _reconciles(panel)]


def _no_missing_weeks(panel: WeeklyPanel) -> CheckOutcome:
    steps = np.diff(panel.weeks.values).astype("timedelta64[D]").astype(int)
    irregular = int((steps != 7).sum())
    if panel.missing_weeks or irregular:
        shown = list(panel.missing_weeks[:10])
        files = ", ".join(panel.sources[:3]) + (" and more" if len(panel.sources) > 3 else "")
        return CheckOutcome(
            "no_missing_weeks",
            False,
            f"{len(panel.missing_weeks)} week(s) have no source data, first {shown}"
            + (f"; expected rows dated in them in {files}" if files else ""),
            {"missing_weeks": len(panel.missing_weeks), "irregular_steps": irregular},
        )
    return CheckOutcome(
        "no_missing_weeks", True, f"{len(panel.frame)} consecutive weeks, each with source data"
    )


def _reconciles(panel: WeeklyPanel) -> CheckOutcome:
    worst, rows = 0.0, {}
    for key, source in panel.source_totals.items():
        if key not in panel.frame:
            continue
        total = float(panel.frame[key].sum())
        gap = abs(total - source) / max(abs(source), 1e-9) if (source or total) else 0.0
        rows[key] = {"panel": total, "source": source, "relative_gap": gap}
        worst = max(worst, gap)
    bad = {k: v for k, v in rows.items() if v["relative_gap"] > RECONCILE_TOLERANCE}
    metadata = {"worst_relative_gap": worst, "compared": len(rows)}
    if bad:
        detail = "; ".join(
            f"{k}: panel {v['panel']:.2f} vs source {v['source']:.2f}" for k, v in bad.items()
        )
        return CheckOutcome(
            "totals_reconcile", False, f"totals differ by > 0.1%: {detail}", metadata
        )
    return CheckOutcome(
        "totals_reconcile",
        True,
        f"{len(rows)} totals match the source rows (worst gap {worst:.2e})",
        metadata,
    )


def validate_panel(panel: WeeklyPanel) -> None:
    """Structural contract of a panel; raises :class:`ContractError` naming the problem."""
    frame = panel.frame
    if not isinstance(frame.index, pd.DatetimeIndex) or not frame.index.is_monotonic_increasing:
        raise ContractError("weekly panel: index must be increasing week_start timestamps")
    expected = (
        [SPEND_PREFIX + c for c in panel.channels]
        + [TOUCHES_PREFIX + t for t in panel.touchpoints]
        + list(panel.controls)
    )
    missing = [c for c in expected if c not in frame]
    if missing:
        raise ContractError(f"weekly panel: missing column(s) {missing}")
    if not any(t in frame for t in TARGETS):
        raise ContractError("weekly panel: needs a 'conversions' or 'revenue' column")
    numeric = frame[expected + [t for t in TARGETS if t in frame]]
    if numeric.isna().any().any():
        column = numeric.columns[numeric.isna().any()].tolist()[0]
        raise ContractError(f"weekly panel: column {column!r} has missing values")
    spend = frame[[SPEND_PREFIX + c for c in panel.channels]]
    if (spend.to_numpy() < 0).any():
        raise ContractError("weekly panel: negative spend")


def write_panel(panel: WeeklyPanel, path: str | Path) -> None:
    """Write the panel as Parquet with its contract metadata, atomically."""
    validate_panel(panel)
    table = pa.Table.from_pandas(panel.frame, preserve_index=True)
    meta = {k: v for k, v in asdict(panel).items() if k != "frame"}
    meta["source_totals"] = dict(panel.source_totals)
    schema_meta = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(meta).encode()}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(schema_meta), tmp)


def read_panel(path: str | Path) -> WeeklyPanel:
    """Read a panel written by :func:`write_panel`, validating its contract."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ContractError(f"{path}: not a conversionflow weekly panel (no contract metadata)")
    meta = json.loads(raw)
    panel = WeeklyPanel(
        frame=table.to_pandas(),
        channels=tuple(meta["channels"]),
        touchpoints=tuple(meta["touchpoints"]),
        controls=tuple(meta["controls"]),
        route=meta["route"],
        missing_weeks=tuple(meta["missing_weeks"]),
        source_totals=meta["source_totals"],
        sources=tuple(meta["sources"]),
    )
    validate_panel(panel)
    return panel


def panel_window(panel: WeeklyPanel, as_of_month: str, window_weeks: int | None) -> WeeklyPanel:
    """The complete weeks known by the end of ``as_of_month``: the last ``window_weeks`` of
    them, or every one when it is None.

    Fitting "as of" a month on a trailing window is what makes a backfill over months a
    parameter-stability study: each month sees only the data that existed then. On the events
    route a week running into the next month is not complete by then (its last days' events
    are in a month not yet ingested); on the panel route a week in the file is complete by
    definition, so every week starting by the month's end is kept.
    """
    month_end = next_month_start(as_of_month)
    starts = panel.frame.index
    known = starts < month_end if panel.route == "panel" else starts + WEEK <= month_end
    visible = panel.frame.loc[known]
    if visible.empty:
        raise ContractError(f"the weekly panel has no complete week up to the end of {as_of_month}")
    window = visible if window_weeks is None else visible.iloc[-window_weeks:]
    return dataclasses.replace(panel, frame=window)


def weeks_left_out(panel: WeeklyPanel, window: WeeklyPanel) -> pd.DatetimeIndex:
    """The panel's weeks before ``window`` starts: data a capped window does not fit."""
    return panel.weeks[panel.weeks < window.weeks[0]]


def left_out_message(left_out: pd.DatetimeIndex, window_weeks: int | None) -> str:
    """Says which weeks a capped window leaves out, and the setting that does it."""
    return (
        f"{len(left_out)} complete week(s) of data are left out of the fit, "
        f"{left_out[0].date()} to {left_out[-1].date()}: model.window_weeks {window_weeks} "
        "caps the window; raise it, or remove it to fit every week"
    )


# Non-zero weekly spends all within this ratio of each other count as one spend level.
ONE_LEVEL_RATIO = 1.05


def one_spend_level(window: WeeklyPanel) -> dict[str, tuple[float, int]]:
    """Channels that spend one amount in every week they spend at all: {channel: (median
    amount, weeks on)}. Their weeks show what the channel adds when on, not where its returns
    diminish, so the shape of their response curve comes from the prior alone."""
    flat = {}
    for channel, spend in window.spend().items():
        on = spend[spend > 0]
        if len(on) >= 2 and on.max() <= ONE_LEVEL_RATIO * on.min():
            flat[channel] = (float(on.median()), len(on))
    return flat


def one_spend_level_message(channel: str, amount: float, weeks_on: int) -> str:
    """What a channel with one spend level means for its curve, and what would help."""
    return (
        f"channel {channel} spends about {amount:,.0f} in each of the {weeks_on} week(s) it "
        "spends anything: the data show what it adds when on, not where its returns diminish, "
        "so its response curve (and any plan that moves its budget) rests on the "
        "saturation prior (model.priors, docs/priors.md); weeks at other spend levels would "
        "let the data speak"
    )


def shared_windows(
    panels: Mapping[str, WeeklyPanel], month: str
) -> tuple[dict[str, WeeklyPanel], dict[str, pd.DatetimeIndex]]:
    """Each market's complete weeks up to the end of ``month`` cut to the weeks every market
    has, and each market's weeks left out because another market lacks them (markets with
    none left out are not listed)."""
    visible = {}
    for market, panel in panels.items():
        try:
            visible[market] = panel_window(panel, month, None)
        except ContractError as error:
            raise ContractError(f"market {market}: {error}") from None
    common = reduce(pd.DatetimeIndex.intersection, (v.weeks for v in visible.values()))
    common = common.sort_values()
    not_shared = {m: v.weeks.difference(common) for m, v in visible.items()}
    return (
        {m: dataclasses.replace(v, frame=v.frame.loc[common]) for m, v in visible.items()},
        {m: weeks for m, weeks in not_shared.items() if len(weeks)},
    )


def not_shared_message(not_shared: Mapping[str, pd.DatetimeIndex], shared: pd.DatetimeIndex) -> str:
    """Says which markets' weeks a pooled fit leaves out because other markets lack them."""
    per_market = "; ".join(
        f"{market}: {len(weeks)} week(s), {weeks[0].date()} to {weeks[-1].date()}"
        for market, weeks in not_shared.items()
    )
    span = f"{shared[0].date()} to {shared[-1].date()}" if len(shared) else "none"
    return (
        f"the markets do not cover the same weeks: the pooled fit uses the {len(shared)} "
        f"week(s) they all have ({span}) and leaves out {per_market}"
    )
