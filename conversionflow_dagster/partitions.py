"""Monthly partitions of the raw data, spanning the months the config names."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from conversionflow_dagster.core.config import ProjectConfig


def monthly_partitions(config: ProjectConfig) -> dg.MonthlyPartitionsDefinition:
    first, last = config.month_range()
    end = pd.Timestamp(f"{last}-01") + pd.offsets.MonthBegin(1)
    return dg.MonthlyPartitionsDefinition(
        start_date=f"{first}-01", end_date=end.strftime("%Y-%m-%d")
    )


def month_of(partition_key: str) -> str:
    """'2024-03-01' (a monthly partition key) -> '2024-03'."""
    return partition_key[:7]
