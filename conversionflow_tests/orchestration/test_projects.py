"""Two projects in one checkout and one instance never read or write each other's files."""

import json

from conversionflow_dagster.cli import latest_export_month
from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.runner import execute_plan, pipeline_plan
from conversionflow_dagster.settings import PROJECT_TAG
from conversionflow_tests.conftest import (
    LOOSE_GATES,
    SHORT_FIT,
    SMALL_MONTHS,
    asset_key,
    write_config,
)

SHORT_RUN = {"posterior_trace": SHORT_FIT}


def test_two_projects_interleaved_keep_their_own_files_reports_and_runs(project, instance):
    configs = {
        "alpha": write_config(
            project,
            "alpha.yaml",
            **{"project.name": "Alpha", "model.gates": LOOSE_GATES, "optimisation.budget": 1e6},
        ),
        "beta": write_config(
            project,
            "beta.yaml",
            **{"project.name": "Beta", "model.gates": LOOSE_GATES, "optimisation.budget": 3e6},
        ),
    }
    defs = {key: build_definitions(project, path) for key, path in configs.items()}

    def run(key, plan):
        summary = execute_plan(defs[key], instance, plan, asset_config=SHORT_RUN)
        assert summary.success, (key, summary.failures())

    # Interleaved: alpha ingests, beta ingests and fits, then alpha fits and allocates.
    run("alpha", pipeline_plan(SMALL_MONTHS))
    run("beta", pipeline_plan(SMALL_MONTHS, fit_months=["2023-05"]))
    run("alpha", pipeline_plan([], fit_months=["2023-04"]))
    # Stage 2 of beta again, after alpha's runs: it reads its own export, not alpha's.
    run("beta", pipeline_plan([], fit_months=["2023-05"], stage1=False))

    for key, budget, month in (("alpha", 1e6, "2023-04"), ("beta", 3e6, "2023-05")):
        assets = project / "storage/assets" / key
        assert sorted(p.stem for p in (assets / "parameter_export").glob("*.json")) == [
            f"{month}-01"
        ]
        allocation = json.loads((assets / f"budget_allocation/{month}-01.json").read_text())
        assert allocation["main_budget"] == budget
        report = json.loads(
            (project / f"storage/reports/{key}/{month}/attribution_report.json").read_text()
        )
        assert report["project"] == key.capitalize()
        assert latest_export_month(project, key, []) == month
        partitions = instance.get_materialized_partitions(asset_key("posterior_trace", key))
        assert partitions == {f"{month}-01"}
    # Every run is tagged with its project, and each project's assets come from its own runs.
    assert {r.tags[PROJECT_TAG] for r in instance.get_runs()} == {"alpha", "beta"}
    for key in ("alpha", "beta"):
        for name in ("raw_events", "weekly_panel", "posterior_trace", "attribution_report"):
            records = instance.fetch_materializations(asset_key(name, key), limit=100).records
            assert records, (key, name)
            tags = {instance.get_run_by_id(r.run_id).tags[PROJECT_TAG] for r in records}
            assert tags == {key}, (key, name)
    assert not (project / "storage/assets/sample").exists()
