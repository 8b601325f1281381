"""Inspect a stranger's data files and propose a project config (``conversionflow init``).

A new user has a file and the README. This module reads the file(s) with the ingest reader,
recognises the route (a weekly panel, or an event log with a spend feed), and guesses the
column mapping from names and values. Every guess carries its evidence and whatever could not
be decided becomes a note, so the user can check the proposal line by line instead of trusting
it blindly; ``conversionflow validate`` then judges the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from conversionflow_dagster.core.config import PERIODICALLY, WEEKDAYS, OptimisationSection
from conversionflow_dagster.core.errors import InputDataError
from conversionflow_dagster.core.ingest.panel import complete_weeks, week_floor
from conversionflow_dagster.core.ingest.periods import period_bounds
from conversionflow_dagster.core.ingest.tables import (
    ISO_WEEK,
    MONTH_NAMES,
    iso_week_dates,
    read_table,
)
from conversionflow_dagster.core.months import shift_month

# The default planning horizon: what the data spent over it is the budget stage 2 defaults to.
HORIZON_WEEKS: int = OptimisationSection.model_fields["horizon_weeks"].default
MONTH_STEM = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")  # per-month files: YYYY-MM.csv
ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")  # an ISO 8601 date with a day
# Dates written otherwise: 20/01/2024, 1.20.24, 2024/01/20, 20240120 (analytics exports),
# 20-Jan-2024, 20 January 2024, Jan 20, 2024 (English month names).
OTHER_DATE = re.compile(
    r"^(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}[/.]\d{1,2}[/.]\d{1,2}|\d{8}(?:\.0)?$"
    r"|\d{1,2}[- ][A-Za-z]{3,9}\.?[- ]\d{2,4}|[A-Za-z]{3,9}\.? \d{1,2},? \d{4})"
)
# Date forms init reads besides ISO 8601 (proposed as date_format when one fits).
OTHER_DATE_FORMATS = ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%m-%d-%Y",
                      "%d/%m/%y", "%m/%d/%y", "%d.%m.%y", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d",
                      "%d-%b-%Y", "%d-%b-%y", "%d %b %Y", "%d %B %Y", "%d-%B-%Y", "%b %d, %Y",
                      "%B %d, %Y", "%b %d %Y", "%B %d %Y")  # fmt: skip
# Why a continuous target gets Student-t noise rather than Normal.
ROBUST_NOISE = "Student-t noise, so a few weeks far off the model do not drag it"
MAX_LEVELS = 12  # a text column with at most this many values can be a categorical control

# Words in column names (lower-cased tokens) that carry the evidence.
MONEY = {"spend", "spends", "spent", "spending", "cost", "costs", "investment", "investments",
         "invest", "budget", "expenditure", "expense", "expenses", "outlay"}  # fmt: skip
TOUCH = {"impressions", "impression", "imps", "impr", "clicks", "click", "grps", "grp",
         "trps", "trp", "views", "reach", "exposures", "exposure", "touches", "sessions",
         "visits"}  # fmt: skip
CHANNEL_WORDS = {"tv", "television", "radio", "ooh", "dooh", "outdoor", "print", "press",
                 "search", "sem", "ppc", "social", "facebook", "fb", "meta", "instagram",
                 "tiktok", "youtube", "display", "video", "olv", "ctv", "affiliate", "affiliates",
                 "email", "podcast", "programmatic", "google", "bing", "linkedin", "twitter",
                 "snapchat", "pinterest", "cinema", "banner", "native", "newspaper",
                 "newspapers", "magazine", "magazines", "billboard", "billboards", "mail",
                 "directmail", "catalog", "catalogue", "sms", "ott", "cable", "audio", "spotify",
                 "amazon", "influencer", "influencers", "sponsorship", "shopping", "pmax",
                 "retargeting", "dv360", "reddit"}  # fmt: skip
COUNT_TARGET = {"conversions", "conversion", "orders", "leads", "signups", "units",
                "transactions", "purchases", "acquisitions", "installs", "bookings",
                "subscriptions", "registrations"}  # fmt: skip
MONEY_TARGET = {"revenue", "revenues", "turnover", "gmv", "income"}
OPEN_TARGET = {"sales", "kpi", "y", "target", "outcome"}  # money or counts: the values decide
RATIO = {"per", "rate", "ratio", "avg", "average", "mean", "share", "pct", "percent", "cpa",
         "cpc", "cpm", "roas", "aov"}  # fmt: skip
NOT_OURS = {"competitor", "competitors", "competition", "industry", "category", "market"}
CALENDAR = {"t", "trend", "dayofyear", "doy", "weekofyear", "woy", "index", "idx", "quarter",
            "month", "year", "week", "weeknumber"}  # fmt: skip
GENERIC = {"media", "paid", "total", "weekly", "daily", "amount", "usd", "eur", "gbp"}
# Spend column names that give the money in thousands or millions: 'Search (k$)', 'TV k€',
# 'Print (000s)', 'Radio, thousands', 'OOH ($m)'; proposed as sources.<role>.spend_unit.
_ALONE = r"(?<![0-9A-Za-z])({})(?![0-9A-Za-z])"
_THOUSANDS = r"[$€£]?k[$€£]?|k(?:eur|usd|gbp)|(?:eur|usd|gbp)k|thousands?|'?000s?"
_MILLIONS = r"[$€£]m|m[$€£]|mn|mm|millions?|m(?:eur|usd|gbp)"
SPEND_UNITS = (
    (1_000, re.compile(_ALONE.format(_THOUSANDS))),
    (1_000_000, re.compile(_ALONE.format(_MILLIONS))),
)
_UNIT_NAMES = {1: "units", 1_000: "thousands", 1_000_000: "millions"}
UNIT_WORDS = {"k", "m", "000", "000s", "thousand", "thousands", "mn", "mm", "million", "millions"}
UNIT_WORDS |= {f"{scale}{money}" for scale in "km" for money in ("eur", "usd", "gbp")}
DATE_WORDS = ("date", "week", "ds", "time", "day", "period", "timestamp", "datetime")
ID_WORDS = {"customer", "cust", "user", "client", "visitor", "person", "member", "account",
            "cookie", "device", "contact", "id", "uid", "cid"}  # fmt: skip
TOUCHPOINT_WORDS = ("touchpoint", "touch", "channel", "source", "medium", "campaign", "utm",
                    "interaction", "event", "type", "action", "activity")  # fmt: skip
FLAG_WORDS = ("conversion", "converted", "convert", "conversions", "purchase", "purchased",
              "order", "ordered", "sale", "goal", "success", "is", "flag")  # fmt: skip
VALUE_WORDS = ("value", "revenue", "amount", "gmv", "sales", "price", "basket", "total")
LONG_CHANNEL_WORDS = {"channel", "media", "medium", "platform", "source", "touchpoint", "vendor"}
MARKET_WORDS = {"geo", "market", "region", "country", "dma", "state", "territory", "area",
                "city", "store", "location"}  # fmt: skip
ORGANIC = {"organic", "direct", "seo", "referral", "unpaid", "natural", "free"}
ROBYN_SUFFIX = {"_S": "spend", "_I": "touches", "_P": "touches", "_B": "baseline"}
YEAR_WORDS = {"year", "yr", "yyyy"}
MONTH_WORDS = {"month", "mon", "mth", "mm"}
# Median days between a coarse table's rows -> the period each row covers (weekly rows: none).
PERIODS = {"month": (27, 32), "quarter": (88, 93), "year": (364, 367)}
# Event-type values (their words, or the words run together: 'sign_up' -> 'signup').
CONVERSION_VALUES = {"purchase", "purchased", "purchases", "conversion", "converted", "convert",
                     "order", "ordered", "orders", "sale", "sold", "lead", "leads", "signup",
                     "signups", "registration", "registered", "subscribe", "subscribed",
                     "subscription", "transaction", "booking", "booked", "install",
                     "acquisition"}  # fmt: skip
TOUCH_VALUES = {"click", "clicks", "clicked", "view", "views", "viewed", "pageview", "visit",
                "visits", "impression", "impressions", "open", "opened", "opens", "touch",
                "touches", "session", "sessions", "engagement", "engaged", "page", "cart",
                "sent", "delivered", "watch", "watched", "scroll"}  # fmt: skip
TYPE_WORDS = {"type", "event", "interaction", "action", "activity", "kind"}
MAX_EVENT_TYPES = 30  # more distinct values than this: not a list of interaction types

NEITHER = (
    "expected a weekly panel (one row per week: a date column with dates 7 days apart, spend "
    "per channel and a target such as conversions, sales or revenue) or an event log (many rows "
    "per day: a customer id, a timestamp, a touchpoint, a 0/1 conversion and a value)"
)

Route = Literal["panel", "events"]


@dataclass(frozen=True)
class Guess:
    """One decision: the config key it fills, what was chosen, and why."""

    key: str
    value: str
    evidence: str


@dataclass(frozen=True)
class ChannelGuess:
    name: str
    spend_column: str | None = None  # panel route, wide spend file
    touches_column: str | None = None  # panel route
    touchpoints: tuple[str, ...] = ()  # events route


@dataclass(frozen=True)
class ControlGuess:
    name: str
    column: str
    categorical: bool = False
    baseline: str | None = None


@dataclass(frozen=True)
class Inference:
    """What ``init`` proposes: the route, the mapping and the month range, with the evidence."""

    route: Route
    paths: dict[str, Path]  # role (panel, events, spend, controls) -> file or {month} template
    columns: dict[str, dict[str, str | None]]  # role -> contract field -> column in the file
    channels: tuple[ChannelGuess, ...]
    controls: tuple[ControlGuess, ...]
    target: str  # model.target
    likelihood: str
    months: tuple[str, str]
    week_start: str = "monday"
    spend_layout: str | None = None  # events route: long or wide
    markets: tuple[str, ...] = ()
    recent_spend: float | None = None  # all channels (and markets), last HORIZON_WEEKS
    conversion_types: tuple[str, ...] = ()  # events route: event types that are conversions
    periods: dict[str, str] = field(default_factory=dict)  # role -> period a row covers
    date_formats: dict[str, str] = field(default_factory=dict)  # role -> non-ISO date form
    spend_units: dict[str, float] = field(default_factory=dict)  # role -> money per spend number
    # column -> the currency sign its values were written with ("$1,234.56" -> "$")
    currency_signs: dict[str, str] = field(default_factory=dict)
    # config section -> why its blank_as_zero is proposed (written commented out: the user's call)
    blank_as_zero: dict[str, str] = field(default_factory=dict)
    guesses: tuple[Guess, ...] = ()
    notes: tuple[str, ...] = ()  # what could not be decided, or needs the user's eye

    def evidence(self) -> dict[str, str]:
        """Config key -> why it was chosen (the YAML comments)."""
        return {g.key: g.evidence for g in self.guesses}


# ---------------------------------------------------------------------------------------------
# Reading and profiling


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str  # "date", "number" or "text"
    values: pd.Series  # datetime64 / float / string, NA where blank
    blanks: int
    levels: int  # distinct non-blank values
    tokens: tuple[str, ...]
    currency: str | None = None  # the sign its values were written with ("$1,234")


@dataclass(frozen=True)
class _Source:
    """One input: a file, or a set of per-month files read as one table."""

    template: Path  # the file, or the folder's {month} template
    columns: dict[str, _Column]


def tokens(name: str) -> tuple[str, ...]:
    """Lower-case words of a column name: 'TotalSales' and 'total_sales' both give
    ('total', 'sales'); a Robyn-style one-letter suffix ('tv_S') is its own token."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name.strip())
    return tuple(t for t in re.split(r"[^0-9a-z]+", spaced.lower()) if t)


def _suffix(name: str) -> str | None:
    """What a Robyn-style suffix says the column is (case-sensitive: 'tv_S' but not 'tv_s')."""
    return ROBYN_SUFFIX.get(name.strip()[-2:])


def _read(files: list[Path]) -> tuple[pd.DataFrame, dict[str, str]]:
    """The files as one table, and the columns whose money values carry one currency sign in
    every file that carries one."""
    tables = [read_table(path) for path in files]
    signs: dict[str, set[str]] = {}
    for table in tables:
        for column, sign in table.currency_signs.items():
            signs.setdefault(column, set()).add(sign)
    frames = [t.frame for t in tables]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame, {c: found.pop() for c, found in signs.items() if len(found) == 1}


def _profile(frame: pd.DataFrame, signs: Mapping[str, str]) -> dict[str, _Column]:
    out = {}
    for name in frame.columns:
        raw = frame[name]
        if pd.api.types.is_datetime64_any_dtype(raw):
            kind, values = "date", _naive(raw)
        elif pd.api.types.is_bool_dtype(raw) or pd.api.types.is_numeric_dtype(raw):
            kind, values = "number", raw.astype(float)
        else:
            text = raw.astype("string").str.strip()
            text = text.mask(text == "")
            kind, values = _parse_text(text)
        blanks = int(values.isna().sum())
        levels = int(values.nunique(dropna=True))
        out[str(name)] = _Column(
            str(name), kind, values, blanks, levels, tokens(str(name)), signs.get(str(name))
        )
    return out


def _naive(stamps: pd.Series) -> pd.Series:
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype("datetime64[ns]")


def _parse_text(text: pd.Series) -> tuple[str, pd.Series]:
    filled = text.dropna()
    if filled.empty:
        return "text", text
    numbers = pd.to_numeric(filled, errors="coerce")
    if numbers.notna().all():
        return "number", pd.to_numeric(text, errors="coerce").astype(float)
    if filled.str.match(ISO_DAY).all():  # the pipeline reads ISO 8601 only, with a day
        stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        if stamps[text.notna()].notna().all():
            return "date", _naive(stamps)
    if re.fullmatch(ISO_WEEK, filled.iloc[0].strip()):  # ISO 8601 week dates: 2024-W03
        weeks = iso_week_dates(text)
        if weeks[text.notna()].notna().all():
            return "date", weeks
    return "text", text


def _has(column: _Column, words: set[str] | Sequence[str]) -> bool:
    return any(t in words for t in column.tokens)


def _snake(words: Sequence[str]) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", "_".join(words)).strip("_")


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when another key already has it (any case)."""
    unique, n = name, 2
    while unique.lower() in taken:
        unique, n = f"{name}_{n}", n + 1
    taken.add(unique.lower())
    return unique


# ---------------------------------------------------------------------------------------------
# Recognising what a file is


@dataclass(frozen=True)
class _Shape:
    date: str  # the column that dates a row (the year column when a year and month do)
    dated_by: dict[str, str]  # config field (date, or year and month) -> column
    period: str | None  # what a row covers: day, month, quarter or year; None for weeks
    days: pd.Series  # dates at midnight
    has_time: bool
    rows_per_day: float
    spacing: float  # median days between distinct dates
    market: str | None  # a column with one row per market and date
    one_row_per_date: bool  # (per market with a market column)
    date_format: str | None = None  # strftime codes of a date column that is not ISO 8601


def _dating(source: _Source) -> tuple[dict[str, str], pd.Series, str | None]:
    """The columns that date each row (an ISO date column, else one of dates in another
    numeric form such as 20/01/2024, else a year and a month column), the dates they give
    and, for the other form, its strftime codes."""
    dates = [c for c in source.columns.values() if c.kind == "date" and c.blanks == 0]

    def rank(column: _Column) -> int:
        named = [i for i, word in enumerate(DATE_WORDS) if word in column.tokens]
        return named[0] if named else len(DATE_WORDS)

    if dates:
        date = min(dates, key=rank)
        return {"date": date.name}, date.values, None
    for column in sorted(source.columns.values(), key=rank):
        found = _other_date_format(source, column)
        if found is not None:
            return {"date": column.name}, *found
    year = next((c for c in source.columns.values() if _is_year(c)), None)
    if year is None:
        raise InputDataError(source.template, _no_date_problem(source))
    month = next((c for c in source.columns.values() if _month_numbers(c) is not None), None)
    months = 1 if month is None else _month_numbers(month)
    stamps = pd.to_datetime(pd.DataFrame({"year": year.values, "month": months, "day": 1}))
    dated_by = {"year": year.name} | ({"month": month.name} if month is not None else {})
    return dated_by, stamps, None


def _other_date_format(source: _Source, column: _Column) -> tuple[pd.Series, str] | None:
    """(dates, format) when every value of ``column`` is a date in exactly one of
    :data:`OTHER_DATE_FORMATS`; None when it holds no such dates. Day-first and month-first
    both reading every value (no day above 12) is refused: the file must say which."""
    values = column.values
    if column.kind == "number" and not column.blanks:
        if not ((values % 1 == 0) & values.between(1e7, 1e8 - 1)).all():
            return None
        values = values.astype("int64").astype("string")  # 20240120, read as a number
    elif column.kind != "text":
        return None
    if column.blanks or not values.str.match(OTHER_DATE).all():
        return None
    text = values.str.strip()
    fits: dict[str, pd.Series] = {}
    for form in OTHER_DATE_FORMATS:
        parsed = pd.to_datetime(text, format=form, errors="coerce")
        if parsed.notna().all() and not any(parsed.equals(f) for f in fits.values()):
            fits[form] = parsed  # forms that read the same dates ('May' %b, %B) count once
    if len(fits) > 1:
        raise InputDataError(
            source.template,
            f"column {column.name!r} holds dates like {values.iloc[0]!r} that read as "
            f"{' or '.join(fits)} alike (no day above 12): set sources.<panel or "
            "spend>.date_format in the config to the one they are",
        )
    return next(((dates, form) for form, dates in fits.items()), None)


def _is_year(column: _Column) -> bool:
    values = column.values
    return (
        column.kind == "number"
        and column.blanks == 0
        and _has(column, YEAR_WORDS)
        and bool(((values % 1 == 0) & values.between(1900, 2100)).all())
    )


def _month_numbers(column: _Column) -> pd.Series | None:
    """A month column's months as numbers 1-12 (numbers or English names), else None."""
    if column.blanks or not _has(column, MONTH_WORDS):
        return None
    values = column.values
    if column.kind == "text":
        values = values.str.lower().map(MONTH_NAMES)
    elif column.kind != "number":
        return None
    return values.astype(int) if values.isin(range(1, 13)).all() else None


def _no_date_problem(source: _Source) -> str:
    columns = list(source.columns)
    hint = ""
    for column in source.columns.values():
        sample = column.values.dropna()
        if column.kind == "text" and len(sample) and sample.str.match(OTHER_DATE).all():
            hint = (
                f"; column {column.name!r} holds dates like {sample.iloc[0]!r}, which no one "
                "date form init knows reads in full: convert that column to ISO 8601 dates "
                "(2024-01-20), or set sources.<panel or spend>.date_format to its strftime codes"
            )
            break
    return (
        f"no column of ISO 8601 dates (like 2024-01-20) among {columns}{hint}; expected a date "
        "column (weekly panel, spend), a year and a month column, or a timestamp (event log)"
    )


def _shape(source: _Source) -> _Shape:
    dated_by, stamps, date_format = _dating(source)
    days = stamps.dt.normalize()
    distinct = np.sort(days.unique())
    steps = np.diff(distinct).astype("timedelta64[D]").astype(int)
    spacing = float(np.median(steps)) if len(steps) else 0.0
    market = _market_column(source, days)
    keys = pd.DataFrame({"d": days, "m": source.columns[market].values if market else ""})
    if "year" in dated_by:
        period = "month" if "month" in dated_by else "year"
    else:
        period = next((p for p, (lo, hi) in PERIODS.items() if lo <= spacing <= hi), None)
    has_time, one_row_per_date = bool((stamps != days).any()), not keys.duplicated().any()
    if period is None and spacing == 1 and one_row_per_date and not has_time:
        period = "day"  # a daily table: its days are summed by week
    return _Shape(
        date=next(iter(dated_by.values())),
        dated_by=dated_by,
        period=period,
        days=days,
        has_time=has_time,
        rows_per_day=len(days) / max(len(distinct), 1),
        spacing=spacing,
        market=market,
        one_row_per_date=one_row_per_date,
        date_format=date_format,
    )


def _market_column(source: _Source, days: pd.Series) -> str | None:
    """A text column in which every date has one row per value (a long, per-market panel)."""
    if not days.duplicated().any():
        return None
    candidates = []
    for column in source.columns.values():
        if column.kind != "text" or column.blanks or not 1 < column.levels <= len(days) // 2:
            continue
        keys = pd.DataFrame({"d": days, "m": column.values})
        per_date = keys.groupby("d")["m"].nunique()
        if not keys.duplicated().any() and (per_date == column.levels).all():
            candidates.append(column)
    candidates.sort(key=lambda c: not _has(c, MARKET_WORDS))
    return candidates[0].name if candidates else None


def _id_column(source: _Source, shape: _Shape) -> _Column | None:
    ids = [
        c
        for c in source.columns.values()
        if c.kind in ("text", "number") and _has(c, ID_WORDS) and 1 < c.levels < len(shape.days)
    ]
    ids.sort(key=lambda c: "id" not in c.tokens)
    return ids[0] if ids else None


def _long_spend_columns(source: _Source, shape: _Shape) -> tuple[str, str] | None:
    """(channel column, spend column) of a long spend file: a date and channel per row."""
    labels = [
        c
        for c in source.columns.values()
        if c.kind == "text" and _has(c, LONG_CHANNEL_WORDS) and 1 < c.levels <= 200
    ]
    money = [c for c in source.columns.values() if c.kind == "number" and _has(c, MONEY)]
    if not labels or not money or shape.rows_per_day < 1.5:
        return None
    keys = pd.DataFrame({"d": shape.days, "c": labels[0].values})
    return None if keys.duplicated().any() else (labels[0].name, money[0].name)


def _kind(source: _Source, shape: _Shape) -> str:
    """'events', 'panel', 'spend' or 'controls' (a weekly table with neither)."""
    if _long_spend_columns(source, shape):
        return "spend"
    timed = "date" in shape.dated_by and (shape.has_time or shape.rows_per_day > 1.5)
    if timed and _id_column(source, shape) is not None:
        return "events"
    if not shape.one_row_per_date:
        raise InputDataError(
            source.template,
            f"several rows share a date in {shape.date!r} (about {shape.rows_per_day:.1f} per "
            "day) but no customer id column was found; " + NEITHER,
        )
    numbers = _numbers(source, shape)
    roles = {_number_role(c) for c in numbers}
    weekly = 6 <= shape.spacing <= 8
    if (weekly or shape.period) and "target" in roles:
        return "panel"
    if "target" in roles:
        raise InputDataError(
            source.template,
            f"one row per date, but the dates in {shape.date!r} are {shape.spacing:g} day(s) "
            "apart; conversionflow models weekly data: give one row per day, week, month, "
            "quarter or year (daily rows are summed by week, coarser ones spread over their "
            "days), or the event log they came from",
        )
    if "spend" in roles:
        return "spend"
    if weekly and numbers:
        return "controls"
    raise InputDataError(source.template, f"found no target, spend or event columns; {NEITHER}")


def _numbers(source: _Source, shape: _Shape) -> list[_Column]:
    skip = {*shape.dated_by.values(), shape.market}
    return [c for c in source.columns.values() if c.kind == "number" and c.name not in skip]


def _number_role(column: _Column) -> str:
    """What a numeric column of a weekly table is, from its name and values."""
    suffix = _suffix(column.name)
    if _has(column, MONEY) or suffix == "spend":
        return "spend"
    if _has(column, TOUCH) or suffix == "touches":
        return "touches"
    targety = _has(column, COUNT_TARGET | MONEY_TARGET | OPEN_TARGET)
    if targety and _has(column, RATIO):
        return "ratio"
    if targety and not _has(column, NOT_OURS) and suffix != "baseline":
        return "target"
    if set(column.tokens) <= CALENDAR:
        return "calendar"
    if column.levels <= 1:
        return "constant"
    if _has(column, CHANNEL_WORDS | {"media"}) and not _has(column, NOT_OURS):
        return "spend"
    return "control"


# ---------------------------------------------------------------------------------------------
# The entry point


def inspect_files(paths: Sequence[str | Path]) -> Inference:
    """Recognise the route of ``paths`` and propose the mapping, month range and notes.

    Raises :class:`InputDataError` naming the file when it is unreadable or fits no route.
    """
    sources = [_load(group) for group in _group([Path(p) for p in paths])]
    kinds = []
    for source in sources:
        shape = _shape(source)
        kinds.append((_kind(source, shape), source, shape))
    by_kind: dict[str, list] = {}
    for kind, source, shape in kinds:
        by_kind.setdefault(kind, []).append((source, shape))
    if "panel" in by_kind:
        panel = by_kind["panel"][0]
        if len(sources) > 1:
            kind, extra = next((k, s) for k, s, _ in kinds if s is not panel[0])
            what = f"this looks like a {kind} file, given with the weekly panel {panel[0].template}"
            raise InputDataError(
                extra.template,
                f"{what}; a weekly panel is read from one file, with each channel's weekly "
                "spend in a column of its own: join the spend into the panel file (one row per "
                "week), or give an event log with this spend file",
            )
        return _panel(*panel)
    if "events" in by_kind:
        return _events(by_kind)
    source = sources[0]
    kind = kinds[0][0]
    raise InputDataError(
        source.template,
        f"this looks like a {kind} file (no target and no customer id); {NEITHER}",
    )


def _group(paths: list[Path]) -> list[list[Path]]:
    """Per-month files (YYYY-MM.csv) in one folder form one input; every other file its own."""
    groups: dict[tuple, list[Path]] = {}
    for path in paths:
        key = (path.parent, path.suffix.lower()) if MONTH_STEM.match(path.stem) else (path,)
        groups.setdefault(key, []).append(path)
    return [sorted(files) for files in groups.values()]


def _load(files: list[Path]) -> _Source:
    first = files[0]
    monthly = MONTH_STEM.match(first.stem) is not None
    template = first.parent / f"{{month}}{first.suffix}" if monthly else first
    return _Source(template, _profile(*_read(files)))


def _month(stamp: pd.Timestamp) -> str:
    return f"{stamp.year:04d}-{stamp.month:02d}"


def _weekday(days: pd.Series) -> str | None:
    """The weekday every date falls on, or None if they differ."""
    weekdays = days.dt.day_of_week.unique()
    return WEEKDAYS[int(weekdays[0])] if len(weekdays) == 1 else None


def _recent_spend(shape: _Shape, spend: pd.DataFrame) -> float:
    """Spend over the last HORIZON_WEEKS of data: the budget the allocation defaults to.

    Coarse rows count as the pipeline spreads them: evenly over their period's days, of which
    the last HORIZON_WEEKS complete (Monday) weeks take their share.
    """
    days = shape.days
    if shape.period is None:
        recent = (days > days.max() - pd.Timedelta(weeks=HORIZON_WEEKS)).to_numpy()
        return float(np.nansum(spend.loc[recent].to_numpy(dtype=float)))
    start, end = period_bounds(days, shape.period)
    last = week_floor(pd.Series([end.max()]), WEEKDAYS.index("monday"))[0]
    first = last - pd.Timedelta(weeks=HORIZON_WEEKS)
    inside = (end.clip(upper=last) - start.clip(lower=first)).clip(lower=pd.Timedelta(0))
    share = (inside / (end - start)).to_numpy()
    return float(np.nansum(spend.to_numpy(dtype=float) * share[:, None]))


# ---------------------------------------------------------------------------------------------
# Route 2: a weekly panel


def _dating_guesses(shape: _Shape, section: str, guesses: list[Guess]) -> None:
    """What dates a row and, for coarse rows, the period each covers."""
    first, last = shape.days.min(), shape.days.max()
    if "year" in shape.dated_by:
        years = f"four-digit years {first.year}..{last.year}"
        guesses.append(Guess(f"{section}.columns.year", shape.dated_by["year"], years))
        if "month" in shape.dated_by:
            months = "month numbers or names, with the year"
            guesses.append(Guess(f"{section}.columns.month", shape.dated_by["month"], months))
        why = f"dated by a year{' and a month' if 'month' in shape.dated_by else ''} column"
    else:
        every = {1: "daily", 7: "weekly"}.get(round(shape.spacing), f"{shape.spacing:g}-day")
        every = PERIODICALLY[shape.period] if shape.period else every
        form = "ISO dates"
        if shape.date_format is not None:
            form = f"dates like {pd.Timestamp('2024-01-20').strftime(shape.date_format)}"
        span = f"{form}, {every} rows, {first.date()}..{last.date()}"
        guesses.append(Guess(f"{section}.columns.date", shape.date, span))
        if shape.date_format is not None:
            why = "the only date form that reads every value"
            guesses.append(Guess(f"{section}.date_format", shape.date_format, why))
        why = (
            "dates a day apart"
            if shape.period == "day"
            else f"dates about {shape.spacing:g} days apart"
        )
    if shape.period:
        guesses.append(
            Guess(
                f"{section}.period",
                shape.period,
                f"{why}: each row covers a {shape.period}, {_to_weeks(shape.period)}",
            )
        )


def _to_weeks(period: str) -> str:
    """How rows of ``period`` become weeks, in the words of the config's comments."""
    return "summed by week" if period == "day" else "spread evenly over its days"


def _coverage(shape: _Shape) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day the rows cover: a coarse row its period, any other the week from
    its date."""
    first, last = shape.days.min(), shape.days.max()
    if shape.period is None:
        return first, last + pd.Timedelta(days=6)
    start, end = period_bounds(pd.Series([first, last]), shape.period)
    return start[0], end[1] - pd.Timedelta(days=1)


def _panel(source: _Source, shape: _Shape) -> Inference:
    guesses: list[Guess] = []
    notes: list[str] = []
    _dating_guesses(shape, "sources.panel", guesses)
    week_start = _weekday(shape.days)
    if shape.period:
        week_start = "monday"
        why = f"rows {_to_weeks(shape.period)}; weeks start on Monday, the default"
        guesses.append(Guess("project.week_start", week_start, why))
    elif week_start is None:
        week_start = "monday"
        notes.append(
            f"the dates in {shape.date!r} fall on different weekdays; weeks are taken to start "
            "on Monday: check that no two rows fall in one week"
        )
    else:
        guesses.append(Guess("project.week_start", week_start, f"every date is a {week_start}"))
    markets: tuple[str, ...] = ()
    if shape.market:
        markets = tuple(sorted(source.columns[shape.market].values.dropna().unique(), key=_natural))
        guesses.append(
            Guess(
                "sources.panel.columns.market",
                shape.market,
                f"text with one row per date for each of its {len(markets)} values",
            )
        )
    columns = dict(shape.dated_by)
    roles: dict[str, list[_Column]] = {}
    for column in _numbers(source, shape):
        role = _number_role(column)
        if role == "control" and shape.market and _constant_per_market(source, shape, column):
            role = "constant"
        roles.setdefault(role, []).append(column)
    target, likelihood = _panel_target(roles.get("target", []), columns, guesses, notes)
    if shape.market:
        columns["market"] = shape.market
    channels = _panel_channels(roles.get("spend", []), roles.get("touches", []), guesses, notes)
    controls = _controls(
        roles.get("control", []) + _categoricals(source, shape, columns.values()), guesses
    )
    for role, why in (
        ("ratio", "a ratio of the target, not a driver of it"),
        ("calendar", "a calendar index: the model has its own trend and seasonality"),
        ("constant", "the same value in every row (of a market): the baseline covers it"),
    ):
        for column in roles.get(role, []):
            notes.append(f"column {column.name!r} is left out: {why}")
    spend_and_touches = [c for ch in channels for c in (ch.spend_column, ch.touches_column) if c]
    blanks: dict[str, str] = {}
    _note_blanks(source, [*columns.values(), *spend_and_touches], "sources.panel", notes, blanks)
    numeric_controls = [c.column for c in controls if not c.categorical]
    _note_blanks(source, numeric_controls, "controls", notes, blanks)
    spend_columns = [c.spend_column for c in channels]
    revenue = columns.get("revenue") if target == "revenue" else None
    unit = _spend_unit(spend_columns, revenue, "sources.panel", guesses, notes)
    spend = pd.DataFrame({c: source.columns[c].values for c in spend_columns}) * unit
    covered = _coverage(shape)
    return Inference(
        route="panel",
        paths={"panel": source.template},
        columns={"panel": columns},
        channels=channels,
        controls=controls,
        target=target,
        likelihood=likelihood,
        months=(_month(covered[0]), _month(covered[1])),
        week_start=week_start,
        markets=markets,
        recent_spend=_recent_spend(shape, spend) if spend_columns else None,
        periods={"panel": shape.period} if shape.period else {},
        date_formats={"panel": shape.date_format} if shape.date_format else {},
        spend_units={"panel": unit} if unit != 1 else {},
        currency_signs=_currency_signs(source),
        blank_as_zero=blanks,
        guesses=tuple(guesses),
        notes=tuple(notes),
    )


def _money_unit(name: str) -> int:
    """The money one number of column ``name`` stands for, as its name says (1, 1e3 or 1e6)."""
    return next((unit for unit, named in SPEND_UNITS if named.search(name.lower())), 1)


def _currency_signs(source: _Source) -> dict[str, str]:
    """Columns whose values were written with a currency sign, and the sign."""
    return {name: c.currency for name, c in source.columns.items() if c.currency}


def _spend_unit(
    columns: list[str],
    revenue: str | None,
    section: str,
    guesses: list[Guess],
    notes: list[str],
) -> float:
    """What one spend number is in the money the target is counted in, when every spend
    column's name says the same (thousands or millions), and the revenue column's name (when
    the target is revenue) says its own; 1 otherwise, with a note when only some names say so.
    """
    units = [_money_unit(c) for c in columns]
    revenue_unit = _money_unit(revenue) if revenue else 1
    if not columns or set(units) == {revenue_unit}:
        if revenue_unit != 1:
            notes.append(
                f"spend and revenue are both named in {_UNIT_NAMES[revenue_unit]} (e.g. "
                f"{columns[0]!r}, {revenue!r}): they are read as they are, so budgets and spend "
                f"in the report are in {_UNIT_NAMES[revenue_unit]} too"
            )
        return 1
    if len(set(units)) > 1:
        notes.append(
            "the spend columns are not all in the same money: "
            + ", ".join(f"{c!r} x {u:,}" for c, u in zip(columns, units, strict=True))
            + "; convert them in the file to one (budgets and ROAS need spend in the revenue's "
            "money)"
        )
        return 1
    unit = units[0] / revenue_unit
    unit = int(unit) if unit.is_integer() else unit
    why = f"every spend column is named in {_UNIT_NAMES[units[0]]}, e.g. {columns[0]!r}"
    if revenue_unit != 1:
        why += f", and the revenue in {_UNIT_NAMES[revenue_unit]} ({revenue!r})"
    guesses.append(Guess(f"{section}.spend_unit", f"{unit:g}", why))
    return unit


def _natural(text: str) -> list:
    """Sort key that puts 'Geo2' before 'Geo10'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _constant_per_market(source: _Source, shape: _Shape, column: _Column) -> bool:
    by_market = column.values.groupby(source.columns[shape.market].values.to_numpy())
    return bool((by_market.nunique() <= 1).all())


def _panel_target(
    candidates: list[_Column], columns: dict[str, str], guesses: list[Guess], notes: list[str]
) -> tuple[str, str]:
    """Map conversions and/or revenue; fit conversions when both exist."""
    found: dict[str, tuple[_Column, str]] = {}
    for column in candidates:
        values = column.values.dropna()
        whole = bool((values == values.round()).all())
        if _has(column, COUNT_TARGET):
            field_, why = "conversions", "count-like name"
        elif _has(column, MONEY_TARGET):
            field_, why = "revenue", "revenue-like name"
        else:
            field_ = "conversions" if whole else "revenue"
            why = f"target-like name, {'whole numbers' if whole else 'fractional values'}"
        if field_ in found:
            notes.append(
                f"column {column.name!r} also looks like a target ({why}); "
                f"{found[field_][0].name!r} is used as {field_}"
            )
            continue
        found[field_] = (column, why)
        columns[field_] = column.name
        guesses.append(Guess(f"sources.panel.columns.{field_}", column.name, why))
    target = "conversions" if "conversions" in found else "revenue"
    if len(found) == 2:
        notes.append("both conversions and revenue are mapped; set model.target: revenue to fit it")
    values = found[target][0].values.dropna()
    if target == "revenue":
        likelihood, why = "student_t", "revenue is money: " + ROBUST_NOISE
    elif (values == values.round()).all():
        likelihood, why = "negbinomial", "whole-number counts, usually over-dispersed"
    else:
        likelihood, why = "student_t", "fractional conversions: " + ROBUST_NOISE
    guesses.append(Guess("model.target", target, f"column {found[target][0].name!r}"))
    guesses.append(Guess("model.likelihood", likelihood, why))
    return target, likelihood


def _stem(column: str) -> tuple[str, ...]:
    """The words of a column that name its channel ('TV_Spend' -> ('TV',))."""
    name = column.strip()
    if _suffix(name):
        name = name[:-2]
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    words = [w for w in re.split(r"[^0-9A-Za-z]+", spaced) if w]
    return tuple(w for w in words if w.lower() not in MONEY | TOUCH | GENERIC | UNIT_WORDS)


def _channel_name(column: str, taken: set[str]) -> str:
    return _unique(_snake(_stem(column)) or _snake([column]) or "channel", taken)


def _panel_channels(
    spend: list[_Column], touches: list[_Column], guesses: list[Guess], notes: list[str]
) -> tuple[ChannelGuess, ...]:
    taken: set[str] = set()
    named = [(_channel_name(c.name, taken), c) for c in spend]
    by_stem = {tuple(w.lower() for w in _stem(c.name)): name for name, c in named}
    paired: dict[str, _Column] = {}
    for column in touches:
        stem = tuple(w.lower() for w in _stem(column.name))
        channel = by_stem.get(stem)
        if channel is None:
            notes.append(
                f"column {column.name!r} looks like touches (impressions, clicks) but no spend "
                f"column shares its stem {'_'.join(stem)!r}; left out (map it as a control if "
                "it is organic media)"
            )
        elif channel in paired:
            notes.append(
                f"column {column.name!r} is a second touches column for {channel!r}; "
                f"{paired[channel].name!r} is used"
            )
        else:
            paired[channel] = column
    if not spend:
        notes.append(
            "no spend column was recognised (names with spend, cost, investment, media, budget "
            "or a channel word); add channels.<name>.spend_column by hand"
        )
    out = []
    for name, column in named:
        why = _spend_evidence(column)
        touch = paired.get(name)
        if touch is not None:
            why += f"; touches {touch.name!r} share the stem"
        guesses.append(Guess(f"channels.{name}", column.name, why))
        out.append(
            ChannelGuess(name, spend_column=column.name, touches_column=touch and touch.name)
        )
    return tuple(out)


def _spend_evidence(column: _Column) -> str:
    if _suffix(column.name) == "spend":
        return "spend-like name: Robyn's _S suffix"
    if _has(column, MONEY):
        return "spend-like name"
    return "a channel word in the name, numeric"


def _categoricals(source: _Source, shape: _Shape, used: Sequence[str]) -> list[_Column]:
    skip = {*shape.dated_by.values(), shape.market, *used}
    return [
        c
        for c in source.columns.values()
        if c.kind == "text" and c.name not in skip and 1 < c.levels <= MAX_LEVELS
    ]


def _controls(columns: list[_Column], guesses: list[Guess]) -> tuple[ControlGuess, ...]:
    out, taken = [], set()
    for column in columns:
        words = [t for t in column.tokens if t != "control"]
        if _suffix(column.name) == "baseline":
            words = words[:-1]
        name = _unique(_snake(words).lower() or "control", taken)
        if column.kind == "text":
            baseline = str(column.values.value_counts().idxmax())
            why = f"text with {column.levels} values; baseline {baseline!r}, the most frequent"
            out.append(ControlGuess(name, column.name, categorical=True, baseline=baseline))
        else:
            why = "numeric, not spend, touches or target"
            out.append(ControlGuess(name, column.name))
        guesses.append(Guess(f"controls.series.{name}", column.name, why))
    return tuple(out)


def _note_blanks(
    source: _Source, used: Sequence[str], section: str, notes: list[str], blanks: dict[str, str]
) -> None:
    """Say which numeric columns of a section have blank cells, and propose, commented out,
    the section's blank_as_zero: only the user knows whether a blank is 0 or lost data."""
    found = {n: source.columns[n].blanks for n in dict.fromkeys(used)}
    found = {n: count for n, count in found.items() if count and source.columns[n].kind == "number"}
    if not found:
        return
    cells = ", ".join(f"{name!r} ({count})" for name, count in found.items())
    notes.append(
        f"blank cells in {cells}: validate refuses them. If a blank means 0 (nothing spent "
        f"that period), uncomment {section}.blank_as_zero: true in the config; if it means a "
        "lost value, fill it in"
    )
    blanks[section] = (
        f"uncomment if a blank means 0: {cells} have blank cells, refused until then "
        "(a blank in a feed is more often a lost value than nothing spent: check first)"
    )


# ---------------------------------------------------------------------------------------------
# Route 1: an event log with a spend feed


def _events(by_kind: dict[str, list]) -> Inference:
    logs = by_kind.pop("events")
    if len(logs) > 1:
        raise InputDataError(
            logs[1][0].template,
            "a second event log; give one file, or one file per month named YYYY-MM.csv in one "
            "folder",
        )
    source, shape = logs[0]
    guesses: list[Guess] = []
    notes: list[str] = []
    blanks: dict[str, str] = {}
    event_columns, conversion_types = _event_columns(source, shape, guesses, notes)
    columns = {"events": event_columns}
    touchpoints = sorted(source.columns[event_columns["touchpoint"]].values.dropna().unique())
    paths = {"events": source.template}
    spend_shape = None
    channels: tuple[ChannelGuess, ...] = ()
    layout, recent = None, None
    spends = by_kind.pop("spend", [])
    if spends:
        spend_source, spend_shape = spends[0]
        paths["spend"] = spend_source.template
        layout, spend_columns, channels, recent = _spend_feed(
            spend_source, spend_shape, touchpoints, guesses, notes, blanks
        )
        columns["spend"] = spend_columns
    else:
        notes.append(
            "no spend file was given: every paid channel needs a spend feed (a second file: "
            "date, channel, spend) or channels.<name>.cost_per_touch"
        )
    controls: tuple[ControlGuess, ...] = ()
    extras = by_kind.pop("controls", [])
    for control_source, control_shape in extras[:1]:
        paths["controls"] = control_source.template
        columns["controls"] = {"date_column": control_shape.date}
        guesses.append(Guess("controls.date_column", control_shape.date, "ISO dates, weekly"))
        numbers = _numbers(control_source, control_shape)
        for column in (c for c in numbers if c.levels <= 1):
            notes.append(f"control {column.name!r} is left out: the same value in every row")
        controls = _controls(
            [c for c in numbers if c.levels > 1] + _categoricals(control_source, control_shape, []),
            guesses,
        )
        numeric = [c.column for c in controls if not c.categorical]
        _note_blanks(control_source, numeric, "controls", notes, blanks)
    for extra, _ in [*spends[1:], *extras[1:]]:
        notes.append(f"{extra.template}: not used (one spend file and one controls file are)")
    months = _event_months(source, shape, spend_shape, notes)
    counted = "rows of a conversion type" if event_columns["conversion"] is None else "0/1 values"
    guesses.append(Guess("model.target", "conversions", f"the {counted}, counted per week"))
    guesses.append(
        Guess("model.likelihood", "poisson", "weekly counts of conversions, as for the sample")
    )
    return Inference(
        route="events",
        paths=paths,
        columns=columns,
        channels=channels,
        controls=controls,
        target="conversions",
        likelihood="poisson",
        months=months,
        spend_layout=layout,
        recent_spend=recent,
        conversion_types=conversion_types,
        currency_signs=_currency_signs(spends[0][0]) if spends else {},
        periods={"spend": spend_shape.period} if spend_shape and spend_shape.period else {},
        date_formats=(
            {"spend": spend_shape.date_format} if spend_shape and spend_shape.date_format else {}
        ),
        blank_as_zero=blanks,
        guesses=tuple(guesses),
        notes=tuple(notes),
    )


def _pick(
    source: _Source,
    wanted: Sequence[str],
    accept,
    exclude: set[str],
) -> _Column | None:
    """The first column ``accept`` takes, preferring names with an earlier word of ``wanted``."""
    found = [c for c in source.columns.values() if c.name not in exclude and accept(c)]

    def rank(column: _Column) -> int:
        named = [i for i, word in enumerate(wanted) if word in column.tokens]
        return named[0] if named else len(wanted)

    found.sort(key=rank)
    return found[0] if found else None


def _event_columns(
    source: _Source, shape: _Shape, guesses: list[Guess], notes: list[str]
) -> tuple[dict[str, str | None], tuple[str, ...]]:
    """The events mapping, and the event types that are conversions when a column of
    interaction types says which rows are (else none)."""
    customer = _id_column(source, shape)
    used = {shape.date, customer.name}
    key = "sources.events.columns"
    guesses.append(
        Guess(
            f"{key}.customer_id",
            customer.name,
            f"id-like name, {customer.levels:,} ids over {len(shape.days):,} rows",
        )
    )
    guesses.append(
        Guess(
            f"{key}.timestamp",
            shape.date,
            f"ISO timestamps, about {shape.rows_per_day:.0f} rows per day",
        )
    )
    columns: dict[str, str | None] = {"customer_id": customer.name, "timestamp": shape.date}

    def is_flag(column: _Column) -> bool:
        values = column.values.dropna()
        if column.kind == "text":
            values = values.str.lower().map({"true": 1, "false": 0, "0": 0, "1": 1})
        return len(values) > 0 and values.notna().all() and set(values.unique()) <= {0, 1}

    flag = _pick(source, FLAG_WORDS, is_flag, used)
    if flag is not None and (_has(flag, FLAG_WORDS) or flag.kind == "number"):
        columns["conversion"] = flag.name
        used.add(flag.name)
        why = "0/1 values, conversion-like name" if _has(flag, FLAG_WORDS) else "0/1 values"
        guesses.append(Guess(f"{key}.conversion", flag.name, why))

    def is_label(column: _Column) -> bool:
        return column.kind == "text" and 1 < column.levels <= 500

    labels = [c for c in source.columns.values() if c.name not in used and is_label(c)]
    conversion_types: tuple[str, ...] = ()
    typed = _event_type(labels) if len(labels) > 1 else None  # one label: the touchpoint's
    if typed is not None:
        kind, conversion_types = typed
        columns["event_type"] = kind.name
        used.add(kind.name)
        rows = int(kind.values.isin(conversion_types).sum())
        others = sorted(set(kind.values.dropna()) - set(conversion_types))
        shown = ", ".join(others[:6]) + (", ..." if len(others) > 6 else "")
        guesses.append(
            Guess(
                f"{key}.event_type",
                kind.name,
                f"text with {kind.levels} interaction types; the touches are {shown}",
            )
        )
        guesses.append(
            Guess(
                "sources.events.conversion_types",
                ", ".join(conversion_types),
                f"conversion-like types, {rows:,} rows: conversions, never touches",
            )
        )

    touch = _pick(source, TOUCHPOINT_WORDS, is_label, used)
    if touch is None:
        raise InputDataError(
            source.template,
            "an event log needs a touchpoint column (text naming the channel or interaction of "
            "each row, e.g. 'search_touch'); none was found",
        )
    columns["touchpoint"] = touch.name
    used.add(touch.name)
    guesses.append(
        Guess(f"{key}.touchpoint", touch.name, f"text with {touch.levels} distinct touchpoints")
    )
    if "conversion" not in columns and conversion_types:
        columns["conversion"] = None
        why = f"no 0/1 column: conversions are the rows of a conversion type in {kind.name!r}"
        guesses.append(Guess(f"{key}.conversion", "null", why))
    elif "conversion" not in columns:
        columns["conversion"] = "conversion"
        notes.append(
            "no 0/1 conversion column was found: add one to the log (1 on the rows that are a "
            f"conversion, e.g. where {touch.name!r} is a purchase) and map it as "
            f"{key}.conversion"
        )

    def is_money(column: _Column) -> bool:
        return column.kind == "number" and bool((column.values.dropna() >= 0).all())

    value = _pick(source, VALUE_WORDS, is_money, used)
    if value is not None and _has(value, set(VALUE_WORDS)):
        columns["value"] = value.name
        guesses.append(
            Guess(f"{key}.value", value.name, "non-negative numbers, value-like name (blank = 0)")
        )
    else:
        columns["value"] = "value"
        notes.append(f"no conversion value column was found: add one and map it as {key}.value")
    return columns, conversion_types


def _value_words(value: str) -> set[str]:
    """The words of a value, and them run together ('sign_up' -> also 'signup')."""
    words = tokens(value)
    return {*words, "".join(words)}


def _event_type(labels: list[_Column]) -> tuple[_Column, tuple[str, ...]] | None:
    """A column of interaction types (page_view, click, purchase, ...) and its values that are
    conversions, or None.

    Most of its values must be interaction words naming no channel: a touchpoint column such
    as the sample's ('search_touch', ..., 'repeat_purchase') is not one.
    """
    best = None
    for column in labels:
        if column.levels > MAX_EVENT_TYPES:
            continue
        values = sorted(column.values.dropna().unique())
        words = {v: _value_words(v) for v in values}
        converting = tuple(v for v in values if words[v] & CONVERSION_VALUES)
        typed = [
            v
            for v in values
            if words[v] & (CONVERSION_VALUES | TOUCH_VALUES) and not words[v] & CHANNEL_WORDS
        ]
        if not converting or len(converting) == len(values) or 2 * len(typed) < len(values):
            continue
        score = (len(typed) / len(values), _has(column, TYPE_WORDS))
        if best is None or score > best[0]:
            best = (score, column, converting)
    return None if best is None else best[1:]


def _spend_feed(
    source: _Source,
    shape: _Shape,
    touchpoints: list[str],
    guesses: list[Guess],
    notes: list[str],
    blanks: dict[str, str],
) -> tuple[str, dict[str, str], tuple[ChannelGuess, ...], float]:
    """Layout, column mapping, channels (with their touchpoints) and recent spend."""
    _dating_guesses(shape, "sources.spend", guesses)
    long = _long_spend_columns(source, shape)
    if long is not None:
        channel, money = long
        guesses.append(Guess("sources.spend.layout", "long", "a date, a channel and a spend"))
        guesses.append(Guess("sources.spend.columns.channel", channel, "channel names per row"))
        guesses.append(Guess("sources.spend.columns.spend", money, "spend-like name"))
        names = sorted(source.columns[channel].values.dropna().unique())
        spend = pd.DataFrame({money: source.columns[money].values})
        columns = {**shape.dated_by, "channel": channel, "spend": money}
        found = [(name, None) for name in names]
    else:
        guesses.append(Guess("sources.spend.layout", "wide", "one row per date, a column each"))
        numbers = [c for c in _numbers(source, shape) if c.levels > 1]
        taken: set[str] = set()
        found = [(_channel_name(c.name, taken), c.name) for c in numbers]
        spend = pd.DataFrame({c.name: c.values for c in numbers})
        columns = dict(shape.dated_by)
    _note_blanks(source, list(spend.columns), "sources.spend", notes, blanks)
    channels = _match_touchpoints(found, touchpoints, guesses, notes)
    return ("long" if long else "wide"), columns, channels, _recent_spend(shape, spend)


def _match_touchpoints(
    found: list[tuple[str, str | None]],
    touchpoints: list[str],
    guesses: list[Guess],
    notes: list[str],
) -> tuple[ChannelGuess, ...]:
    """Touchpoints whose name holds a channel's words belong to it; organic ones never do."""
    taken: dict[str, str] = {}
    out = []
    for name, column in found:
        words = set(tokens(name))
        mine = tuple(
            tp
            for tp in touchpoints
            if tp not in taken and words <= set(tokens(tp)) and not set(tokens(tp)) & ORGANIC
        )
        taken.update(dict.fromkeys(mine, name))
        where = f"spend column {column!r}" if column else "a channel in the spend file"
        why = f"{where}; touchpoint names hold its name" if mine else f"{where}; no touchpoint"
        guesses.append(Guess(f"channels.{name}", ", ".join(mine) or "-", why))
        out.append(ChannelGuess(name, spend_column=column, touchpoints=mine))
    unmatched = [tp for tp in touchpoints if tp not in taken]
    paid = [tp for tp in unmatched if _paid_looking(tp)]
    if paid:
        notes.append(
            f"touchpoints {paid} name a channel but match no spend channel: they count as "
            "organic unless you add a channel for them (with cost_per_touch if it has no spend)"
        )
    organic = [tp for tp in unmatched if tp not in paid]
    if organic:
        notes.append(f"touchpoints {organic} match no spend channel: they count as organic")
    return tuple(out)


def _paid_looking(touchpoint: str) -> bool:
    words = set(tokens(touchpoint))
    return bool(words & CHANNEL_WORDS) and not words & ORGANIC


def _event_months(
    source: _Source, shape: _Shape, spend: _Shape | None, notes: list[str]
) -> tuple[str, str]:
    """First and last month whose complete weeks all have events (and spend).

    A month the data cover only in part would leave weeks without events, which the weekly
    panel refuses; such an edge month is left out and the notes say so.
    """
    first, last = shape.days.min(), shape.days.max()
    if spend is not None and spend.period:
        covered = _coverage(spend)
        first, last = max(first, covered[0]), min(last, covered[1])
    elif spend is not None and round(spend.spacing) <= 7:
        first, last = max(first, spend.days.min()), min(last, spend.days.max())
    start, end = _month(first), _month(last)
    wd = WEEKDAYS.index("monday")
    if complete_weeks(start, start, wd)[0] < week_floor(pd.Series([first]), wd)[0]:
        notes.append(f"{start} is covered only from {first.date()}: the range starts a month later")
        start = shift_month(start, 1)
    weeks = complete_weeks(end, end, wd)
    if len(weeks) and weeks[-1] > week_floor(pd.Series([last]), wd)[0]:
        notes.append(f"{end} is covered only up to {last.date()}: the range ends a month earlier")
        end = shift_month(end, -1)
    if end < start:
        raise InputDataError(
            source.template,
            f"the data run from {first.date()} to {last.date()} and cover no whole month; "
            "the event route needs at least one",
        )
    return start, end
