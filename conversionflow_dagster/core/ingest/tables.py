"""Reading input tables (CSV or Parquet) and parsing their columns with row-precise errors.

Files are read as text first and parsed column by column, so the first bad value can be named
by its line and column instead of surfacing as a pandas exception from deep inside a parser.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from conversionflow_dagster.core.errors import InputDataError


@dataclass(frozen=True)
class Table:
    """A raw table and where it came from, for error messages."""

    path: Path
    frame: pd.DataFrame
    first_row: int  # number of the first data row: 2 for CSV (after the header), 1 for Parquet
    row_kind: str  # "line" for CSV, "row" for Parquet
    positions: np.ndarray | None = None  # a subset's rows' positions in the file (None: all)

    def error(self, problem: str, *, index: int | None = None, column: str | None = None):
        if index is not None and self.positions is not None:
            index = int(self.positions[index])
        row = None if index is None else self.first_row + index
        return InputDataError(self.path, problem, row=row, column=column, row_kind=self.row_kind)

    def subset(self, keep: np.ndarray) -> Table:
        """The rows where ``keep`` is true; errors still name their line in the file."""
        positions = np.arange(len(self.frame)) if self.positions is None else self.positions
        return Table(
            self.path,
            self.frame.loc[keep].reset_index(drop=True),
            self.first_row,
            self.row_kind,
            positions[keep],
        )


def _utf8_error(path: Path) -> InputDataError:
    """Locate the first byte that is not UTF-8 (pandas reports offsets within a chunk)."""
    raw = path.read_bytes()
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


def read_table(path: str | Path) -> Table:
    """Read a CSV (as text) or Parquet file; refuse missing, empty and non-UTF-8 files."""
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
        table = Table(path, frame, first_row=1, row_kind="row")
    else:
        try:
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, encoding="utf-8", skipinitialspace=True
            )
        except UnicodeDecodeError:
            raise _utf8_error(path) from None
        except pd.errors.EmptyDataError:
            raise InputDataError(
                path, "file is empty; expected a header row and data rows"
            ) from None
        except pd.errors.ParserError as error:
            raise InputDataError(path, f"not a well-formed CSV file: {error}") from None
        frame.columns = [str(c).strip() for c in frame.columns]
        table = Table(path, frame, first_row=2, row_kind="line")
    if table.frame.empty:
        raise InputDataError(path, "file has a header but no data rows")
    return table


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
    )


def _first_bad(table: Table, mask: np.ndarray, column: str, expected: str) -> InputDataError:
    bad = np.flatnonzero(mask)
    value = table.frame[column].iloc[bad[0]]
    more = f" ({len(bad) - 1} more row(s) like it)" if len(bad) > 1 else ""
    return table.error(
        f"expected {expected}, got {value!r}{more}", index=int(bad[0]), column=column
    )


def _blank(series: pd.Series) -> np.ndarray:
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        return (series.isna() | (series.astype(str).str.strip() == "")).to_numpy()
    return series.isna().to_numpy()


def parse_timestamps(table: Table, column: str) -> pd.Series:
    """ISO 8601 dates or timestamps; offsets are converted to UTC and dropped."""
    raw = table.frame[column]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
    else:
        parsed = pd.to_datetime(raw, format="ISO8601", errors="coerce", utc=True)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise _first_bad(
            table, bad, column, "an ISO 8601 date or timestamp like 2024-01-20T09:45:00"
        )
    return parsed.astype("datetime64[ns]")


def parse_numbers(
    table: Table, column: str, *, blank_as_zero: bool = False, non_negative: bool = False
) -> pd.Series:
    """Finite numbers (optionally >= 0); blanks are errors unless ``blank_as_zero``."""
    raw = table.frame[column]
    blank = _blank(raw)
    if blank.any() and not blank_as_zero:
        raise _first_bad(table, blank, column, "a number, not a blank")
    values = pd.to_numeric(raw.where(~blank, "0"), errors="coerce").astype(float)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        raise _first_bad(table, bad, column, "a number")
    if non_negative:
        negative = values.to_numpy() < 0
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


def parse_labels(table: Table, column: str) -> pd.Series:
    """Text labels (ids, names); blanks become missing values for the checks to report."""
    raw = table.frame[column].astype("string").str.strip()
    return raw.mask(raw == "")
