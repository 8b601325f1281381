"""Lift tests and customer value as assets: materialised from files, refused with the line."""

import pandas as pd

from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.runner import execute_plan, pipeline_plan
from conversionflow_tests.conftest import SMALL_MONTHS, asset_key, write_config


def test_lift_tests_and_customer_value_materialise_after_the_panel(project, instance):
    config = write_config(project, **{"customer_value.horizon_days": 60})
    defs = build_definitions(project, config)
    summary = execute_plan(defs, instance, pipeline_plan(SMALL_MONTHS))
    assert summary.success, summary.failures()

    tests = pd.read_parquet(project / "storage/assets/sample/campaign_lift_tests.parquet")
    source = pd.read_csv(project / "data/sample/lift_tests.csv")
    assert list(tests["test_id"]) == list(source["test_id"])
    rates = source["test_conversions"] / source["test_size"]
    assert tests["test_rate"].tolist() == rates.tolist()
    assert tests["p_value"].between(0, 1).all() and tests["p_test_better"].between(0, 1).all()

    value = pd.read_parquet(project / "storage/assets/sample/customer_value.parquet")
    assert len(value) == 7 and (value["customers"] > 0).all()
    [record] = instance.fetch_materializations(asset_key("customer_value"), limit=1).records
    metadata = record.asset_materialization.metadata
    assert metadata["horizon_days"].value == 60
    assert metadata["cohort_start"].value == "2023-01-02"


def test_too_little_history_for_the_horizon_is_a_note_not_a_failure(project, instance):
    defs = build_definitions(project, project / "configs/test.yaml")  # 180 days > 22 weeks
    summary = execute_plan(defs, instance, pipeline_plan(SMALL_MONTHS))
    assert summary.success, summary.failures()
    [record] = instance.fetch_materializations(asset_key("customer_value"), limit=1).records
    assert "needs that plus a week" in record.asset_materialization.metadata["note"].value
    assert pd.read_parquet(project / "storage/assets/sample/customer_value.parquet").empty


def test_an_impossible_lift_test_stops_the_fit_and_names_the_line(project, instance):
    path = project / "data/sample/lift_tests.csv"
    tests = pd.read_csv(path)
    tests.loc[1, "test_conversions"] = tests.loc[1, "test_size"] + 1
    tests.to_csv(path, index=False)
    defs = build_definitions(project, project / "configs/test.yaml")
    plan = pipeline_plan(SMALL_MONTHS, fit_months=["2023-05"])
    summary = execute_plan(defs, instance, plan)
    [reason] = summary.failures()["lift tests"]
    assert "lift_tests.csv, line 3, column 'test_conversions'" in reason
    assert "at most test_size" in reason
    assert summary.skipped == ["stage 1 2023-05", "stage 2 2023-05"]
