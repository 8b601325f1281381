"""How the code location is assembled from a project root and its config.

The asset graph and its partitions follow the project config (``CONVERSIONFLOW_CONFIG``), so
pointing the location at another config (another data route, other months) changes no code.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

from conversionflow_dagster import settings
from conversionflow_dagster.asset_names import CAMPAIGN_LIFT_TESTS, POSTERIOR_TRACE, RAW_EVENTS
from conversionflow_dagster.assets.allocation import GROUP as ALLOCATION
from conversionflow_dagster.assets.allocation import MARKETS_GROUP as MARKETS
from conversionflow_dagster.assets.allocation import build_allocation_assets
from conversionflow_dagster.assets.experiments import GROUP as EXPERIMENTS
from conversionflow_dagster.assets.experiments import build_experiment_assets
from conversionflow_dagster.assets.ingest import GROUP as INGEST
from conversionflow_dagster.assets.ingest import build_ingest_assets
from conversionflow_dagster.assets.model import GROUP as MODEL
from conversionflow_dagster.assets.model import build_export_assets, build_model_assets
from conversionflow_dagster.assets.report import GROUP as REPORT
from conversionflow_dagster.assets.report import build_report_assets
from conversionflow_dagster.automation import month_files_sensor, monthly_schedule
from conversionflow_dagster.checks.asset_checks import (
    build_allocation_checks,
    build_ingest_checks,
    build_trace_checks,
)
from conversionflow_dagster.core.config import load_config
from conversionflow_dagster.executors import configured_executor
from conversionflow_dagster.io_managers import AssetFilesIOManager
from conversionflow_dagster.partitions import pipeline_partitions
from conversionflow_dagster.resources import ProjectResource

IO_MANAGERS = {
    "parquet_io": "parquet",
    "trace_io": "netcdf",
    "export_io": "export",
    "json_io": "json",
}


def pipeline_jobs(markets: bool = False, project_key: str = "", pooled: bool = False) -> list:
    """Jobs per stage, as the original tool's flags split the work, and the whole pipeline.

    A job runs one partition, so with markets (panel per market, fits per market x month) the
    panel stays out of the fitting jobs and the cross-market allocation has a job of its own.
    With ``pooled`` markets the fit (one per month, every market) has its own job too, and
    stage 1 and the full pipeline start from the month's stored pooled trace.
    Every run of them is tagged with the project's key.
    """
    tags = {settings.PROJECT_TAG: project_key} if project_key else None
    ingest = dg.AssetSelection.groups(INGEST, EXPERIMENTS)
    model = dg.AssetSelection.groups(MODEL)
    fit = []
    if pooled:
        trace = dg.AssetSelection.assets(
            dg.AssetKey([project_key, POSTERIOR_TRACE]) if project_key else POSTERIOR_TRACE
        )
        model = model - trace
        fit = [
            dg.define_asset_job(
                "pooled_fit_job",
                selection=trace,
                description="One month's hierarchical fit of every market at once (the "
                "posterior trace); stage1_job then exports each market's parameters from it.",
                tags=tags,
            )
        ]
    stage1 = model if markets else ingest | model
    # The report reads the lift tests and customer value: seconds to rebuild, so stage 2 does.
    stage2 = dg.AssetSelection.groups(EXPERIMENTS, ALLOCATION, REPORT)
    across = [
        dg.define_asset_job(
            "market_allocation_job",
            selection=dg.AssetSelection.groups(MARKETS),
            description="One month's total budget split over every market and channel.",
            tags=tags,
        )
    ]
    stage1_text = (
        "One market's parameter export for the month, from the month's pooled trace."
        if pooled
        else "Ingest, fit the model as of the month, export its parameters."
    )
    return [
        *(across if markets else []),
        *fit,
        dg.define_asset_job(
            "ingest_job",
            selection=ingest,
            description="One month's raw events and spend, the weekly panel, lift tests and "
            "customer value.",
            tags=tags,
        ),
        dg.define_asset_job("stage1_job", selection=stage1, description=stage1_text, tags=tags),
        dg.define_asset_job(
            "stage2_job",
            selection=stage2,
            description="Allocation and report from the month's stored parameter export "
            "(no refit: seconds).",
            tags=tags,
        ),
        dg.define_asset_job(
            "full_pipeline_job",
            selection=stage1 | stage2,
            description="Everything after the pooled fit, for one market and month."
            if pooled
            else "Everything, for one month.",
            tags=tags,
        ),
    ]


# Re-keyed checks are rebuilt by Dagster with a beta constructor argument; nothing to act on.
warnings.filterwarnings("ignore", message="Parameter `execution_type`", category=dg.BetaWarning)


def in_namespace(definitions: list, project_key: str) -> list:
    """The same assets (or checks) with every asset key, and every key they read, prefixed by
    the project's key: two projects share one instance and one asset folder without meeting."""
    names = {
        key
        for d in definitions
        for key in (*d.keys, *d.keys_by_input_name.values(), *(c.asset_key for c in d.check_keys))
    }
    replacements = {key: key.with_prefix(project_key) for key in names}
    return [d.with_attributes(asset_key_replacements=replacements) for d in definitions]


def build_definitions(root: Path | None = None, config_file: Path | None = None) -> dg.Definitions:
    """Definitions for the project at ``root`` run with ``config_file``."""
    root = root or settings.project_root()
    config_file = config_file or settings.config_path(root)
    config = load_config(config_file)
    parts = pipeline_partitions(config)
    monthly = parts.monthly
    ingest = build_ingest_assets(config, parts)
    names = {a.key.to_user_string() for a in ingest}
    experiments = build_experiment_assets(config)
    extras = tuple(a.key.to_user_string() for a in experiments)
    calibrate = CAMPAIGN_LIFT_TESTS in extras and config.experiments.calibrate
    assets = [
        *ingest,
        *experiments,
        *build_model_assets(parts, calibrate),
        *build_export_assets(parts),
        *build_allocation_assets(parts),
        *build_report_assets(parts, extras),
    ]
    key = config.project.key
    jobs = pipeline_jobs(markets=parts.markets is not None, project_key=key, pooled=parts.pooled)
    full_job = jobs[-1]
    automation = (
        [monthly_schedule(full_job, monthly)] if RAW_EVENTS in names else [],
        [month_files_sensor(full_job, monthly)] if RAW_EVENTS in names else [],
    )
    checks = [
        *build_ingest_checks(names, parts),
        *build_trace_checks(parts.trace),
        *build_allocation_checks(parts),
    ]
    assets_dir = str(settings.assets_dir(root))
    return dg.Definitions(
        assets=in_namespace(assets, key),
        asset_checks=in_namespace(checks, key),
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
