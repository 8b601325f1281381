"""Partitions: months of data, and optionally markets (market x month).

Everything from the fit on is partitioned by month, or by market x month when the config lists
markets; the weekly panel is then partitioned by market. A hierarchical fit of the markets is
the exception: one trace per month holds every market, which each market's export and report
read through the month. Assets read the month and the market from a partition key with
:func:`month_of` and :func:`market_of`, whichever the layout.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import dagster as dg

from conversionflow_dagster.core.config import ProjectConfig
from conversionflow_dagster.core.months import next_month_start
from conversionflow_dagster.io_managers import BY_PARTITION

MARKET = "market"
MONTH = "month"
_MONTH_KEY = re.compile(r"\d{4}-\d{2}-\d{2}")


def monthly_partitions(config: ProjectConfig) -> dg.MonthlyPartitionsDefinition:
    first, last = config.month_range()
    end = next_month_start(last).strftime("%Y-%m-%d")
    return dg.MonthlyPartitionsDefinition(start_date=month_key(first), end_date=end)


def dimension_mapping(dimension: str) -> dg.PartitionMapping:
    """Read the partitions of one dimension (market or month) of a market x month asset."""
    with warnings.catch_warnings():  # beta in 1.13, and the documented way to do this
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.MultiToSingleDimensionPartitionMapping(dimension)


@dataclass(frozen=True)
class PipelinePartitions:
    """How each stage is partitioned for one config."""

    monthly: dg.MonthlyPartitionsDefinition  # raw data months
    fit: dg.PartitionsDefinition  # the export and everything after it (and the fit, unpooled)
    markets: dg.StaticPartitionsDefinition | None = None  # the weekly panel, per market
    pooled: bool = False  # every market in one hierarchical fit per month

    @property
    def trace(self) -> dg.PartitionsDefinition:
        """The posterior trace's partitions: months when the markets are pooled, else ``fit``."""
        return self.monthly if self.pooled else self.fit

    @property
    def trace_input(self) -> dg.AssetIn:
        """How a fit-partitioned asset reads the trace: its month's pooled trace, or its own."""
        if not self.pooled:
            return dg.AssetIn()
        return dg.AssetIn(partition_mapping=dimension_mapping(MONTH))

    @property
    def panel_input(self) -> dg.AssetIn:
        """How a fit-partitioned asset reads the weekly panel: its market's, or the only one."""
        if self.markets is None:
            return dg.AssetIn()
        return dg.AssetIn(partition_mapping=dimension_mapping(MARKET))

    @property
    def trace_panel_input(self) -> dg.AssetIn:
        """How the trace reads the weekly panel: a pooled fit reads every market's, as
        {market: panel} even for one market, and tells the markets without one itself."""
        if not self.pooled:
            return self.panel_input
        return dg.AssetIn(
            partition_mapping=dg.AllPartitionMapping(),
            metadata={BY_PARTITION: True, "allow_missing_partitions": True},
        )


def pipeline_partitions(config: ProjectConfig) -> PipelinePartitions:
    monthly = monthly_partitions(config)
    if not config.project.markets:
        return PipelinePartitions(monthly, monthly)
    markets = dg.StaticPartitionsDefinition(list(config.project.markets))
    fit = dg.MultiPartitionsDefinition({MARKET: markets, MONTH: monthly})
    return PipelinePartitions(monthly, fit, markets, pooled=config.pools_markets)


def month_key(month: str) -> str:
    """The monthly partition key of ``month`` (YYYY-MM): its first day, '2024-03-01'."""
    return f"{month}-01"


def month_of(partition_key: str) -> str:
    """The month (YYYY-MM) of a monthly key '2024-03-01' or a market x month key."""
    if isinstance(partition_key, dg.MultiPartitionKey):
        return partition_key.keys_by_dimension[MONTH][:7]
    found = _MONTH_KEY.search(partition_key)
    if found is None:
        raise ValueError(f"partition key {partition_key!r} names no month")
    return found.group()[:7]


def month_in(partition_key: str | None) -> str | None:
    """The month of a key that has one; None for a market key or no key at all."""
    if partition_key is None or not _MONTH_KEY.search(partition_key):
        return None
    return month_of(partition_key)


def market_of(partition_key: str) -> str | None:
    """The market of a market x month key (or of a market key); None for a monthly key."""
    if isinstance(partition_key, dg.MultiPartitionKey):
        return partition_key.keys_by_dimension[MARKET]
    if _MONTH_KEY.fullmatch(partition_key):
        return None
    # Multi keys as strings join dimension values in dimension-name order: market|month.
    return partition_key.split("|")[0]
