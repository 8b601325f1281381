"""The Dagster code location: ``defs`` is what ``workspace.yaml`` loads.

The asset graph and its partitions follow the project config (``CONVERSIONFLOW_CONFIG``), so
pointing the location at another config (another data route, other months) changes no code.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from conversionflow_dagster import settings
from conversionflow_dagster.assets.allocation import build_allocation_assets
from conversionflow_dagster.assets.ingest import GROUP, build_ingest_assets
from conversionflow_dagster.assets.model import build_export_assets, build_model_assets
from conversionflow_dagster.assets.report import build_report_assets
from conversionflow_dagster.automation import month_files_sensor, monthly_schedule
from conversionflow_dagster.checks.rules import (
    build_allocation_checks,
    build_ingest_checks,
    build_trace_checks,
)
from conversionflow_dagster.core.config import load_config
from conversionflow_dagster.executors import configured_executor
from conversionflow_dagster.io_managers import (
    ExportIOManager,
    JSONIOManager,
    ParquetIOManager,
    TraceIOManager,
)
from conversionflow_dagster.partitions import monthly_partitions
from conversionflow_dagster.resources import ProjectResource


def build_definitions(root: Path | None = None, config_file: Path | None = None) -> dg.Definitions:
    """Definitions for the project at ``root`` run with ``config_file``."""
    root = root or settings.project_root()
    config_file = config_file or settings.config_path(root)
    config = load_config(config_file)
    monthly = monthly_partitions(config)
    ingest = build_ingest_assets(config, monthly)
    names = {a.key.to_user_string() for a in ingest}
    assets = [
        *ingest,
        *build_model_assets(monthly),
        *build_export_assets(monthly),
        *build_allocation_assets(monthly),
        *build_report_assets(monthly),
    ]
    ingest_job = dg.define_asset_job(
        "ingest_job",
        selection=dg.AssetSelection.groups(GROUP),
        description="One month's raw events and spend, then the weekly panel over all months.",
    )
    automation = (
        [monthly_schedule(ingest_job, monthly)] if "raw_events" in names else [],
        [month_files_sensor(ingest_job, monthly)] if "raw_events" in names else [],
    )
    return dg.Definitions(
        assets=assets,
        asset_checks=[
            *build_ingest_checks(names, monthly),
            *build_trace_checks(config.model.gates, monthly),
            *build_allocation_checks(monthly),
        ],
        jobs=[ingest_job],
        schedules=automation[0],
        sensors=automation[1],
        executor=configured_executor(),
        resources={
            "project": ProjectResource(root=str(root), config_path=str(config_file)),
            "parquet_io": ParquetIOManager(base_dir=str(settings.storage_dir(root) / "assets")),
            "trace_io": TraceIOManager(base_dir=str(settings.storage_dir(root) / "assets")),
            "export_io": ExportIOManager(base_dir=str(settings.storage_dir(root) / "assets")),
            "json_io": JSONIOManager(base_dir=str(settings.storage_dir(root) / "assets")),
        },
    )


defs = build_definitions()
