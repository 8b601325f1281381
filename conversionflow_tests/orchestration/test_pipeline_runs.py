"""Stage 1 and 2 through real Dagster runs: gates block, the full pipeline writes a report."""

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import yaml

from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.runner import SOURCE_TAG, execute_plan, pipeline_plan
from conversionflow_dagster.settings import PROJECT_TAG
from conversionflow_tests.conftest import (
    LOOSE_GATES,
    REPO,
    SHORT_FIT,
    SMALL_MONTHS,
    asset_key,
    write_config,
)


def test_a_too_short_fit_climbs_the_ladder_then_fails_and_shows_as_failed(project, instance):
    """A fit that fails its gates on every rung of the convergence ladder is refused: the month
    shows as failed (so a "failed and missing" backfill picks it up), the message says what
    failed and what to try, the refused trace is kept aside, and nothing downstream runs."""
    defs = build_definitions(project, project / "configs" / "test.yaml")
    plan = pipeline_plan(SMALL_MONTHS, fit_months=["2023-05"])
    # target_accept from the run config: the ladder climbs to 0.99, then a deeper tree
    short = {"posterior_trace": {"chains": 2, "warmup": 20, "draws": 20, "target_accept": 0.95}}
    summary = execute_plan(defs, instance, plan, asset_config=short)
    [reason] = summary.failures()["stage 1 2023-05"]
    assert "failed its convergence gates after 3 fits of the convergence ladder" in reason
    assert "target_accept 0.99, max_tree_depth 12, warm-up 40" in reason
    assert "parameter(s) fail 'R-hat <= threshold'" in reason and "run longer" in reason
    kept = project / "storage/assets/sample/posterior_trace/failed/2023-05-01.nc"
    assert f"kept for inspection at {kept}" in reason and kept.is_file()
    assert summary.skipped == ["stage 2 2023-05"]

    key = asset_key("posterior_trace")
    assert not instance.get_materialized_partitions(key)
    fits = defs.resolve_assets_def(key).partitions_def
    status = instance.get_status_by_partition(key, ["2023-05-01", "2023-04-01"], fits)
    assert status == {"2023-05-01": dg.AssetPartitionStatus.FAILED, "2023-04-01": None}
    for asset in ("parameter_export", "budget_allocation", "attribution_report"):
        assert not instance.get_materialized_partitions(asset_key(asset)), asset

    [failure] = [
        e for e in instance.all_logs(instance.get_runs(limit=1)[0].run_id)
        if e.dagster_event and e.dagster_event.is_step_failure
    ]
    metadata = failure.dagster_event.step_failure_data.user_failure_data.metadata
    table = metadata["convergence_ladder"].value
    assert table.count("| fail |") == 3 and "| 0 | 0.95 | 10 | 20 |" in table
    assert "| 2 | 0.99 | 12 | 40 |" in table


def defs_channels(root):
    return yaml.safe_load((root / "configs/default.yaml").read_text())["channels"]


def test_the_launchpad_describes_every_run_config_field(project):
    """Analysts set budgets and sampler settings in the launchpad: each field says its unit
    and what happens when it is left out."""
    defs = build_definitions(project, project / "configs" / "test.yaml")
    for name in ("posterior_trace", "budget_allocation", "attribution_report"):
        fields = defs.resolve_assets_def(asset_key(name)).op.config_schema.config_type.fields
        assert fields, name
        for field_name, field in fields.items():
            assert "default: " in (field.description or ""), (name, field_name)
    budget = defs.resolve_assets_def(asset_key("budget_allocation")).op.config_schema
    assert "Money over horizon_weeks" in budget.config_type.fields["budget"].description


SHORT_RUN = {"posterior_trace": SHORT_FIT}


@pytest.fixture(scope="module")
def passed_month(tmp_path_factory, small_sample_dir):
    """The small project with loosened gates, run end to end for May, then its stage 2 again
    for a budget of 3,000,000: the two tests below read it, so it is fitted once."""
    project = tmp_path_factory.mktemp("passed_month")
    shutil.copytree(small_sample_dir, project / "data" / "sample")
    config = write_config(project, **{"model.gates": LOOSE_GATES})
    home = project / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        defs = build_definitions(project, config)
        plan = pipeline_plan(SMALL_MONTHS, fit_months=["2023-05"])
        summary = execute_plan(defs, instance, plan, asset_config=SHORT_RUN, log_level="WARNING")
        stage2 = pipeline_plan([], fit_months=["2023-05"], ingest=False, stage1=False)
        rerun = execute_plan(
            defs,
            instance,
            stage2,
            asset_config={"budget_allocation": {"budget": 3_000_000}},
            log_level="WARNING",
        )
        yield SimpleNamespace(project=project, instance=instance, summary=summary, rerun=rerun)


def test_loosened_gates_pass_and_the_report_says_so(passed_month):
    """The report's diagnostics badge is the project's gates' verdict, not the defaults' (the
    month's latest report, for the second budget, under the same gates)."""
    project, summary = passed_month.project, passed_month.summary
    assert summary.success, summary.failures()
    html = (project / "storage/reports/sample/2023-05/attribution_report.html").read_text()
    assert 'id="diagnostics-status" class="status pass"' in html
    assert "Diagnostics passed" in html
    assert '<p id="sampling" class="muted">Sampling: NUTS with target acceptance 0.85' in html
    export = json.loads(
        (project / "storage/assets/sample/parameter_export/2023-05-01.json").read_text()
    )
    assert export["diagnostics"]["passed"] is True


def test_cli_runs_are_the_code_locations_jobs_and_a_fit_reports_progress(project, instance):
    """The UI's timeline lists CLI runs under their job (re-executable from there), and a
    fit's log says what it fits and where it is from its first second."""
    config = write_config(project, **{"model.gates": LOOSE_GATES})
    defs = build_definitions(project, config)
    plan = pipeline_plan(SMALL_MONTHS, fit_months=["2023-05"], stage2=False)
    summary = execute_plan(defs, instance, plan, asset_config=SHORT_RUN, log_level="WARNING")
    assert summary.success, summary.failures()

    runs = instance.get_runs()
    assert {r.job_name for r in runs} == {"ingest_job", "stage1_job"}
    assert all(r.tags[SOURCE_TAG] == "cli" and r.tags[PROJECT_TAG] == "sample" for r in runs)
    [fit] = [r for r in runs if r.job_name == "stage1_job"]
    assert fit.asset_selection == {asset_key("posterior_trace"), asset_key("parameter_export")}
    logs = instance.all_logs(fit.run_id)
    timed = [m for e in logs if (m := re.match(r"\[(\d+\.\d) s\] (.*)", e.user_message))]
    seconds = [float(m[1]) for m in timed]
    first, compiling, compiled, *steps, rung = [m[2] for m in timed]
    assert first.startswith("fitting as of 2023-05: ") and first.endswith("; building model")
    assert " weeks (20" in first and "2 chains x 30 warm-up + 30 draws" in first
    assert compiling == "compiling the sampler"
    assert re.fullmatch(r"compiled \((JAX cache (hit|miss)|no JAX cache lookup)[^)]*\)", compiled)
    assert steps[0].startswith("warm-up: ") and steps[-1].startswith("sampling: 100% (30/30")
    assert rung.startswith(
        "rung 0 (target_accept 0.85, max_tree_depth 10, warm-up 30, draws 30): passed"
    )
    assert seconds == sorted(seconds) and seconds[0] < 1.0


def test_tightened_gates_block_and_are_read_per_run(project, instance):
    """Gates tightened in the config after the code location loaded still block the run."""
    config = write_config(project, **{"model.gates": LOOSE_GATES})
    defs = build_definitions(project, config)
    write_config(project, **{"model.gates": {**LOOSE_GATES, "min_ess_bulk": 10**7}})
    plan = pipeline_plan(SMALL_MONTHS, fit_months=["2023-05"])
    summary = execute_plan(defs, instance, plan, asset_config=SHORT_RUN, log_level="WARNING")
    [reason] = summary.failures()["stage 1 2023-05"]
    assert "failed its convergence gates (target_accept 0.85, max_tree_depth 10)" in reason
    assert "fail 'bulk ESS >= threshold' (threshold 10000000" in reason
    assert "raise model.draws" in reason  # too few draws: the ladder does not climb for it
    assert summary.skipped == ["stage 2 2023-05"]
    for asset in ("parameter_export", "budget_allocation", "attribution_report"):
        assert not instance.get_materialized_partitions(asset_key(asset)), asset


def test_reports_for_two_budgets_are_both_kept_and_summarised_in_the_ui(passed_month):
    """Stage 2 rerun for another budget: a second named report, the latest copy follows it, and
    each materialisation carries its summary and a link to its own HTML file."""
    project, instance = passed_month.project, passed_month.instance
    summary, rerun = passed_month.summary, passed_month.rerun
    assert summary.success, summary.failures()
    assert rerun.success, rerun.failures()

    report_dir = project / "storage/reports/sample/2023-05"
    records = instance.fetch_materializations(asset_key("attribution_report"), limit=2).records
    newest, oldest = (r.asset_materialization.metadata for r in records)
    assert (oldest["budget"].value, newest["budget"].value) == (2_500_000, 3_000_000)
    kept = {}
    for metadata in (oldest, newest):
        html = Path(metadata["path_html"].value)
        assert html.parent == report_dir
        assert html.name.startswith(f"attribution_report_2023-05_{metadata['budget'].value}_")
        assert metadata["report_url"].value == html.resolve().as_uri()
        kept[metadata["budget"].value] = html
    assert kept[2_500_000] != kept[3_000_000]
    formats = ("html", "csv", "json")
    latest = {f"attribution_report.{fmt}" for fmt in formats}
    named = {html.with_suffix(f".{fmt}").name for html in kept.values() for fmt in formats}
    assert {p.name for p in report_dir.iterdir()} == latest | named
    assert (report_dir / "attribution_report.html").read_bytes() == kept[3_000_000].read_bytes()
    assert "3,000,000" in kept[3_000_000].read_text()

    text = newest["summary"].value
    assert isinstance(newest["summary"], dg.MarkdownMetadataValue)
    assert "| Improvement on modelled sales |" in text and "**Recommendation.**" in text
    assert "budget 3,000,000 over 13 weeks" in text and "Current mix at this budget" in text
    assert "**Scope.** Attributable share" in text
    assert all(f"| {name} |" in text for name in defs_channels(REPO))
    for key in ("raw_improvement", "raw_improvement_p_positive", "business_claim"):
        value = newest[key].value  # two significant digits for people; exact in the JSON
        assert value == float(f"{value:.2g}"), key
