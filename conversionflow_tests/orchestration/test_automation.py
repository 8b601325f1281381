"""Schedule and file-landing sensor, evaluated with Dagster's own contexts."""

import datetime as dt
import json
import os

import dagster as dg

from conversionflow_dagster.code_location import build_definitions
from conversionflow_tests.conftest import SMALL_MONTHS


def defs_for(project):
    return build_definitions(project, project / "configs" / "test.yaml")


def evaluate_sensor(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("month_files_landed")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    ) as context:
        result = sensor(context)
    return result.run_requests, result.cursor


def test_sensor_requests_each_landed_month_once(project, instance):
    defs = defs_for(project)
    assert defs.resolve_sensor_def("month_files_landed").default_status == (
        dg.DefaultSensorStatus.STOPPED
    )
    requests, cursor = evaluate_sensor(defs, instance)
    # June's files exist too, but June is outside the configured months
    assert [r.partition_key for r in requests] == [f"{m}-01" for m in SMALL_MONTHS]
    assert len({r.run_key for r in requests}) == len(SMALL_MONTHS)

    again, cursor2 = evaluate_sensor(defs, instance, cursor)
    assert again == [] and json.loads(cursor2) == json.loads(cursor)

    # touching a file without changing it starts nothing
    path = project / "data/sample/events/2023-03.csv"
    os.utime(path, None)
    assert evaluate_sensor(defs, instance, cursor)[0] == []

    # late data for March: exactly one run, for March, with a new run key
    path.write_text(path.read_text() + "C9999999,2023-03-31T23:00:00,checkout,1,10.0\n")
    late, _ = evaluate_sensor(defs, instance, cursor)
    assert [r.partition_key for r in late] == ["2023-03-01"]
    assert late[0].run_key not in {r.run_key for r in requests}


def test_sensor_waits_until_both_files_of_a_month_exist(project, instance):
    (project / "data/sample/spend/2023-05.csv").unlink()
    requests, _ = evaluate_sensor(defs_for(project), instance)
    assert "2023-05-01" not in [r.partition_key for r in requests]


def test_monthly_schedule_runs_the_last_complete_month(project, instance):
    defs = defs_for(project)
    schedule = defs.resolve_schedule_def("monthly_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 6 2 * *"
    when = dt.datetime(2023, 4, 2, 6, 0, tzinfo=dt.UTC)
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        repository_def=defs.get_repository_def(),
    ) as context:
        result = schedule.evaluate_tick(context)
    assert [r.partition_key for r in result.run_requests] == ["2023-03-01"]


def test_monthly_schedule_skips_months_outside_the_partitions(project, instance):
    defs = defs_for(project)
    schedule = defs.resolve_schedule_def("monthly_refresh")
    when = dt.datetime(2024, 1, 2, 6, 0, tzinfo=dt.UTC)
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        repository_def=defs.get_repository_def(),
    ) as context:
        result = schedule.evaluate_tick(context)
    assert not result.run_requests
    assert "2023-12 is outside the configured partitions" in result.skip_message
