"""Data-quality rules as plain functions; the Dagster layer turns outcomes into asset checks.

Each rule returns a :class:`CheckOutcome` whose description a person can act on: how many rows
fail and where the first ones are (file and line), not just "failed".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from conversionflow_dagster.core.months import month_start, next_month_start

SHOWN_ROWS = 5


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


def _where(frame: pd.DataFrame, mask: np.ndarray) -> str:
    """'file line 12, file line 40, ...' for the first failing rows."""
    rows = frame.loc[mask].head(SHOWN_ROWS)
    if "source_file" in rows and "line" in rows:
        places = [f"{f} line {n}" for f, n in zip(rows["source_file"], rows["line"], strict=True)]
    else:
        places = [f"row {i}" for i in rows.index]
    return ", ".join(places)


def rule(name: str, frame: pd.DataFrame, bad: np.ndarray, what: str) -> CheckOutcome:
    """Outcome of a row-wise rule: ``bad`` marks the offending rows."""
    count = int(bad.sum())
    if count == 0:
        return CheckOutcome(name, True, f"all {len(frame)} rows: {what}", {"failing_rows": 0})
    return CheckOutcome(
        name,
        False,
        f"{count} of {len(frame)} rows break '{what}'; first at {_where(frame, bad)}",
        {"failing_rows": count},
    )


def schema_rule(name: str, frame: pd.DataFrame, expected: dict[str, str]) -> CheckOutcome:
    """Columns and dtype kinds (pandas ``dtype.kind`` letters) match the contract."""
    problems = []
    for column, kinds in expected.items():
        if column not in frame:
            problems.append(f"missing column {column!r}")
        elif frame[column].dtype.kind not in kinds:
            problems.append(f"column {column!r} has dtype {frame[column].dtype}")
    if problems:
        return CheckOutcome(name, False, "; ".join(problems), {"problems": len(problems)})
    return CheckOutcome(name, True, f"columns {list(expected)} match the contract")


def in_month_mask(stamps: pd.Series, month: str) -> np.ndarray:
    """True where a timestamp lies outside the calendar month ``YYYY-MM``."""
    start, end = month_start(month), next_month_start(month)
    return ((stamps < start) | (stamps >= end)).to_numpy()


def nulls_mask(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return frame[list(columns)].isna().any(axis=1).to_numpy()
