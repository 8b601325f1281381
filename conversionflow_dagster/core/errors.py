"""Errors a user can act on: each names the file, row or column and what was expected."""

from __future__ import annotations

from pathlib import Path


class ConversionflowError(Exception):
    """Base class for every error conversionflow raises on purpose."""


class ConfigError(ConversionflowError):
    """The YAML configuration is missing, unreadable or invalid."""


class InputDataError(ConversionflowError):
    """An input file cannot be ingested into the data contract.

    The message always starts with the file and, where known, the row and column, so a user can
    open the file at the right place. For CSV the row is the 1-based line number (header = line
    1); for Parquet it is the 1-based row number (``row_kind="row"``).
    """

    def __init__(
        self,
        path: str | Path | None,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
        row_kind: str = "line",
    ) -> None:
        self.path = str(path) if path is not None else None
        self.row = row
        self.column = column
        self.problem = problem
        where = [self.path or "<input>"]
        if row is not None:
            where.append(f"{row_kind} {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}")


class ContractError(ConversionflowError):
    """A stored artefact (panel, parameter export, ...) does not match its contract."""
