"""Retry policies retry I/O faults only: a deterministic failure of a retried asset (bad config,
bad input, a ValueError) makes exactly one attempt and says what is wrong."""

import dagster as dg
import pytest

from conversionflow_dagster.assets import ingest
from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.runner import PlannedRun, execute_plan, pipeline_plan
from conversionflow_tests.conftest import SMALL_MONTHS

PANEL_RUN = [PlannedRun("panel", ("weekly_panel",))]


@pytest.fixture
def ingested(project, instance):
    """The small project with two months ingested; the panel not built yet."""
    defs = build_definitions(project, project / "configs/test.yaml")
    assert execute_plan(defs, instance, pipeline_plan(SMALL_MONTHS[:2], panel=False)).success
    return defs


def panel_attempts(instance) -> int:
    """How many times the latest run started the weekly_panel step (a retry restarts it)."""
    run = instance.get_runs(limit=1)[0]
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_RESTARTED}
    starts = instance.all_logs(run.run_id, of_type=kinds)
    return sum(1 for event in starts if event.step_key.endswith("weekly_panel"))


def test_a_plain_value_error_is_not_retried(ingested, instance, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("weeks out of order")

    monkeypatch.setattr(ingest, "build_panel_from_events", broken)
    summary = execute_plan(ingested, instance, PANEL_RUN)
    assert summary.failures()["panel"] == ["weekly_panel: ValueError: weeks out of order"]
    assert panel_attempts(instance) == 1


def test_a_config_broken_between_runs_is_not_retried(ingested, instance, project):
    (project / "configs/test.yaml").write_text("project: [unclosed\n")
    summary = execute_plan(ingested, instance, PANEL_RUN)
    [reason] = summary.failures()["panel"]
    assert "test.yaml: not valid YAML at line" in reason
    assert panel_attempts(instance) == 1


def test_an_io_fault_is_still_retried(ingested, instance, monkeypatch):
    def flaky(*args, **kwargs):
        raise OSError("storage unavailable")

    monkeypatch.setattr(ingest, "build_panel_from_events", flaky)
    assert not execute_plan(ingested, instance, PANEL_RUN).success
    assert panel_attempts(instance) == 1 + ingest.IO_RETRY.max_retries
