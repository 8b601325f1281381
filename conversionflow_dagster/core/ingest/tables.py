"""Reading input tables (CSV or Parquet) and parsing their columns with row-precise errors.

Files are read as text first and parsed column by column, so the first bad value can be named
by its line and column instead of surfacing as a pandas exception from deep inside a parser.
"""

from __future__ import annotations

import calendar
import csv
import dataclasses
import difflib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from conversionflow_dagster.core.errors import InputDataError

MAX_ABS = 1e15  # larger magnitudes are taken as a unit or export mistake, not data
# Text that databases and spreadsheets write for a missing value (compared in lower case).
NULL_TEXT = frozenset(
    {"nan", "-nan", "null", "none", "nil", "na", "n/a", "#n/a", "#na", "<na>", "nat"}
)
NULL_LENGTH = max(map(len, NULL_TEXT))
# Magic bytes of files that are not plain-text CSV, with what to do about them.
NOT_TEXT = {
    b"\x1f\x8b": ("gzip-compressed data", "decompress it first (e.g. `gunzip FILE`)"),
    b"PK\x03\x04": (
        "a ZIP archive (an Excel .xlsx workbook?)",
        "export the sheet as 'CSV UTF-8' or unzip the file",
    ),
}
# What a CSV file may be separated by (a spreadsheet in a locale whose decimal point is a comma
# writes ';'), as messages name them; the first that fits the file's first lines is taken.
DELIMITERS = {",": "','", ";": "';'", "\t": "a tab"}
SNIFFED_RECORDS = 20  # records (header included) that must agree on the delimiter
# What a spreadsheet's money format puts before or after a number, and a name may hold.
CURRENCY_SIGNS = "$€£¥₹"


def formatted_number(point: str) -> re.Pattern[str]:
    """A number as a spreadsheet formats it with ``point`` as the decimal point: thousands
    grouped by the other of '.' and ',' ($1,234.50, 1.234,50 €), a sign, a currency sign."""
    group, point = re.escape("." if point == "," else ","), re.escape(point)
    return re.compile(
        rf"(?P<sign>[-+]?)\s*[{CURRENCY_SIGNS}]?\s*(?P<sign_after>[-+]?)"
        rf"(?P<number>\d{{1,3}}(?:{group}\d{{3}})+(?:{point}\d+)?|\d+(?:{point}\d+)?)"
        rf"\s*[{CURRENCY_SIGNS}]?"
    )


DECIMAL_COMMA_NUMBER = formatted_number(",")
# An ISO 8601 week date: 2024-W03, 2024W03 or with its weekday, 2024-W03-1 (1 = Monday).
ISO_WEEK = r"(?P<year>\d{4})-?W(?P<week>\d{2})(?:-?(?P<day>[1-7]))?"
# Values that look like part of a date, and the periods whose rows they may date.
PARTIAL_DATES = {
    "month number": (r"\s*\d{1,2}\s*", ()),
    "year": (r"\s*\d{4}\s*", ("year",)),
    "year-month": (r"\s*\d{4}-?\d{2}\s*", ("month", "quarter", "year")),
}
MONTH_NAMES = {
    name.lower(): number
    for names in (calendar.month_name, calendar.month_abbr)
    for number, name in enumerate(names)
    if name
}


@dataclass(frozen=True)
class Table:
    """A raw table and where it came from, for error messages."""

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray  # each row's line in the file (CSV, header = line 1) or row (Parquet)
    row_kind: str  # "line" for CSV, "row" for Parquet
    delimiter: str = ","  # a CSV file's (see :func:`sniff_delimiter`)
    # column -> the one currency sign its formatted numbers carried ("$1,234" -> "$")
    currency_signs: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def error(self, problem: str, *, index: int | None = None, column: str | None = None):
        row = None if index is None else int(self.lines[index])
        return InputDataError(self.path, problem, row=row, column=column, row_kind=self.row_kind)

    def subset(self, keep: np.ndarray) -> Table:
        """The rows where ``keep`` is true; errors still name their line in the file."""
        frame = self.frame.loc[keep].reset_index(drop=True)
        return dataclasses.replace(self, frame=frame, lines=self.lines[keep])


def _utf8_error(path: Path, raw: bytes) -> InputDataError:
    """Locate the first byte that is not UTF-8 (pandas reports offsets within a chunk)."""
    try:
        raw.decode("utf-8")
        start = 0
    except UnicodeDecodeError as error:
        start = error.start
    line = raw.count(b"\n", 0, start) + 1
    bad = raw[start : start + 1].hex()
    return InputDataError(
        path,
        f"file is not valid UTF-8 (byte 0x{bad}); save it as UTF-8 (e.g. from a spreadsheet: "
        "'CSV UTF-8')",
        row=line,
    )


def _delimiter_hint(header: str, delimiter: str = ",") -> str:
    """A hint when a header holds another delimiter than the one the file was read with."""
    for other, name in DELIMITERS.items():
        if other != delimiter and other in header:
            return (
                f"; the header contains {name}, so the file seems to use {name} as its "
                f"delimiter, but its lines do not split into the same number of fields by it"
            )
    return ""


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header and the next lines into one number (> 1) of fields,
    the most fields where several do; ',' where none does (its errors then say what is off).

    A spreadsheet saves CSV with the locale's list separator: ';' where the decimal point is a
    comma. Guessing from the header alone would misread a header whose names hold a ','.
    """
    best, most = ",", 1
    for delimiter in DELIMITERS:
        source = io.StringIO(text, newline="")
        reader = csv.reader(source, delimiter=delimiter, skipinitialspace=True)
        try:
            counts = {len(r) for _, r in zip(range(SNIFFED_RECORDS), reader, strict=False) if r}
        except csv.Error:
            continue
        if len(counts) == 1 and (fields := counts.pop()) > most:
            best, most = delimiter, fields
    return best


def _head(raw: bytes, size: int = 65536) -> bytes:
    """The whole lines within the first ``size`` bytes (all of a smaller file)."""
    return raw if len(raw) <= size else raw[: raw.rfind(b"\n", 0, size) + 1]


def _records(raw: bytes, delimiter: str) -> tuple[np.ndarray, np.ndarray]:
    """Line number (header = 1) and field count of each non-blank record of a CSV file.

    pandas numbers records, not lines, so a quoted value spanning lines would shift every later
    line number. Without quotes (or lone carriage returns) each line is one record and numpy
    counts its commas; otherwise the csv module follows the quotes.
    """
    data = np.frombuffer(raw, dtype=np.uint8)
    returns = np.flatnonzero(data == ord("\r"))
    lone_return = len(returns) and (
        returns[-1] == len(data) - 1 or (data[returns + 1] != ord("\n")).any()
    )
    if b'"' in raw or lone_return:
        return _records_quoted(raw.decode("utf-8"), delimiter)
    ends = np.flatnonzero(data == ord("\n"))
    if not raw.endswith(b"\n"):
        ends = np.append(ends, len(raw))
    starts = np.concatenate(([0], ends[:-1] + 1))
    separators = (data == ord(delimiter)).view(np.uint8)
    fields = np.add.reduceat(separators, starts, dtype=np.int32) + 1
    blank = np.zeros(len(ends), dtype=bool)
    for i in np.flatnonzero(fields == 1):  # only blank lines, unless the file has one column
        blank[i] = not raw[starts[i] : ends[i]].strip()
    return np.flatnonzero(~blank) + 1, fields[~blank]


def _records_quoted(text: str, delimiter: str) -> tuple[np.ndarray, np.ndarray]:
    source = io.StringIO(text, newline="")
    current = ""

    def lines():
        nonlocal current
        for line in source:
            current = line
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, skipinitialspace=True)  # as pandas does
    numbers, fields, read = [], [], 0
    for record in reader:
        first, read = read + 1, reader.line_num
        if record and (record != [""] or current.strip()):
            numbers.append(first)
            fields.append(len(record))
    return np.array(numbers, dtype=np.int64), np.array(fields, dtype=np.int64)


def _check_fields(path: Path, raw: bytes, delimiter: str) -> np.ndarray:
    """The line of each data row; refuse rows with more or fewer fields than the header.

    pandas pads a short row with blanks (read later as 0) and, when a row has one field too
    many, takes the first column as an index, so every column shifts and errors blame the
    wrong one.
    """
    try:
        numbers, fields = _records(raw, delimiter)
    except csv.Error as error:
        raise InputDataError(path, f"not a well-formed CSV file: {error}") from None
    if not len(fields):
        raise InputDataError(path, "file is empty; expected a header row and data rows")
    wrong = np.flatnonzero(fields != fields[0])
    if len(wrong):
        i = int(wrong[0])
        found, expected = int(fields[i]), int(fields[0])
        cause = (
            "is a value missing or the line cut short?"
            if found < expected
            else f"does a value contain an unquoted {DELIMITERS[delimiter]}? "
            "Put it in double quotes"
        )
        header = raw.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        raise InputDataError(
            path,
            f"expected {expected} fields as in the header, found {found}; {cause}"
            f"{_delimiter_hint(header, delimiter)}",
            row=int(numbers[i]),
        )
    return numbers[1:]


def read_table(path: str | Path) -> Table:
    """Read a CSV (as text) or Parquet file; refuse missing, empty, non-UTF-8 and ragged files."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputDataError(path, "file is empty; expected a header row and data rows")
    if path.suffix.lower() == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several unrelated types
            raise InputDataError(path, f"cannot read Parquet file: {error}") from None
        table = Table(path, frame, np.arange(1, len(frame) + 1), row_kind="row")
    else:
        raw = path.read_bytes()
        for magic, (kind, remedy) in NOT_TEXT.items():
            if raw.startswith(magic):
                raise InputDataError(
                    path,
                    f"file looks like {kind} (it starts with bytes {magic.hex(' ')}), not a "
                    f"plain-text CSV; {remedy} and point the config at the plain CSV",
                )
        try:
            delimiter = sniff_delimiter(_head(raw).decode("utf-8", errors="replace"))
            lines = _check_fields(path, raw, delimiter)
            frame = pd.read_csv(
                io.BytesIO(raw),
                sep=delimiter,
                dtype=str,
                keep_default_na=False,
                encoding="utf-8",
                skipinitialspace=True,
            )
        except UnicodeDecodeError:
            raise _utf8_error(path, raw) from None
        except pd.errors.EmptyDataError:
            raise InputDataError(
                path, "file is empty; expected a header row and data rows"
            ) from None
        except pd.errors.ParserError as error:
            raise InputDataError(path, f"not a well-formed CSV file: {error}") from None
        if len(lines) != len(frame):  # a quoting quirk the record count did not follow
            raise InputDataError(
                path,
                f"not a well-formed CSV file: {len(frame)} rows read from {len(lines)} records",
            )
        frame.columns = [str(c).strip() for c in frame.columns]
        # unquoted, a comma file's cells hold no ',': only quotes or a currency sign ('$' or
        # a non-ASCII one) can bring formatted numbers; byte searches are far cheaper than
        # scanning every column
        signs: dict[str, str] = {}
        if delimiter != "," or b'"' in raw or b"$" in raw or not raw.isascii():
            frame, signs = with_plain_numbers(frame, decimal_point(frame, delimiter))
        table = Table(path, frame, lines, "line", delimiter, signs)
    if table.frame.empty:
        raise InputDataError(path, "file has a header but no data rows")
    return table


def decimal_point(frame: pd.DataFrame, delimiter: str) -> str:
    """',' where a ';' or tab separated table writes any number with a decimal comma (1.234,5,
    0,25 €), else '.': a comma-separated file cannot use commas in numbers unquoted."""
    if delimiter == ",":
        return "."
    for _, column in frame.items():
        text = column.str.strip()
        if (text.str.fullmatch(DECIMAL_COMMA_NUMBER) & text.str.contains(",", regex=False)).any():
            return ","
    return "."


def with_plain_numbers(frame: pd.DataFrame, point: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Numbers formatted as a spreadsheet shows them ($1,234.50; 1.234,50 €; -€12) rewritten
    as plain numbers (1234.50, -12), with ``point`` as the table's decimal point; and the
    columns whose formatted numbers all carry one currency sign, with that sign.

    Only whole cells that read as such a number change: dates (31.12.2024), text and anything
    else stay as they are, for the column's own parser to judge. Columns without a currency
    sign or separator in any cell are left untouched (the common case, and fast).
    """
    group = "." if point == "," else ","
    pattern = rf"^{formatted_number(point).pattern}$"
    marks = f"[{re.escape(CURRENCY_SIGNS + ',')}]"  # plain 1234.5 needs no rewriting
    out, signs = {}, {}
    for name, column in frame.items():
        if not column.str.contains(marks, regex=True).any():
            continue
        parts = column.str.strip().str.extract(pattern)
        matched = parts["number"].notna()
        found = set(column[matched].str.extract(f"([{CURRENCY_SIGNS}])")[0].dropna())
        if len(found) == 1:
            signs[str(name)] = found.pop()
        negative = (parts["sign"] + parts["sign_after"]).str.count("-") % 2 == 1
        number = parts["number"].str.replace(group, "", regex=False)
        number = number.str.replace(point, ".", regex=False)
        out[name] = column.mask(matched, negative.map({True: "-", False: ""}) + number)
    return (frame.assign(**out) if out else frame), signs


def require_columns(table: Table, mapping: Mapping[str, str], config_key: str) -> None:
    """Check that every mapped column exists; suggest the closest name for a misnamed one."""
    present = list(table.frame.columns)
    missing = [(field, column) for field, column in mapping.items() if column not in present]
    if not missing:
        return
    parts = []
    for field, column in missing:
        close = difflib.get_close_matches(column, present, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"{column!r} for {config_key}.{field}{hint}")
    raise table.error(
        f"missing column(s) {', '.join(parts)}; the file has columns {present}. "
        f"Rename the column in the file or map it in the config under {config_key}"
        f"{_delimiter_hint(''.join(present), table.delimiter)}"
    )


def refuse_duplicates(table: Table, keys: pd.DataFrame, column: str, expected: str) -> None:
    """Refuse rows whose ``keys`` repeat an earlier row's, naming both lines."""
    repeated = keys.duplicated().to_numpy()
    if not repeated.any():
        return
    index = int(np.flatnonzero(repeated)[0])
    same = (keys == keys.iloc[index]).all(axis=1).to_numpy()
    first = int(table.lines[int(np.flatnonzero(same)[0])])
    shown = ", ".join(f"{k} {_shown(v)}" for k, v in keys.iloc[index].items())
    raise table.error(
        f"{shown} repeats {table.row_kind} {first}; expected {expected}",
        index=index,
        column=column,
    )


def _shown(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else str(value)
    if isinstance(value, float | np.floating):
        return f"{value:g}"
    return repr(value)


def _first_bad(
    table: Table, mask: np.ndarray, column: str, expected: str, then: str = ""
) -> InputDataError:
    bad = np.flatnonzero(mask)
    value = table.frame[column].iloc[bad[0]]
    more = f" ({len(bad) - 1} more row(s) like it)" if len(bad) > 1 else ""
    return table.error(
        f"expected {expected}, got {value!r}{more}{then}", index=int(bad[0]), column=column
    )


def _blank(series: pd.Series) -> np.ndarray:
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        return (series.isna() | (series.astype(str).str.strip() == "")).to_numpy()
    return series.isna().to_numpy()


def parse_timestamps(
    table: Table,
    column: str,
    *,
    period: str | None = None,
    source_key: str | None = None,
    date_format: str | None = None,
) -> pd.Series:
    """ISO 8601 dates or timestamps; offsets are converted to UTC and dropped. With a
    ``date_format`` (strftime codes, e.g. ``%d/%m/%Y``) every value must have that form.

    A bare year or year-month parses as its first day, so '2024' would silently become
    1 January; such values (and month numbers) are refused unless ``period`` says each row
    covers that long (a year-month dates a month, quarter or year; a year dates a year).
    ``source_key`` (e.g. 'sources.spend') names the config section that could set the period.
    """
    raw = table.frame[column]
    refused = np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
    elif date_format is not None:
        text = raw.astype("string").str.strip()
        parsed = pd.to_datetime(text, format=date_format, errors="coerce")
        if parsed.isna().any():
            example = pd.Timestamp("2024-01-20").strftime(date_format)
            where = f" ({source_key}.date_format)" if source_key else ""
            raise _first_bad(
                table, parsed.isna().to_numpy(), column, f"a date like {example!r}{where}"
            )
    else:
        parsed = pd.to_datetime(raw, format="ISO8601", errors="coerce", utc=True)
        unread = parsed.isna()
        if unread.any():  # week dates (2024-W03), looked for only where a day did not read
            parsed[unread] = iso_week_dates(raw[unread]).dt.tz_localize("UTC")
        refused = _read_partial(raw, parsed, period)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    bad = parsed.isna().to_numpy() | refused
    if bad.any():
        if refused[np.flatnonzero(bad)[0]]:
            raise _first_bad(table, bad, column, *_partial_hint(period, source_key))
        raise _first_bad(
            table, bad, column, "an ISO 8601 date or timestamp like 2024-01-20T09:45:00"
        )
    return parsed.astype("datetime64[ns]")


def iso_week_dates(raw: pd.Series) -> pd.Series:
    """The day each ISO 8601 week date (2024-W03, 2024W03-2) stands for, its Monday where no
    weekday is given; NaT for every other value."""
    parts = raw.astype("string").str.strip().str.extract(rf"^{ISO_WEEK}$")
    text = parts["year"] + "-W" + parts["week"] + "-" + parts["day"].fillna("1")
    return pd.to_datetime(text, format="%G-W%V-%u", errors="coerce").astype("datetime64[ns]")


def _read_partial(raw: pd.Series, parsed: pd.Series, period: str | None) -> np.ndarray:
    """Date (in ``parsed``, in place) the partial values ``period`` allows, as the first day
    they name ('202403' too, which ISO 8601 parsing does not read); mark the others refused.

    Only short values can be partial: a regex over a whole column of timestamps would cost
    more than parsing them.
    """
    text = raw if pd.api.types.is_string_dtype(raw) else raw.astype("string")
    short = np.flatnonzero((text.str.len() <= 9).to_numpy(dtype=bool, na_value=False))
    refused = np.zeros(len(raw), dtype=bool)
    if not len(short):
        return refused
    values = text.iloc[short].astype("string")
    for kind, (pattern, periods) in PARTIAL_DATES.items():
        found = np.zeros(len(raw), dtype=bool)
        found[short] = values.str.fullmatch(pattern).to_numpy(dtype=bool, na_value=False)
        if not found.any():
            continue
        if period in periods:
            digits = raw[found].astype(str).str.replace("-", "").str.strip()
            form = "%Y" if kind == "year" else "%Y%m"
            parsed[found] = pd.to_datetime(digits, format=form, errors="coerce", utc=True)
        else:
            refused |= found
    return refused


def _partial_hint(period: str | None, source_key: str | None) -> tuple[str, str]:
    """(what was expected, what to do) for a value that is only part of a date."""
    columns = (
        f"; a year and a month number in two columns are read by mapping "
        f"{source_key}.columns.year and {source_key}.columns.month"
        if source_key
        else ""
    )
    if period is not None:
        expected = {
            "week": "a date like 2024-03-04",
            "year": "a date, year-month or year like 2024-03-01, 2024-03 or 2024",
        }.get(period, "a date or year-month like 2024-03-01 or 2024-03")
        return expected, f" ({source_key}.period is {period!r}{columns})"
    then = (
        "; bare years and month numbers are not dates (monthly data needs a day, e.g. the "
        "month's first: 2024-03-01"
    )
    if source_key:
        then += (
            f"; or set {source_key}.period: month (or quarter, year) to spread each row over "
            f"the days it covers{columns}"
        )
    return "a date with a day like 2024-01-20", then + ")"


def parse_year_month(table: Table, year: str, month: str | None) -> pd.Series:
    """The first day of each row's year, or of its month when ``month`` names a column of
    month numbers (1-12) or English month names ('Mar', 'March')."""
    years = parse_numbers(table, year).to_numpy()
    bad = (years % 1 != 0) | (years < 1000) | (years > 9999)
    if bad.any():
        raise _first_bad(table, bad, year, "a four-digit year like 2024")
    months = np.ones(len(years), dtype=np.int64)
    if month is not None:
        text = table.frame[month].astype("string").str.strip()
        named = text.str.lower().map(MONTH_NAMES)
        numbers = pd.to_numeric(text.where(named.isna()), errors="coerce")
        values = named.fillna(numbers).to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isin(values, np.arange(1, 13))
        if bad.any():
            raise _first_bad(table, bad, month, "a month number 1-12 or a month name like Mar")
        months = values.astype(np.int64)
    return pd.Series(
        pd.to_datetime({"year": years.astype(np.int64), "month": months, "day": 1}),
        index=table.frame.index,
    )


def parse_numbers(
    table: Table,
    column: str,
    *,
    blank_as_zero: bool = False,
    blank_key: str | None = None,
    non_negative: bool = False,
) -> pd.Series:
    """Finite numbers within +-MAX_ABS (optionally >= 0); blanks are errors unless
    ``blank_as_zero``. ``blank_key`` names the config key that would read blanks as 0.

    The bound keeps a unit or export mistake (1e308, inf) from overflowing a sum to inf and
    slipping past the checks that compare totals.
    """
    raw = table.frame[column]
    blank = _blank(raw)
    if blank.any() and not blank_as_zero:
        allow = f"; set {blank_key}: true to read blanks as 0" if blank_key else ""
        raise _first_bad(table, blank, column, "a number, not a blank", then=allow)
    values = pd.to_numeric(raw.where(~blank, "0"), errors="coerce").astype(float)
    array = values.to_numpy()
    bad = np.isnan(array)
    if bad.any():
        raise _first_bad(table, bad, column, "a number")
    huge = np.abs(array) > MAX_ABS
    if huge.any():
        raise _first_bad(
            table,
            huge,
            column,
            f"a finite number no larger than {MAX_ABS:.0e} in size",
            then=" (a bigger value is taken as a unit or export mistake)",
        )
    if non_negative:
        negative = array < 0
        if negative.any():
            raise _first_bad(table, negative, column, "a value >= 0")
    return values


def parse_binary(table: Table, column: str) -> pd.Series:
    """A 0/1 flag (also accepts 0.0/1.0 and true/false as spreadsheets write them)."""
    raw = table.frame[column]
    text = raw.astype(str).str.strip().str.lower()
    mapped = text.map({"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1})
    bad = mapped.isna().to_numpy()
    if bad.any():
        raise _first_bad(table, bad, column, "0 or 1")
    return mapped.astype(np.int8)


def parse_labels(table: Table, column: str, *, refuse_null_text: bool = False) -> pd.Series:
    """Text labels (ids, names); blanks become missing values for the checks to report.

    With ``refuse_null_text``, text that stands for a missing value ('NaN', 'NULL', 'N/A', ...)
    is refused: read literally it would make one shared id or touchpoint of every such row.
    """
    raw = table.frame[column].astype("string").str.strip()
    if refuse_null_text:
        # only short values can be such text: cheaper than lower-casing a million ids
        short = np.flatnonzero((raw.str.len() <= NULL_LENGTH).to_numpy(dtype=bool, na_value=False))
        null = np.zeros(len(raw), dtype=bool)
        if len(short):
            null[short] = raw.iloc[short].str.lower().isin(NULL_TEXT).to_numpy(dtype=bool)
        if null.any():
            raise _first_bad(
                table,
                null,
                column,
                "a value, not text that stands for a missing one",
                then="; fill it in or remove the row",
            )
    return raw.mask(raw == "")
