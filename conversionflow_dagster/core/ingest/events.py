"""The customer-journey event log: reading one month into the events contract, and its rules.

Contract (one row per event): ``customer_id`` (string), ``timestamp`` (datetime64, UTC-naive),
``touchpoint`` (category), ``conversion`` (int8, 0/1), ``value`` (float, >= 0; blank = 0),
plus ``source_file`` and ``line`` so every later message can point back into the input.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from conversionflow_dagster.core.config import EventsSource, ProjectConfig
from conversionflow_dagster.core.errors import InputDataError
from conversionflow_dagster.core.ingest.tables import (
    Table,
    parse_binary,
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

EVENT_SCHEMA = {
    "customer_id": "OU",  # object or pandas string
    "timestamp": "M",
    "touchpoint": "OU",
    "conversion": "i",
    "value": "f",
}
EVENT_KEY = ["customer_id", "timestamp", "touchpoint", "conversion", "value"]


def month_file(template: Path, month: str) -> Path:
    """The file holding ``month``: the template with ``{month}`` filled in, or the one file."""
    return Path(str(template).replace("{month}", month))


def is_per_month(template: Path) -> bool:
    return "{month}" in str(template)


def parse_events(table: Table, source: EventsSource) -> pd.DataFrame:
    """Parse a raw table into the events contract, refusing values that cannot be read."""
    columns = source.columns.model_dump()
    require_columns(table, columns, "sources.events.columns")
    frame = pd.DataFrame(
        {
            "customer_id": parse_labels(table, columns["customer_id"], refuse_null_text=True),
            "timestamp": parse_timestamps(table, columns["timestamp"]),
            "touchpoint": parse_labels(table, columns["touchpoint"], refuse_null_text=True),
            "conversion": parse_binary(table, columns["conversion"]),
            "value": parse_numbers(table, columns["value"], blank_as_zero=True, non_negative=True),
        }
    )
    frame["line"] = table.lines.astype(np.int32)
    frame["source_file"] = pd.Categorical([table.path.name] * len(frame))
    return frame


def read_month_events(template: Path, source: EventsSource, month: str) -> pd.DataFrame:
    """Events of one calendar month, from a per-month file or filtered from a single file.

    A per-month file is taken whole (rows dated in another month are kept, for the
    ``timestamps_in_month`` check to report); a single file is filtered to the month.
    """
    path = month_file(template, month)
    if is_per_month(template) and not path.is_file():
        raise InputDataError(path, f"no event file for month {month} (expected this file)")
    events = parse_events(read_table(path), source)
    if not is_per_month(template):
        events = events.loc[~in_month_mask(events["timestamp"], month)]
        if events.empty:
            raise InputDataError(path, f"no events dated in month {month}")
    if source.drop_duplicates:
        events = events.drop_duplicates(subset=EVENT_KEY)
    events["touchpoint"] = events["touchpoint"].astype("category")
    return events.reset_index(drop=True)


def refuse_misspelt_touchpoints(events: pd.DataFrame, config: ProjectConfig) -> None:
    """Refuse a touchpoint that matches a configured one except for case, spaces or separators.

    Touchpoints map to channels by exact name, so 'Search_Touch' in the log for a configured
    'search_touch' would silently count as organic.
    """
    mapping = config.touchpoint_channel()
    configured = {_spelling(tp): tp for tp in mapping}
    for touchpoint in map(str, events["touchpoint"].dropna().unique()):
        match = configured.get(_spelling(touchpoint))
        if match is None or touchpoint in mapping:
            continue
        first = events.loc[(events["touchpoint"] == touchpoint).to_numpy()].iloc[0]
        raise InputDataError(
            first["source_file"],
            f"touchpoint {touchpoint!r} differs from the configured {match!r} "
            f"(channels.{mapping[match]}.touchpoints) only in case, spaces or separators; "
            "touchpoints are matched exactly, so these events would count as organic. Use one "
            "spelling in the file and the config",
            row=int(first["line"]),
            column=config.sources.events.columns.touchpoint,
        )


def _spelling(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name).lower()


def event_rules(events: pd.DataFrame, month: str) -> list[CheckOutcome]:
    """The raw-events checks, evaluated on stored data."""
    duplicated = events.duplicated(subset=EVENT_KEY, keep="first").to_numpy()
    conversion_ok = events["conversion"].isin([0, 1]).to_numpy()
    value_ok = (events["value"].fillna(0) >= 0).to_numpy()
    return [
        schema_rule("schema", events, EVENT_SCHEMA),
        rule(
            "critical_fields_not_null",
            events,
            nulls_mask(events, ["customer_id", "timestamp", "touchpoint"]),
            "customer_id, timestamp and touchpoint are filled in",
        ),
        rule(
            "no_duplicate_events",
            events,
            duplicated,
            "no event appears twice (set sources.events.drop_duplicates to drop them)",
        ),
        rule(
            "timestamps_in_month",
            events,
            in_month_mask(events["timestamp"], month),
            f"timestamp inside {month}",
        ),
        rule(
            "values_valid",
            events,
            ~(conversion_ok & value_ok),
            "conversion is 0 or 1 and value >= 0",
        ),
    ]
