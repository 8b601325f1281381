"""How the code location is assembled from a project root and its config.

The asset graph and its partitions follow the project config (``CONVERSIONFLOW_CONFIG``), so
pointing the location at another config (another data route, other months) changes no code.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from conversionflow_dagster import settings
from conversionflow_dagster.assets.allocation import GROUP as ALLOCATION
from conversionflow_dagster.assets.allocation import build_allocation_assets
from conversionflow_dagster.assets.ingest import GROUP as INGEST
from conversionflow_dagster.assets.ingest import build_ingest_assets
from conversionflow_dagster.assets.model import GROUP as MODEL
from conversionflow_dagster.assets.model import build_export_assets, build_model_assets
from conversionflow_dagster.assets.report import GROUP as REPORT
from conversionflow_dagster.assets.report import build_report_assets
from conversionflow_dagster.automation import month_files_sensor, monthly_schedule
from conversionflow_dagster.checks.rules import (
    build_allocation_checks,
    build_ingest_checks,
    build_trace_checks,
)
from conversionflow_dagster.core.config import load_config
from conversionflow_dagster.executors import configured_executor
from conversionflow_dagster.io_managers import AssetFilesIOManager
from conversionflow_dagster.partitions import monthly_partitions
from conversionflow_dagster.resources import ProjectResource

IO_MANAGERS = {
    "parquet_io": "parquet",
    "trace_io": "netcdf",
    "export_io": "export",
    "json_io": "json",
}


def pipeline_jobs() -> list:
    """Jobs per stage, as the original tool's flags split the work, and the whole pipeline."""
    ingest = dg.AssetSelection.groups(INGEST)
    stage1 = ingest | dg.AssetSelection.groups(MODEL)
    stage2 = dg.AssetSelection.groups(ALLOCATION, REPORT)
    return [
        dg.define_asset_job(
            "ingest_job",
            selection=ingest,
            description="One month's raw events and spend, then the weekly panel.",
        ),
        dg.define_asset_job(
            "stage1_job",
            selection=stage1,
            description="Ingest, fit the model as of the month, export its parameters.",
        ),
        dg.define_asset_job(
            "stage2_job",
            selection=stage2,
            description="Allocation and report from the month's stored parameter export "
            "(no refit: seconds).",
        ),
        dg.define_asset_job(
            "full_pipeline_job",
            selection=stage1 | stage2,
            description="Everything, for one month.",
        ),
    ]


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
    jobs = pipeline_jobs()
    full_job = jobs[-1]
    automation = (
        [monthly_schedule(full_job, monthly)] if "raw_events" in names else [],
        [month_files_sensor(full_job, monthly)] if "raw_events" in names else [],
    )
    assets_dir = str(settings.storage_dir(root) / "assets")
    return dg.Definitions(
        assets=assets,
        asset_checks=[
            *build_ingest_checks(names, monthly),
            *build_trace_checks(config.model.gates, monthly),
            *build_allocation_checks(monthly),
        ],
        jobs=jobs,
        schedules=automation[0],
        sensors=automation[1],
        executor=configured_executor(),
        resources={
            "project": ProjectResource(root=str(root), config_path=str(config_file)),
            **{
                key: AssetFilesIOManager(base_dir=assets_dir, format=fmt)
                for key, fmt in IO_MANAGERS.items()
            },
        },
    )
