"""Schedules and sensors: a monthly run for the last complete month, and a run per landed month.

Both are off until someone turns them on in the UI (or with `dagster schedule/sensor start`).
"""

import json
from typing import TYPE_CHECKING

import dagster as dg

from conversionflow_dagster.core.ingest.landing import changed_months, month_fingerprints
from conversionflow_dagster.core.months import previous_month
from conversionflow_dagster.partitions import month_key, month_of
from conversionflow_dagster.resources import ProjectResource

if TYPE_CHECKING:  # what define_asset_job returns; not exported at the top level
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def monthly_schedule(
    job: "UnresolvedAssetJobDefinition", monthly: dg.PartitionsDefinition
) -> dg.ScheduleDefinition:
    """On the 2nd of each month at 06:00, run the month that just ended."""

    @dg.schedule(
        name="monthly_refresh",
        job=job,
        cron_schedule="0 6 2 * *",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Runs the pipeline for the last complete month (2nd of the month, 06:00).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        month = previous_month(context.scheduled_execution_time.date())
        key = month_key(month)
        if not monthly.has_partition_key(key):
            return dg.SkipReason(f"{month} is outside the configured partitions")
        return dg.RunRequest(partition_key=key, run_key=f"monthly:{month}")

    return _schedule


def month_files_sensor(
    job: "UnresolvedAssetJobDefinition", monthly: dg.PartitionsDefinition
) -> dg.SensorDefinition:
    """Request a month's run when its event/spend files land or change.

    The cursor holds the content fingerprint of every month seen; run keys are
    ``<month>:<fingerprint>``, so a re-evaluation over unchanged files requests nothing and a
    repeated request for the same content is de-duplicated by Dagster.
    """

    @dg.sensor(
        name="month_files_landed",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Starts a month's run when its input files appear under data/ or change.",
    )
    def _sensor(context: dg.SensorEvaluationContext, project: ProjectResource):
        config = project.config()
        templates = [project.path(config.sources.events.path)] if config.sources.events else []
        if config.sources.spend is not None:
            templates.append(project.path(config.sources.spend.path))
        months = [month_of(key) for key in monthly.get_partition_keys()]
        previous = json.loads(context.cursor) if context.cursor else {}
        current = month_fingerprints(templates, months)
        requests = [
            dg.RunRequest(partition_key=month_key(month), run_key=f"{month}:{current[month]}")
            for month in changed_months(previous, current)
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))

    return _sensor
