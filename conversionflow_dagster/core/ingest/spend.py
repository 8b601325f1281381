"""The spend feed: reading one month (long or wide layout) into the spend contract.

Contract (long, one row per date and channel): ``date`` (datetime64, a day or any day of the
week it covers), ``channel`` (category), ``spend`` (float, >= 0), ``source_file``, ``line``.
A feed given per month (quarter, year: ``sources.spend.period``) is stored spread over the
days of each period (see :mod:`periods`), so each day's row carries its share.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from conversionflow_dagster.core.config import ProjectConfig
from conversionflow_dagster.core.errors import InputDataError
from conversionflow_dagster.core.ingest.events import (
    MonthWithoutData,
    data_months,
    is_per_month,
    month_file,
    months_with_files,
)
from conversionflow_dagster.core.ingest.panel import week_floor
from conversionflow_dagster.core.ingest.periods import row_dates, spread_over_days
from conversionflow_dagster.core.ingest.tables import (
    Table,
    parse_labels,
    parse_numbers,
    read_table,
    refuse_duplicates,
    require_columns,
)
from conversionflow_dagster.core.rules import (
    CheckOutcome,
    in_month_mask,
    nulls_mask,
    rule,
    schema_rule,
)

SPEND_SCHEMA = {"date": "M", "channel": "OU", "spend": "f"}
BLANK_KEY = "sources.spend.blank_as_zero"
SOURCE_KEY = "sources.spend"


def fed_channels(config: ProjectConfig) -> list[str]:
    """Channels whose spend comes from the feed (the rest are paid per touch)."""
    return [name for name, ch in config.channels.items() if ch.cost_per_touch is None]


def _dates(table: Table, config: ProjectConfig) -> tuple[pd.Series, str, str]:
    """Each row's date (its period's start for a coarse feed), the column errors name, and
    what one row per date means ('date', or the period)."""
    source = config.sources.spend
    dates = row_dates(table, source.columns, source.row_period, SOURCE_KEY, source.date_format)
    return dates, next(iter(source.columns.date_fields().values())), source.row_period or "date"


def _long(table: Table, config: ProjectConfig) -> pd.DataFrame:
    cols = config.sources.spend.columns
    require_columns(
        table,
        cols.date_fields() | {"channel": cols.channel, "spend": cols.spend},
        "sources.spend.columns",
    )
    channel = parse_labels(table, cols.channel)
    fed = set(fed_channels(config))
    unknown = (~channel.isin(fed)).to_numpy()
    if unknown.any():
        index = int(np.flatnonzero(unknown)[0])
        name = channel.iloc[index]
        if name in config.channels:
            problem = (
                f"channel {name!r} is paid per touch (cost_per_touch in config) but also has "
                "spend rows; remove one of the two"
            )
        else:
            problem = (
                f"unknown channel {name!r}; expected one of the configured channels "
                f"{sorted(fed)} (add it under 'channels' in the config)"
            )
        raise table.error(problem, index=index, column=cols.channel)
    dates, date_column, unit = _dates(table, config)
    refuse_duplicates(
        table,
        pd.DataFrame({"date": dates, "channel": channel}),
        date_column,
        f"one row per {unit} and channel (add the two up in the file if both are real)",
    )
    return pd.DataFrame(
        {
            "date": dates,
            "channel": channel,
            "spend": _spend(table, cols.spend, config),
            "line": table.lines.astype(np.int32),
        }
    )


def _spend(table: Table, column: str, config: ProjectConfig) -> pd.Series:
    """A spend column in money (``sources.spend.spend_unit`` per number in the file)."""
    source = config.sources.spend
    spend = parse_numbers(
        table, column, blank_as_zero=source.blank_as_zero, blank_key=BLANK_KEY, non_negative=True
    )
    return spend * source.spend_unit


def _wide(table: Table, config: ProjectConfig) -> pd.DataFrame:
    mapping = {name: config.channels[name].spend_column for name in fed_channels(config)}
    require_columns(
        table,
        config.sources.spend.columns.date_fields()
        | {f"{k}.spend_column": v for k, v in mapping.items()},
        "channels / sources.spend.columns",
    )
    dates, date_column, unit = _dates(table, config)
    refuse_duplicates(
        table,
        pd.DataFrame({"date": dates}),
        date_column,
        f"one row per {unit} (add the two up in the file if both are real)",
    )
    lines = table.lines.astype(np.int32)
    frames = [
        pd.DataFrame(
            {
                "date": dates,
                "channel": name,
                "spend": _spend(table, column, config),
                "line": lines,
            }
        )
        for name, column in mapping.items()
    ]
    return pd.concat(frames, ignore_index=True)


def read_month_spend(template: Path, config: ProjectConfig, month: str) -> pd.DataFrame:
    """Spend rows of one calendar month (per-month file taken whole, single file filtered);
    a coarse feed's rows are spread over the days of their period first."""
    path = month_file(template, month)
    if is_per_month(template) and not path.is_file():
        raise MonthWithoutData(path, month, "spend file for", months_with_files(template), template)
    table = read_table(path)
    reader = _wide if config.sources.spend.layout == "wide" else _long
    spend = reader(table, config)
    period = config.sources.spend.row_period
    if period is not None:
        spend = spread_over_days(spend, period, ["spend"], keys=["channel"])
    if not is_per_month(template):
        dated = spend["date"]
        spend = spend.loc[~in_month_mask(dated, month)]
        if spend.empty:
            raise MonthWithoutData(path, month, "spend rows dated in", data_months(dated), template)
    if config.sources.spend.layout == "long" and not config.sources.spend.blank_as_zero:
        _refuse_missing_weeks(path, spend.loc[~in_month_mask(spend["date"], month)], config)
    spend["channel"] = spend["channel"].astype("category")
    spend["source_file"] = pd.Categorical([path.name] * len(spend))
    return spend.reset_index(drop=True)


def _refuse_missing_weeks(path: Path, spend: pd.DataFrame, config: ProjectConfig) -> None:
    """Refuse a week in which some channels have spend rows and a fed channel has none.

    The panel would read the missing week as 0 spent, which for a feed is more often lost data.
    Rows dated outside the month are left to the ``dates_in_month`` check.
    """
    weeks = week_floor(spend["date"], config.project.week_start_index)
    present = set(zip(weeks, spend["channel"].astype(str), strict=True))
    for week in sorted(weeks.unique()):
        for channel in fed_channels(config):
            if (week, channel) not in present:
                raise InputDataError(
                    path,
                    f"channel {channel!r} has no spend row in the week starting "
                    f"{week.date()}, while other channels do; expected a row per channel and "
                    f"week (write 0 where nothing was spent, or set {BLANK_KEY}: true to read "
                    "a missing week as 0)",
                    column=config.sources.spend.columns.channel,
                )


def spend_rules(spend: pd.DataFrame, month: str) -> list[CheckOutcome]:
    """The raw-spend checks, evaluated on stored data."""
    return [
        schema_rule("schema", spend, SPEND_SCHEMA),
        rule(
            "no_nulls",
            spend,
            nulls_mask(spend, ["date", "channel", "spend"]),
            "date, channel and spend are filled in",
        ),
        rule("dates_in_month", spend, in_month_mask(spend["date"], month), f"date inside {month}"),
        rule("spend_non_negative", spend, (spend["spend"] < 0).to_numpy(), "spend >= 0"),
    ]
