"""Ingest: raw events and spend per month, and the weekly panel every later stage reads.

The graph depends on the config's route: the events route has monthly ``raw_events`` and
``raw_spend`` feeding ``weekly_panel``; the panel route reads a ready weekly table directly.
"""

import dagster as dg
import pandas as pd

from conversionflow_dagster.asset_names import RAW_EVENTS, RAW_SPEND, WEEKLY_PANEL
from conversionflow_dagster.core.config import ProjectConfig
from conversionflow_dagster.core.errors import ConversionflowError
from conversionflow_dagster.core.ingest.events import event_rules, read_month_events
from conversionflow_dagster.core.ingest.panel import (
    WeeklyPanel,
    build_panel_from_events,
    build_panel_from_file,
    read_controls,
)
from conversionflow_dagster.core.ingest.spend import fed_channels, read_month_spend, spend_rules
from conversionflow_dagster.failures import retry_only_io_faults
from conversionflow_dagster.io_managers import BY_PARTITION
from conversionflow_dagster.partitions import PipelinePartitions, market_of, month_of
from conversionflow_dagster.resources import ProjectResource

GROUP = "ingest"
# Transient storage hiccups are worth a retry; bad input is not (see retry_only_io_faults).
IO_RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL)
ALL_MONTHS = dg.AssetIn(
    partition_mapping=dg.AllPartitionMapping(),
    metadata={"allow_missing_partitions": True, BY_PARTITION: True},
)


def by_month(partitions: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Monthly partitions keyed by their month (YYYY-MM) instead of their partition key."""
    return {month_of(key): frame for key, frame in partitions.items()}


def _panel_result(panel: WeeklyPanel) -> dg.Output:
    return dg.Output(
        panel,
        metadata={
            **panel.describe(),
            "dagster/row_count": len(panel.frame),
            "route": panel.route,
            "missing_weeks": len(panel.missing_weeks),
            "sources": len(panel.sources),
        },
    )


def build_ingest_assets(
    config: ProjectConfig, parts: PipelinePartitions
) -> list[dg.AssetsDefinition]:
    """The ingest assets for the configured route."""
    if config.sources.route == "panel":
        return [_panel_file_asset(parts.markets)]
    monthly = parts.monthly
    assets = [_raw_events_asset(monthly)]
    has_feed = config.sources.spend is not None and bool(fed_channels(config))
    if has_feed:
        assets.append(_raw_spend_asset(monthly))
    assets.append(_events_panel_asset(has_feed))
    return assets


def _read_events(project: ProjectResource, config: ProjectConfig, month: str) -> pd.DataFrame:
    return read_month_events(project.path(config.sources.events.path), config.sources.events, month)


def _describe_events(events: pd.DataFrame) -> dict:
    return {
        "conversions": int(events["conversion"].sum()),
        "revenue": float(events["value"].sum()),
        "touchpoints": int(events["touchpoint"].nunique()),
    }


def _read_spend(project: ProjectResource, config: ProjectConfig, month: str) -> pd.DataFrame:
    return read_month_spend(project.path(config.sources.spend.path), config, month)


def _describe_spend(spend: pd.DataFrame) -> dict:
    return {
        "total_spend": float(spend["spend"].sum()),
        "channels": int(spend["channel"].nunique()),
    }


def _monthly_source_asset(
    name: str, description: str, read, describe, rules, monthly: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """A monthly raw asset: read one month of a source file into its contract.

    The month is refused before anything is stored when its blocking rules fail: the stored file
    (an earlier good month, or none) stays as it was, so the panel never reads refused rows.
    The blocking checks then judge what is stored.
    """

    @dg.asset(
        name=name,
        description=description,
        partitions_def=monthly,
        group_name=GROUP,
        io_manager_key="parquet_io",
        retry_policy=IO_RETRY,
        kinds={"pandas", "parquet"},
    )
    def _asset(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.Output:
        with retry_only_io_faults():
            month = month_of(context.partition_key)
            frame = read(project, project.config(), month)
            refused = [o for o in rules(frame, month) if not o.passed]
            if refused:
                raise ConversionflowError(
                    "; ".join(f"{name}.{o.name}: {o.description}" for o in refused)
                    + f" ({month} refused, nothing stored: the previous file, if any, is kept)"
                )
        sources = sorted(str(f) for f in frame["source_file"].unique())
        return dg.Output(
            frame,
            metadata={
                "dagster/row_count": len(frame),
                "source_files": ", ".join(sources),
                **describe(frame),
            },
        )

    return _asset


def _raw_events_asset(monthly: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    return _monthly_source_asset(
        RAW_EVENTS,
        "One month of the customer-journey event log, parsed into the events contract.",
        _read_events,
        _describe_events,
        event_rules,
        monthly,
    )


def _raw_spend_asset(monthly: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    return _monthly_source_asset(
        RAW_SPEND,
        "One month of the spend feed, long format, one row per date and channel.",
        _read_spend,
        _describe_spend,
        spend_rules,
        monthly,
    )


def _events_panel_asset(has_feed: bool) -> dg.AssetsDefinition:
    ins = {RAW_EVENTS: ALL_MONTHS} | ({RAW_SPEND: ALL_MONTHS} if has_feed else {})

    @dg.asset(
        name=WEEKLY_PANEL,
        ins=ins,
        group_name=GROUP,
        io_manager_key="parquet_io",
        retry_policy=IO_RETRY,
        kinds={"pandas", "parquet"},
    )
    def weekly_panel(project: ProjectResource, **months: dict[str, pd.DataFrame]) -> dg.Output:
        """Complete weeks of spend, touches, conversions, revenue and controls."""
        with retry_only_io_faults():
            config = project.config()
            controls = (
                read_controls(project.path(config.controls.path), config)
                if config.controls.path
                else None
            )
            panel = build_panel_from_events(
                by_month(months[RAW_EVENTS]),
                by_month(months[RAW_SPEND]) if RAW_SPEND in months else None,
                controls,
                config,
            )
        return _panel_result(panel)

    return weekly_panel


def _panel_file_asset(markets: dg.StaticPartitionsDefinition | None) -> dg.AssetsDefinition:
    @dg.asset(
        name=WEEKLY_PANEL,
        partitions_def=markets,
        group_name=GROUP,
        io_manager_key="parquet_io",
        retry_policy=IO_RETRY,
        kinds={"pandas", "parquet"},
    )
    def weekly_panel(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.Output:
        """A ready weekly table (one market's rows, with markets), in the panel contract."""
        with retry_only_io_faults():
            config = project.config()
            market = market_of(context.partition_key) if context.has_partition_key else None
            path = project.path(config.sources.panel.path)
            panel = build_panel_from_file(path, config, market)
        return _panel_result(panel)

    return weekly_panel
