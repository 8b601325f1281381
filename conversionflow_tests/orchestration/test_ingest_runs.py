"""Ingest through real Dagster runs on a real (SQLite) instance, with files on disk."""

import shutil

import dagster as dg
import numpy as np
import pandas as pd

from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.core.ingest.panel import read_panel
from conversionflow_dagster.runner import execute_plan, pipeline_plan
from conversionflow_tests.conftest import REPO, SMALL_MONTHS, asset_key, write_config


def defs_for(root, config="configs/test.yaml"):
    return build_definitions(root, root / config)


def materialised_partitions(instance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(asset_key(asset)))


def test_backfill_over_months_builds_the_panel_with_every_check_passing(
    project, instance, small_sample
):
    summary = execute_plan(defs_for(project), instance, pipeline_plan(SMALL_MONTHS))
    assert summary.success, summary.failures()
    assert list(summary.runs) == [
        *(f"ingest {m}" for m in SMALL_MONTHS),
        "panel",
        "lift tests",
        "customer value",
    ]
    expected = {f"{m}-01" for m in SMALL_MONTHS}
    assert materialised_partitions(instance, "raw_events") == expected
    assert materialised_partitions(instance, "raw_spend") == expected

    records = instance.fetch_materializations(asset_key("weekly_panel"), limit=5).records
    assert len(records) == 1
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [
            dg.AssetCheckKey(asset_key(a), n)
            for a, n in [("weekly_panel", "no_missing_weeks"), ("weekly_panel", "totals_reconcile")]
        ]
    )
    assert all(c.status.value == "SUCCEEDED" for c in checks.values())

    panel = read_panel(project / "storage" / "assets" / "sample" / "weekly_panel.parquet")
    truth = small_sample.weekly.loc[panel.weeks]
    assert len(panel.frame) == 21
    assert panel.frame["conversions"].sum() == truth["conversions"].sum()
    np.testing.assert_allclose(
        panel.spend().sum().sum(), truth.filter(like="spend__").sum().sum(), rtol=1e-9
    )
    raw = pd.read_parquet(
        project / "storage" / "assets" / "sample" / "raw_events" / "2023-02-01.parquet"
    )
    assert (raw["timestamp"].dt.month == 2).all()


def test_a_failing_blocking_check_stops_the_panel(project, instance):
    path = project / "data/sample/events/2023-02.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[5]]) + "\n")  # one duplicated event
    summary = execute_plan(defs_for(project), instance, pipeline_plan(SMALL_MONTHS[:3]))
    failed = summary.failures()
    assert list(failed) == ["ingest 2023-02"]
    assert any(
        "raw_events.no_duplicate_events" in r and "2023-02.csv line" in r
        for r in failed["ingest 2023-02"]
    )
    assert summary.skipped == ["panel", "customer value"]
    # the other months still ran; the panel did not
    assert materialised_partitions(instance, "raw_events") >= {"2023-01-01", "2023-03-01"}
    assert not instance.fetch_materializations(asset_key("weekly_panel"), limit=1).records


def test_a_refused_month_never_reaches_the_panel_until_it_is_fixed(project, instance):
    """A month refused by its rules keeps the previous good file, and later runs' panels are
    built without the refused rows; once fixed, the month is stored again."""
    defs = defs_for(project)
    assert execute_plan(defs, instance, pipeline_plan(SMALL_MONTHS)).success
    stored = project / "storage/assets/sample/raw_events/2023-02-01.parquet"
    panel_file = project / "storage/assets/sample/weekly_panel.parquet"
    good_month, good_panel = stored.read_bytes(), read_panel(panel_file).frame

    path = project / "data/sample/events/2023-02.csv"
    clean = path.read_text()
    lines = clean.splitlines()
    path.write_text("\n".join([*lines, lines[5], lines[6]]) + "\n")  # two duplicated events
    refused = execute_plan(defs, instance, pipeline_plan(["2023-02"]))
    [reason] = refused.failures()["ingest 2023-02"]
    assert reason.startswith("raw_events.no_duplicate_events: 2 of")
    assert "refused, nothing stored" in reason
    assert stored.read_bytes() == good_month
    # A clean later month rebuilds the panel from what is stored: February's good rows only.
    assert execute_plan(defs, instance, pipeline_plan(["2023-03"])).success
    pd.testing.assert_frame_equal(read_panel(panel_file).frame, good_panel)

    path.write_text(clean)
    assert execute_plan(defs, instance, pipeline_plan(["2023-02"])).success
    pd.testing.assert_frame_equal(read_panel(panel_file).frame, good_panel)


def test_bad_input_fails_without_retry_and_keeps_the_previous_file(project, instance):
    defs = defs_for(project)
    january = pipeline_plan(["2023-01"], panel=False)
    assert execute_plan(defs, instance, january).success
    stored = project / "storage/assets/sample/raw_events/2023-01-01.parquet"
    before = stored.read_bytes()

    path = project / "data/sample/events/2023-01.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("2023-01", "2023/01")
    path.write_text("\n".join(lines) + "\n")
    summary = execute_plan(defs, instance, january)
    reasons = summary.failures()["ingest 2023-01"]
    assert any("2023-01.csv, line 4, column 'timestamp'" in r for r in reasons), reasons
    assert stored.read_bytes() == before
    assert len(pd.read_parquet(stored)) > 0
    attempts = [r for r in instance.get_runs() if r.tags.get("dagster/partition") == "2023-01-01"]
    assert len(attempts) == 2  # one run each time: the bad file was not retried in a new run
    assert not list(stored.parent.glob(".*.tmp"))


def test_panel_route_materialises_from_config_alone(instance, tmp_path):
    root = tmp_path / "meridian"
    (root / "configs").mkdir(parents=True)
    shutil.copytree(REPO / "data/public/meridian", root / "data/public/meridian")
    (root / "configs" / "m.yaml").write_text((REPO / "configs/meridian_national.yaml").read_text())
    defs = defs_for(root, "configs/m.yaml")
    keys = {k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "raw_events" not in keys and "weekly_panel" in keys
    summary = execute_plan(defs, instance, pipeline_plan([]))
    assert summary.success, summary.failures()
    panel = read_panel(root / "storage/assets/meridian_national/weekly_panel.parquet")
    assert len(panel.frame) == 156


def test_a_one_month_project_builds_its_panel_from_a_single_events_file(project, instance):
    """One monthly partition: Dagster hands a lone partition over as the table itself, which
    once made the panel read its column names as partition keys."""
    shutil.copy(project / "data/sample/events/2023-02.csv", project / "data/sample/events.csv")
    write_config(
        project,
        **{
            "project.partitions": {"start_month": "2023-02", "end_month": "2023-02"},
            "sources.events.path": "data/sample/events.csv",
        },
    )
    summary = execute_plan(defs_for(project), instance, pipeline_plan(["2023-02"]))
    assert summary.success, summary.failures()
    panel = read_panel(project / "storage/assets/sample/weekly_panel.parquet")
    # February 2023 starts on a Wednesday: its complete weeks start Feb 6, 13 and 20.
    assert [str(w.date()) for w in panel.weeks] == ["2023-02-06", "2023-02-13", "2023-02-20"]
    assert panel.frame["conversions"].sum() > 0
    assert instance.fetch_materializations(asset_key("customer_value"), limit=1).records


def test_too_short_a_history_is_refused_naming_the_weeks_it_has_and_needs(project, instance):
    write_config(
        project, **{"project.partitions": {"start_month": "2023-01", "end_month": "2023-02"}}
    )
    months = ["2023-01", "2023-02"]
    plan = pipeline_plan(months, fit_months=["2023-02"], stage2=False)
    summary = execute_plan(defs_for(project), instance, plan)
    [reason] = summary.failures()["stage 1 2023-02"]
    assert (
        "up to the end of 2023-02 the data has 8 complete week(s); the model needs at least 9"
        in reason
    )
    assert "model.holdout_weeks" in reason
    assert not instance.fetch_materializations(asset_key("posterior_trace"), limit=1).records
