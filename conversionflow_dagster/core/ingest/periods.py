"""Feeds not by week: rows that each cover a day, week, month, quarter or year, spread over
their days (a day's row is its own day) and then summed by week.

Many marketing feeds give spend per month. The model is weekly, so a row's amount is divided
evenly over the days of its period, and a week then gets the share of the period's days it
contains: a week inside a 31-day month gets 7/31 of the month, a week straddling two months
its days' shares of each. Levels (controls such as a price index) are not divided: each day
keeps the row's value and a week takes the mean over its days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from conversionflow_dagster.core.config import Period
from conversionflow_dagster.core.errors import ContractError
from conversionflow_dagster.core.ingest.tables import Table, parse_timestamps, parse_year_month

DAY = pd.Timedelta(days=1)
PANDAS_PERIOD = {"day": "D", "month": "M", "quarter": "Q", "year": "Y"}


def row_dates(
    table: Table, columns, period: Period | None, source_key: str, date_format: str | None = None
) -> pd.Series:
    """Each row's date, from ``columns.date`` (ISO 8601, or in ``date_format``) or from
    ``columns.year`` (and ``columns.month``); with a ``period``, the first day of the period
    the row covers."""
    if columns.year is not None:
        dates = parse_year_month(table, columns.year, columns.month)
    else:
        dates = parse_timestamps(
            table, columns.date, period=period, source_key=source_key, date_format=date_format
        )
    return dates if period is None else period_bounds(dates, period)[0]


def period_bounds(dates: pd.Series, period: Period) -> tuple[pd.Series, pd.Series]:
    """First day and the day after the last of the period each date lies in (a week: the
    seven days from the date)."""
    if period == "week":
        start = dates.dt.normalize()
        return start, start + pd.Timedelta(days=7)
    spans = dates.dt.to_period(PANDAS_PERIOD[period])
    return spans.dt.start_time, (spans + 1).dt.start_time


def spread_over_days(
    frame: pd.DataFrame,
    period: Period,
    flows: list[str],
    keys: list[str] = (),
    date: str = "date",
) -> pd.DataFrame:
    """One row per day of each row's period (the ``date`` column its period's start): the
    ``flows`` divided by the period's days, every other column repeated. Rows (of the same
    ``keys``) whose periods overlap are refused: their days would be counted twice."""
    start, end = period_bounds(frame[date], period)
    days = ((end - start) // DAY).to_numpy(dtype=np.int64)
    rows = np.repeat(np.arange(len(frame)), days)
    offset = np.arange(len(rows)) - np.repeat(np.cumsum(days) - days, days)
    daily = frame.iloc[rows].reset_index(drop=True)
    daily[date] = start.to_numpy()[rows] + offset * np.timedelta64(1, "D")
    if flows:
        daily[flows] = daily[flows].to_numpy(dtype=float) / days[rows, None]
    overlap = daily.duplicated([date, *keys]).to_numpy()
    if overlap.any():
        day = daily[date].iloc[int(np.flatnonzero(overlap)[0])]
        raise ContractError(
            f"two rows' {period}s both cover {day.date()}; each {period} starting on its row's "
            "date, the rows must not overlap"
        )
    return daily
