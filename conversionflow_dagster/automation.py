"""Schedules and sensors: a monthly run for the last complete month, and a run per landed month.

Both are off until someone turns them on in the UI (or with `dagster schedule/sensor start`),
and turning them on is safe: the sensor's first evaluation does not re-run months that were
already ingested, and no tick launches more than :data:`MAX_RUNS_PER_TICK` runs.
"""

import json
from typing import TYPE_CHECKING

import dagster as dg

from conversionflow_dagster.asset_names import RAW_EVENTS
from conversionflow_dagster.core.ingest.landing import changed_months, month_fingerprints
from conversionflow_dagster.core.months import previous_month
from conversionflow_dagster.partitions import month_key, month_of
from conversionflow_dagster.resources import ProjectResource

if TYPE_CHECKING:  # what define_asset_job returns; not exported at the top level
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

# Each run refits a model (minutes of CPU): a tick launches at most this many, the rest of the
# landed months follow on the next ticks.
MAX_RUNS_PER_TICK = 3
_OVERWRITES = (
    "and overwrites that month's partitions of every asset in the job (raw events and spend, "
    "posterior trace, parameter export, budget allocation), the weekly panel, lift tests and "
    "customer value, and the month's report for the configured budget with its latest copy "
    "(reports made for other budgets are kept)"
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
        description=f"On the 2nd of each month at 06:00 UTC, launches {job.name} for the "
        f"month that just ended (partition <YYYY-MM>-01, e.g. 2024-03-01 on 2 April) "
        f"{_OVERWRITES}. Skips months outside the configured partitions.",
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

    The cursor holds the content fingerprint of every month handled; run keys are
    ``<month>:<fingerprint>``, so a re-evaluation over unchanged files requests nothing and a
    repeated request for the same content is de-duplicated by Dagster.

    The first evaluation (no cursor) records the files already there and requests only the
    months the instance has never ingested (no materialisation of their ``raw_events``
    partition). Turning the sensor on in a live deployment therefore refits nothing that is
    already done, while months whose files are waiting but were never run still get their run;
    "launch nothing at all" would leave those waiting until their files change. A tick requests
    at most :data:`MAX_RUNS_PER_TICK` months, oldest first, and the cursor advances only for
    those, so the rest are requested on the next ticks.
    """

    @dg.sensor(
        name="month_files_landed",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"When a month's event and spend files appear or their content changes, "
        f"launches {job.name} for that month (partition <YYYY-MM>-01) {_OVERWRITES}. "
        f"At most {MAX_RUNS_PER_TICK} runs per tick; on its first tick it launches nothing for "
        "months already ingested.",
    )
    def _sensor(context: dg.SensorEvaluationContext, project: ProjectResource):
        config = project.config()
        templates = [project.path(config.sources.events.path)] if config.sources.events else []
        if config.sources.spend is not None:
            templates.append(project.path(config.sources.spend.path))
        months = [month_of(key) for key in monthly.get_partition_keys()]
        current = month_fingerprints(templates, months)
        if context.cursor:
            previous = json.loads(context.cursor)
        else:  # first tick: what was already ingested counts as handled
            ingested = context.instance.get_materialized_partitions(
                dg.AssetKey([config.project.key, RAW_EVENTS])
            )
            previous = {m: f for m, f in current.items() if month_key(m) in ingested}
        requested = changed_months(previous, current)[:MAX_RUNS_PER_TICK]
        cursor = {m: f for m, f in previous.items() if m in current}
        cursor.update({m: current[m] for m in requested})
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(partition_key=month_key(m), run_key=f"{m}:{current[m]}")
                for m in requested
            ],
            cursor=json.dumps(cursor, sort_keys=True),
        )

    return _sensor
