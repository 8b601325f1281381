"""The spend feed: reading one month (long or wide layout) into the spend contract.

Contract (long, one row per date and channel): ``date`` (datetime64, a day or any day of the
week it covers), ``channel`` (category), ``spend`` (float, >= 0), ``source_file``, ``line``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from conversionflow_dagster.core.config import ProjectConfig
from conversionflow_dagster.core.errors import InputDataError
from conversionflow_dagster.core.ingest.events import is_per_month, month_file
from conversionflow_dagster.core.ingest.tables import (
    Table,
    parse_labels,
    parse_numbers,
    parse_timestamps,
    read_table,
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


def fed_channels(config: ProjectConfig) -> list[str]:
    """Channels whose spend comes from the feed (the rest are paid per touch)."""
    return [name for name, ch in config.channels.items() if ch.cost_per_touch is None]


def _long(table: Table, config: ProjectConfig) -> pd.DataFrame:
    cols = config.sources.spend.columns
    require_columns(
        table,
        {"date": cols.date, "channel": cols.channel, "spend": cols.spend},
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
    return pd.DataFrame(
        {
            "date": parse_timestamps(table, cols.date),
            "channel": channel,
            "spend": parse_numbers(table, cols.spend, non_negative=True),
            "line": np.arange(len(table.frame), dtype=np.int32) + table.first_row,
        }
    )


def _wide(table: Table, config: ProjectConfig) -> pd.DataFrame:
    date_col = config.sources.spend.columns.date
    mapping = {name: config.channels[name].spend_column for name in fed_channels(config)}
    require_columns(
        table,
        {"date": date_col} | {f"{k}.spend_column": v for k, v in mapping.items()},
        "channels / sources.spend.columns",
    )
    dates = parse_timestamps(table, date_col)
    lines = np.arange(len(table.frame), dtype=np.int32) + table.first_row
    frames = [
        pd.DataFrame(
            {
                "date": dates,
                "channel": name,
                "spend": parse_numbers(table, column, blank_as_zero=True, non_negative=True),
                "line": lines,
            }
        )
        for name, column in mapping.items()
    ]
    return pd.concat(frames, ignore_index=True)


def read_month_spend(template: Path, config: ProjectConfig, month: str) -> pd.DataFrame:
    """Spend rows of one calendar month (per-month file taken whole, single file filtered)."""
    path = month_file(template, month)
    if is_per_month(template) and not path.is_file():
        raise InputDataError(path, f"no spend file for month {month} (expected this file)")
    table = read_table(path)
    reader = _wide if config.sources.spend.layout == "wide" else _long
    spend = reader(table, config)
    if not is_per_month(template):
        spend = spend.loc[~in_month_mask(spend["date"], month)]
        if spend.empty:
            raise InputDataError(path, f"no spend rows dated in month {month}")
    spend["channel"] = spend["channel"].astype("category")
    spend["source_file"] = pd.Categorical([path.name] * len(spend))
    return spend.reset_index(drop=True)


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
