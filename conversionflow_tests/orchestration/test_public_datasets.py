"""Stage 1 on the bundled public datasets: the gates pass and hold-out fit is reported."""

import shutil

import pytest

from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.runner import execute_plan, pipeline_plan
from conversionflow_tests.conftest import REPO, asset_key

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("config", "dataset", "month"),
    [
        ("meridian_national.yaml", "meridian", "2024-01"),
        ("robyn_weekly.yaml", "robyn", "2019-10"),
        ("pymc_marketing_example.yaml", "pymc_marketing", "2021-08"),
    ],
)
def test_stage1_passes_the_gates_with_holdout_metrics(tmp_path, instance, config, dataset, month):
    shutil.copytree(REPO / "data/public" / dataset, tmp_path / "data/public" / dataset)
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / config, tmp_path / "configs" / config)
    defs = build_definitions(tmp_path, tmp_path / "configs" / config)
    plan = pipeline_plan([], fit_months=[month], stage2=False)
    summary = execute_plan(defs, instance, plan, log_level="WARNING")
    assert summary.success, summary.failures()
    project = config.removesuffix(".yaml")  # each bundled config's project name
    trace_key = asset_key("posterior_trace", project)
    [record] = instance.fetch_materializations(trace_key, limit=1).records
    metadata = record.asset_materialization.metadata
    assert metadata["holdout_crps"].value > 0
    assert 0 < metadata["holdout_mape"].value < 0.5
    assert metadata["max_r_hat"].value <= 1.01
    assert metadata["divergences"].value == 0
    assert (tmp_path / f"storage/assets/{project}/parameter_export/{month}-01.json").is_file()
