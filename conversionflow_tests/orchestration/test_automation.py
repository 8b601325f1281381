"""Schedule and file-landing sensor, evaluated with Dagster's own contexts."""

import datetime as dt
import json
import os

import dagster as dg
import pytest

from conversionflow_dagster import automation
from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.runner import execute_plan, pipeline_plan
from conversionflow_tests.conftest import SMALL_MONTHS, asset_key


def defs_for(project):
    return build_definitions(project, project / "configs" / "test.yaml")


def evaluate_sensor(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("month_files_landed")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    ) as context:
        result = sensor(context)
    return result.run_requests, result.cursor


def drain(defs, instance, cursor=None):
    """Tick until the sensor requests nothing: each tick's requests, and the last cursor."""
    ticks = []
    while True:
        requests, cursor = evaluate_sensor(defs, instance, cursor)
        if not requests:
            return ticks, cursor
        ticks.append(requests)


def months_of(requests):
    return [r.partition_key[:7] for r in requests]


def add_late_row(project, month):
    """Late data for ``month``: one more conversion in its events file."""
    path = project / f"data/sample/events/{month}.csv"
    path.write_text(path.read_text() + f"C9999999,{month}-27T23:00:00,checkout,1,10.0\n")


@pytest.fixture
def cap_of_three(monkeypatch):
    """The small sample's five months are the cap plus two, whatever the shipped cap is."""
    monkeypatch.setattr(automation, "MAX_RUNS_PER_TICK", 3)
    assert len(SMALL_MONTHS) == 3 + 2


def test_sensor_requests_each_landed_month_once(project, instance, cap_of_three):
    defs = defs_for(project)
    assert defs.resolve_sensor_def("month_files_landed").default_status == (
        dg.DefaultSensorStatus.STOPPED
    )
    # Nothing ingested yet: every landed month is requested, three a tick, oldest first.
    ticks, cursor = drain(defs, instance)
    assert [len(requests) for requests in ticks] == [3, 2]
    requests = ticks[0] + ticks[1]
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


def test_turning_the_sensor_on_reruns_nothing_already_ingested(project, instance, cap_of_three):
    defs = defs_for(project)
    summary = execute_plan(defs, instance, pipeline_plan(SMALL_MONTHS, panel=False))
    assert summary.success, summary.failures()
    ingested = instance.get_materialized_partitions(asset_key("raw_events"))
    assert ingested == {f"{m}-01" for m in SMALL_MONTHS}

    # First tick: every month's files are there and were ingested, so nothing is launched.
    requests, cursor = evaluate_sensor(defs, instance)
    assert requests == []
    assert sorted(json.loads(cursor)) == SMALL_MONTHS
    assert evaluate_sensor(defs, instance, cursor)[0] == []

    # Late data for March afterwards: exactly March.
    add_late_row(project, "2023-03")
    late, cursor = evaluate_sensor(defs, instance, cursor)
    assert months_of(late) == ["2023-03"]

    # Five changed months with a cap of three: three now, the other two on the next tick.
    for month in SMALL_MONTHS:
        add_late_row(project, month)
    ticks, _ = drain(defs, instance, cursor)
    assert [months_of(requests) for requests in ticks] == [SMALL_MONTHS[:3], SMALL_MONTHS[3:]]


def test_the_automation_says_what_it_launches(project):
    defs = defs_for(project)
    for definition in (
        defs.resolve_schedule_def("monthly_refresh"),
        defs.resolve_sensor_def("month_files_landed"),
    ):
        text = definition.description
        assert "full_pipeline_job" in text and "<YYYY-MM>-01" in text, text
        assert "overwrites" in text and "posterior trace" in text, text
    sensor_text = defs.resolve_sensor_def("month_files_landed").description
    assert f"At most {automation.MAX_RUNS_PER_TICK} runs per tick" in sensor_text
    assert "already ingested" in sensor_text


def test_sensor_waits_until_both_files_of_a_month_exist(project, instance):
    (project / "data/sample/spend/2023-05.csv").unlink()
    ticks, _ = drain(defs_for(project), instance)
    assert [m for requests in ticks for m in months_of(requests)] == SMALL_MONTHS[:-1]


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
