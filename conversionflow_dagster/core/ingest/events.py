"""The customer-journey event log: reading one month into the events contract, and its rules.

Contract (one row per event): ``customer_id`` (string), ``timestamp`` (datetime64, UTC-naive),
``touchpoint`` (category), ``conversion`` (int8, 0/1), ``value`` (float, >= 0; blank = 0),
``touch`` (int8, 1 where the row counts as a touch of its touchpoint: every row, unless the
source maps an event-type column), plus ``source_file`` and ``line`` so every later message
can point back into the input.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
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
from conversionflow_dagster.core.months import months_between
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
    "touch": "i",
}
EVENT_KEY = ["customer_id", "timestamp", "touchpoint", "conversion", "value"]
MONTHS_KEY = "project.partitions.start_month/end_month"


class MonthWithoutData(InputDataError):
    """A configured month for which a source has no data at all.

    ``available`` is the first and last month that do have data (None: none found), so the
    message can say which months to configure instead; ``source`` is the configured path.
    """

    def __init__(
        self,
        path: Path,
        month: str,
        what: str,
        available: tuple[str, str] | None,
        source: Path,
    ) -> None:
        self.month, self.what, self.available, self.source = month, what, available, source
        super().__init__(path, f"no {what} month {month}{self.advice()}")

    def advice(self) -> str:
        if self.available is None:
            return "; the source has no data for any month"
        first, last = self.available
        return (
            f"; it has data for the months {first} to {last}: set {MONTHS_KEY} to months "
            "within them"
        )


def months_without_data(errors: Sequence[MonthWithoutData]) -> str:
    """One message for every month of one source that has no data (``validate`` would
    otherwise print a line per calendar month up to today when end_month is omitted)."""
    months = sorted(e.month for e in errors)
    if len(months) > 2 and months == months_between(months[0], months[-1]):
        shown = f"{months[0]} to {months[-1]}"
    else:
        shown = ", ".join(months[:6]) + (", ..." if len(months) > 6 else "")
    first = errors[0]
    return (
        f"{first.source}: no {first.what} {len(months)} configured month(s), {shown}"
        f"{first.advice()}"
    )


def data_months(stamps: pd.Series) -> tuple[str, str] | None:
    """First and last month (YYYY-MM) of some timestamps; None when there are none."""
    stamps = stamps.dropna()
    return (f"{stamps.min():%Y-%m}", f"{stamps.max():%Y-%m}") if len(stamps) else None


def months_with_files(template: Path) -> tuple[str, str] | None:
    """First and last month that a per-month template has a file for."""
    pattern = str(template).replace("{month}", "[0-9][0-9][0-9][0-9]-[0-9][0-9]")
    shape = re.compile(re.escape(str(template)).replace(r"\{month\}", r"(\d{4}-\d{2})"))
    months = sorted(m.group(1) for f in glob.glob(pattern) if (m := shape.fullmatch(f)))
    return (months[0], months[-1]) if months else None


def month_file(template: Path, month: str) -> Path:
    """The file holding ``month``: the template with ``{month}`` filled in, or the one file."""
    return Path(str(template).replace("{month}", month))


def is_per_month(template: Path) -> bool:
    return "{month}" in str(template)


def parse_events(table: Table, source: EventsSource) -> pd.DataFrame:
    """Parse a raw table into the events contract, refusing values that cannot be read."""
    columns = {k: v for k, v in source.columns.model_dump().items() if v is not None}
    require_columns(table, columns, "sources.events.columns")
    conversion, touch = _conversions_and_touches(table, source)
    frame = pd.DataFrame(
        {
            "customer_id": parse_labels(table, columns["customer_id"], refuse_null_text=True),
            "timestamp": parse_timestamps(table, columns["timestamp"]),
            "touchpoint": parse_labels(table, columns["touchpoint"], refuse_null_text=True),
            "conversion": conversion,
            "value": parse_numbers(table, columns["value"], blank_as_zero=True, non_negative=True),
            "touch": touch,
        }
    )
    frame["line"] = table.lines.astype(np.int32)
    frame["source_file"] = pd.Categorical([table.path.name] * len(frame))
    return frame


def _conversions_and_touches(table: Table, source: EventsSource) -> tuple[pd.Series, pd.Series]:
    """The 0/1 conversion and touch flags of each row.

    Without an event-type column every row touches its touchpoint. With one, a row of a
    conversion type is never a touch (a purchase logged under 'search' is not a search ad
    seen), and with ``touch_types`` only rows of those types are; ``columns.conversion``
    unmapped, conversions are the rows of a conversion type.
    """
    columns = source.columns
    if columns.event_type is None:
        return parse_binary(table, columns.conversion), pd.Series(np.int8(1), table.frame.index)
    kind = parse_labels(table, columns.event_type)
    converts = kind.isin(source.conversion_types).to_numpy()
    touches = ~converts
    if source.touch_types:
        touches &= kind.isin(source.touch_types).to_numpy()
    if columns.conversion is not None:
        conversion = parse_binary(table, columns.conversion)
    else:
        conversion = pd.Series(converts.astype(np.int8), table.frame.index)
    return conversion, pd.Series(touches.astype(np.int8), table.frame.index)


def read_month_events(template: Path, source: EventsSource, month: str) -> pd.DataFrame:
    """Events of one calendar month, from a per-month file or filtered from a single file.

    A per-month file is taken whole (rows dated in another month are kept, for the
    ``timestamps_in_month`` check to report); a single file is filtered to the month.
    """
    path = month_file(template, month)
    if is_per_month(template) and not path.is_file():
        raise MonthWithoutData(path, month, "event file for", months_with_files(template), template)
    events = parse_events(read_table(path), source)
    if not is_per_month(template):
        stamps = events["timestamp"]
        events = events.loc[~in_month_mask(stamps, month)]
        if events.empty:
            raise MonthWithoutData(path, month, "events dated in", data_months(stamps), template)
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
