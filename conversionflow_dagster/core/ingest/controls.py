"""Control series (holidays, promotions, prices): numeric columns and one-hot categoricals."""

from __future__ import annotations

import pandas as pd

from conversionflow_dagster.core.config import ControlsSection
from conversionflow_dagster.core.ingest.tables import Table, parse_labels, parse_numbers

CONTROL_PREFIX = "control__"


def control_columns(table: Table, controls: ControlsSection) -> pd.DataFrame:
    """Encode the configured control series of ``table`` row by row.

    A categorical series becomes one 0/1 column per level other than its baseline, named
    ``control__<name>=<level>``; a numeric one becomes ``control__<name>``.
    """
    out = {}
    for name, series in controls.series.items():
        if series.categorical:
            labels = parse_labels(table, series.column).fillna("")
            levels = sorted(set(labels) - {series.baseline or ""})
            for level in levels:
                out[f"{CONTROL_PREFIX}{name}={level}"] = (labels == level).astype(float)
        else:
            out[f"{CONTROL_PREFIX}{name}"] = parse_numbers(
                table,
                series.column,
                blank_as_zero=controls.blank_as_zero,
                blank_key="controls.blank_as_zero",
            )
    return pd.DataFrame(out, index=table.frame.index)


def required_control_columns(controls: ControlsSection) -> dict[str, str]:
    return {f"{name}.column": s.column for name, s in controls.series.items()}
