"""The full pipeline on the shipped sample with the shipped config: a scoped report.

A file of its own so the two test workers share the long end-to-end tests evenly.
"""

import json
import shutil

import dagster as dg
import pandas as pd
import pytest
import yaml

from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.core.synthetic.events import SyntheticSpec, simulate, write_sample
from conversionflow_dagster.runner import execute_plan, pipeline_plan
from conversionflow_tests.conftest import REPO, asset_key


def defs_channels(root):
    return yaml.safe_load((root / "configs/default.yaml").read_text())["channels"]


@pytest.fixture(scope="module")
def sample_project(tmp_path_factory):
    """The default sample (156 weeks, 7 channels) with the shipped default config."""
    root = tmp_path_factory.mktemp("sample_project")
    write_sample(simulate(SyntheticSpec()), root / "data" / "sample")
    (root / "configs").mkdir()
    shutil.copy(REPO / "configs" / "default.yaml", root / "configs" / "default.yaml")
    return root


@pytest.mark.slow
def test_full_pipeline_on_the_sample_writes_a_scoped_report(sample_project, instance):
    defs = build_definitions(sample_project, sample_project / "configs" / "default.yaml")
    months = [f"{y}-{m:02d}" for y in (2023, 2024, 2025) for m in range(1, 13)]
    summary = execute_plan(
        defs, instance, pipeline_plan(months, fit_months=["2025-12"]), log_level="WARNING"
    )
    assert summary.success, summary.failures()

    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [
            dg.AssetCheckKey(asset_key(a), n)
            for a, n in [
                ("posterior_trace", "max_r_hat"),
                ("posterior_trace", "min_ess_bulk"),
                ("posterior_trace", "divergences"),
                ("budget_allocation", "budget_exact"),
                ("budget_allocation", "not_worse_than_referee"),
            ]
        ]
    )
    assert {c.status.value for c in checks.values()} == {"SUCCEEDED"}

    allocation = json.loads(
        (sample_project / "storage/assets/sample/budget_allocation/2025-12-01.json").read_text()
    )
    main = allocation["scenarios"][allocation["main_scenario"]]
    assert sum(c["optimised_spend"] for c in main["channels"]) == pytest.approx(2_500_000, rel=1e-6)
    assert main["optimised_response"] >= main["current_response"]

    report_dir = sample_project / "storage/reports/sample/2025-12"
    html = (report_dir / "attribution_report.html").read_text()
    document = json.loads((report_dir / "attribution_report.json").read_text())
    assert "5%" in html and "img" in html
    assert (report_dir / "attribution_report.csv").stat().st_size > 1000
    assert document  # the report's own tests compare its three formats number by number

    # Both generated lift tests fall in the fit window and calibrate it; the report says so.
    [trace] = instance.fetch_materializations(asset_key("posterior_trace"), limit=1).records
    used = trace.asset_materialization.metadata["lift_tests_used"].value
    assert used == "LT-01-display, LT-02-email"
    assert 'id="section-lift-tests"' in html and "Used in fit" in html
    # Customer value over 180 days for every paid channel, in the report's LTV:CAC table.
    value = pd.read_parquet(sample_project / "storage/assets/sample/customer_value.parquet")
    assert list(value["channel"]) == list(defs_channels(sample_project))
    assert (value["customers"] > 100).all() and (value["ltv_low"] < value["ltv_high"]).all()
    assert 'id="section-customer-value"' in html
