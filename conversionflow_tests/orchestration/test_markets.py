"""Markets: Meridian's 20-geo panel as a market x month partition space, fitted per market or
as one hierarchical model per month."""

import json
import logging
import shutil

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.core.allocation.markets import join_market_exports
from conversionflow_dagster.core.allocation.optimiser import allocate_scenarios
from conversionflow_dagster.core.config import load_config
from conversionflow_dagster.core.errors import ContractError, InputDataError
from conversionflow_dagster.core.ingest.panel import build_panel_from_file
from conversionflow_dagster.core.model.fitting import load_trace
from conversionflow_dagster.core.parameter_export import read_export
from conversionflow_dagster.runner import PlannedRun, execute_plan, pipeline_plan
from conversionflow_tests.conftest import REPO, asset_key

GEO_FILE = REPO / "data/public/meridian/geo_media.csv"
MONTH = "2024-01"
MARKETS = ["Geo0", "Geo7"]
# Fits that only carry markets through Dagster: short, with gates that short fits pass.
QUICK_FIT = {
    "chains": 2,
    "warmup": 150,
    "draws": 150,
    "export_draws": 200,
    "convergence_ladder": False,
    "gates": {"max_r_hat": 1.5, "min_ess_bulk": 10, "min_ess_tail": 10, "max_divergences": 300},
}


def geo_project(root, geos=MARKETS, **model):
    """A project with the geo dataset and configs/meridian_geo.yaml cut to ``geos``, with
    ``model`` laid over its model section."""
    shutil.copytree(REPO / "data/public/meridian", root / "data/public/meridian")
    document = yaml.safe_load((REPO / "configs/meridian_geo.yaml").read_text())
    document["project"]["markets"] = list(geos)
    document["model"].update(model)
    path = root / "configs/geo.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_each_market_gets_its_own_rows_and_errors_name_the_line(tmp_path):
    config_file = geo_project(tmp_path, geos=["Geo3", "Geo12"])
    config = load_config(config_file)
    source = pd.read_csv(GEO_FILE)
    panel = build_panel_from_file(tmp_path / "data/public/meridian/geo_media.csv", config, "Geo12")
    rows = source[source["geo"] == "Geo12"]
    assert len(panel.frame) == 156
    assert panel.frame["conversions"].sum() == pytest.approx(rows["conversions"].sum())
    assert panel.frame["spend__Channel2"].sum() == pytest.approx(rows["Channel2_spend"].sum())

    broken = tmp_path / "data/public/meridian/geo_media.csv"
    lines = broken.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith("Geo12,")) + 1
    cells = lines[line - 1].split(",")
    cells[-5] = "lots"  # Channel2_spend
    lines[line - 1] = ",".join(cells)
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        InputDataError, match=rf"line {line}, column .Channel2_spend.: expected a number"
    ):
        build_panel_from_file(broken, config, "Geo12")
    with pytest.raises(ContractError, match=r"not one of project\.markets"):
        build_panel_from_file(broken, config, "Geo5")


def test_markets_need_a_market_column(tmp_path):
    config_file = geo_project(tmp_path)
    document = yaml.safe_load(config_file.read_text())
    del document["sources"]["panel"]["columns"]["market"]
    config_file.write_text(yaml.safe_dump(document))
    with pytest.raises(Exception, match=r"project\.markets and sources\.panel\.columns\.market"):
        load_config(config_file)


@pytest.mark.slow
def test_markets_are_fitted_independently_and_allocated_across(tmp_path, instance):
    config_file = geo_project(tmp_path, markets="independent", **QUICK_FIT)
    defs = build_definitions(tmp_path, config_file)
    plan = pipeline_plan([], fit_months=[MONTH], markets=MARKETS)
    assert [run.name for run in plan] == [
        "panel Geo0",
        "panel Geo7",
        "lift tests",
        "customer value",
        f"stage 1 {MONTH} Geo0",
        f"stage 2 {MONTH} Geo0",
        f"stage 1 {MONTH} Geo7",
        f"stage 2 {MONTH} Geo7",
        f"across markets {MONTH}",
    ]
    summary = execute_plan(defs, instance, plan, log_level="WARNING")
    assert summary.success, summary.failures()

    assets = tmp_path / "storage/assets/meridian_geo"
    exports = {m: read_export(assets / f"parameter_export/{m}/{MONTH}-01.json") for m in MARKETS}
    for market in MARKETS:
        assert (assets / f"posterior_trace/{market}/{MONTH}-01.nc").is_file()
        assert (
            tmp_path / f"storage/reports/meridian_geo/{market}/{MONTH}/attribution_report.html"
        ).is_file()
    # Independent fits: each market's own scale, and different media effects.
    assert exports["Geo0"].scales.target != exports["Geo7"].scales.target
    traces = instance.fetch_materializations(
        asset_key(project="meridian_geo", name="posterior_trace"), limit=10
    ).records
    assert {r.asset_materialization.metadata["market"].value for r in traces} == set(MARKETS)

    document = json.loads((assets / f"market_allocation/{MONTH}-01.json").read_text())
    [scenario] = document["scenarios"]
    current = sum(e.current_weekly_spend.sum() for e in exports.values()) * 13
    assert document["main_budget"] == pytest.approx(current)
    assert document["markets"] == MARKETS and document["missing_markets"] == []
    assert {row["channel"] for row in scenario["channels"]} == {
        f"{m}/Channel{c}" for m in MARKETS for c in range(4)
    }
    per_market = document["market_totals"]
    assert sum(v["optimised_spend"] for v in per_market.values()) == pytest.approx(current)
    checks = instance.get_latest_asset_check_evaluation_record
    for name in ("budget_exact", "bounds_respected", "not_worse_than_referee"):
        record = checks(
            dg.AssetCheckKey(asset_key(project="meridian_geo", name="market_allocation"), name)
        )
        assert record.event.asset_check_evaluation.passed

    # Moving money between markets can only help: the joint optimum is at least the sum of
    # each market optimised alone with what it spends now (that split is a feasible plan).
    from conversionflow_dagster.core.allocation.optimiser import AllocationSpec

    section = load_config(config_file).optimisation
    alone = 0.0
    for export in exports.values():
        budget = float(export.current_weekly_spend.sum() * 13)
        result = allocate_scenarios(export, AllocationSpec.from_section(section, budget), [budget])
        alone += result.results[0].optimised_draws.mean()
    joint = join_market_exports(exports)
    assert scenario["optimised_response"] >= alone * (1 - 1e-6)
    assert joint.n_draws == min(e.n_draws for e in exports.values())


def test_joined_exports_carry_each_markets_scale():
    """Joining is exact: the joined response equals the sum of the markets' responses."""
    from conversionflow_dagster.core.allocation.response import ResponseModel
    from conversionflow_dagster.core.parameter_export import validate_export
    from conversionflow_dagster.core.synthetic.export import realistic_document

    a = validate_export(realistic_document(n_channels=3, seed=1), "north")
    south = realistic_document(n_channels=4, n_draws=400, seed=2)
    south["scales"]["target"] = 7.5
    b = validate_export(south, "south")
    joined = join_market_exports({"north": a, "south": b})
    spend = np.concatenate([a.current_weekly_spend, b.current_weekly_spend])
    total = ResponseModel.from_export(joined).draw_totals(spend)
    n = joined.n_draws
    expected = (
        ResponseModel.from_export(a).draw_totals(a.current_weekly_spend)[:n]
        + ResponseModel.from_export(b).draw_totals(b.current_weekly_spend)[:n]
    )
    np.testing.assert_allclose(total, expected, rtol=1e-9)
    assert joined.channel_names[0].startswith("north/")


POOLED = ["Geo0", "Geo7", "Geo12"]


def test_pooled_markets_are_fitted_once_a_month_and_exported_per_market(tmp_path):
    """With model.markets: hierarchical (the default) the trace is a month's partition that
    every market's export, allocation and report read; its gates follow its partitions."""
    defs = build_definitions(tmp_path, geo_project(tmp_path, geos=POOLED))

    def key(name):
        return asset_key(project="meridian_geo", name=name)

    graph = defs.resolve_asset_graph()
    trace = graph.get(key("posterior_trace")).partitions_def
    assert isinstance(trace, dg.MonthlyPartitionsDefinition)
    for name in ("parameter_export", "budget_allocation", "attribution_report"):
        assert isinstance(graph.get(key(name)).partitions_def, dg.MultiPartitionsDefinition)
    for name in ("parameter_export", "attribution_report"):
        mapping = defs.resolve_assets_def(key(name)).get_partition_mapping(key("posterior_trace"))
        assert mapping.partition_dimension_name == "month"
    panels = defs.resolve_assets_def(key("posterior_trace")).get_partition_mapping(
        key("weekly_panel")
    )
    assert isinstance(panels, dg.AllPartitionMapping)

    jobs = {job.name: defs.resolve_job_def(job.name) for job in defs.jobs}
    fit_job = jobs["pooled_fit_job"]
    assert fit_job.partitions_def == trace
    assert fit_job.asset_layer.executable_asset_keys == {key("posterior_trace")}
    gates = {c.name for c in fit_job.asset_layer.asset_graph.asset_check_keys}
    assert gates == {"max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences"}
    for name in ("stage1_job", "stage2_job", "full_pipeline_job"):
        assert isinstance(jobs[name].partitions_def, dg.MultiPartitionsDefinition)
        assert key("posterior_trace") not in jobs[name].asset_layer.executable_asset_keys

    independent = build_definitions(tmp_path, geo_project(tmp_path / "b", markets="independent"))
    assert isinstance(
        independent.resolve_asset_graph().get(key("posterior_trace")).partitions_def,
        dg.MultiPartitionsDefinition,
    )
    assert "pooled_fit_job" not in {job.name for job in independent.jobs}


def test_pooled_plan_fits_a_month_once_before_each_markets_export():
    plan = pipeline_plan([], fit_months=[MONTH], markets=POOLED, pooled=True, selected=["Geo7"])
    assert [run.name for run in plan] == [
        "panel Geo0",  # the pooled fit reads every market, so every panel is rebuilt
        "panel Geo7",
        "panel Geo12",
        "lift tests",
        "customer value",
        f"stage 1 {MONTH}",
        f"stage 1 {MONTH} Geo7",
        f"stage 2 {MONTH} Geo7",
        f"across markets {MONTH}",
    ]
    fit, export = plan[5], plan[6]
    assert fit.assets == ("posterior_trace",) and fit.partition_key == f"{MONTH}-01"
    assert {"panel Geo0", "panel Geo7", "panel Geo12"} <= set(fit.needs)
    assert export.assets == ("parameter_export",) and fit.name in export.needs
    assert export.partition_key == dg.MultiPartitionKey({"market": "Geo7", "month": f"{MONTH}-01"})
    assert plan[-1].needs == (export.name,)
    again = pipeline_plan([], fit_months=[MONTH], ingest=False, stage1=False, markets=POOLED)
    assert [run.name for run in again][-2:] == [f"stage 2 {MONTH} Geo12", f"across markets {MONTH}"]


def test_run_markets_picks_the_markets_to_report_in_both_modes(tmp_path):
    """`conversionflow run --markets Geo7`: a pooled month is still fitted over every market."""
    from conversionflow_dagster.cli import _parser, run_plan

    args = _parser().parse_args(["run", "--markets", "Geo7", "--stage1-only"])
    pooled = run_plan(args, [MONTH], tmp_path, "meridian_geo", POOLED, pooled=True)
    assert [run.name for run in pooled if run.month == MONTH and run.market is None] == [
        f"ingest {MONTH}",
        f"stage 1 {MONTH}",
    ]
    assert {run.market for run in pooled if run.name.startswith("panel")} == set(POOLED)
    assert [run.name for run in pooled][-1] == f"stage 1 {MONTH} Geo7"
    alone = run_plan(args, [MONTH], tmp_path, "meridian_geo", POOLED, pooled=False)
    assert [run.name for run in alone if run.market] == ["panel Geo7", f"stage 1 {MONTH} Geo7"]
    assert alone[-1].assets == ("posterior_trace", "parameter_export")


def test_a_pooled_fit_names_markets_without_a_panel_and_weeks_not_shared(tmp_path, instance):
    config_file = geo_project(tmp_path, geos=MARKETS)
    path = tmp_path / "data/public/meridian/geo_media.csv"
    rows = pd.read_csv(path)
    first_weeks = sorted(rows["time"].unique())[:2]
    rows[~((rows["geo"] == "Geo7") & rows["time"].isin(first_weeks))].to_csv(path, index=False)
    defs = build_definitions(tmp_path, config_file)

    def panel(market):
        return PlannedRun(f"panel {market}", ("weekly_panel",), market=market)

    fit = PlannedRun("fit", ("posterior_trace",), "2021-03")
    summary = execute_plan(defs, instance, [panel("Geo0"), fit], log_level="WARNING")
    assert summary.runs["panel Geo0"][0]
    [reason] = summary.failures()["fit"]
    assert "every market's weekly panel; none is stored for ['Geo7']" in reason

    summary = execute_plan(defs, instance, [panel("Geo7"), fit], log_level="WARNING")
    [reason] = summary.failures()["fit"]
    assert "up to the end of 2021-03 the markets share 8 complete week(s)" in reason
    run = instance.get_runs(limit=1)[0]
    warned = [e.user_message for e in instance.all_logs(run.run_id) if e.level == logging.WARNING]
    assert any(
        "do not cover the same weeks" in text
        and "Geo0: 2 week(s), 2021-01-25 to 2021-02-01" in text
        for text in warned
    ), warned


@pytest.mark.slow
def test_pooled_markets_run_through_dagster_as_one_fit_per_month(tmp_path, instance):
    config_file = geo_project(tmp_path, geos=POOLED, **QUICK_FIT)
    defs = build_definitions(tmp_path, config_file)
    plan = pipeline_plan([], fit_months=[MONTH], markets=POOLED, pooled=True)
    summary = execute_plan(defs, instance, plan, log_level="WARNING")
    assert summary.success, summary.failures()

    assets = tmp_path / "storage/assets/meridian_geo"
    assert [p.name for p in (assets / "posterior_trace").iterdir()] == [f"{MONTH}-01.nc"]
    trace = load_trace(assets / f"posterior_trace/{MONTH}-01.nc")
    assert list(trace.posterior["market"].values) == POOLED
    assert json.loads(trace.posterior.attrs["sampler"])["dense_mass"] is False  # auto: pooled
    exports = {m: read_export(assets / f"parameter_export/{m}/{MONTH}-01.json") for m in POOLED}
    assert len({e.scales.target for e in exports.values()}) == len(POOLED)  # each its own scale
    for market in POOLED:
        assert (
            tmp_path / f"storage/reports/meridian_geo/{market}/{MONTH}/attribution_report.html"
        ).is_file()

    [record] = instance.fetch_materializations(
        asset_key(project="meridian_geo", name="posterior_trace"), limit=10
    ).records
    metadata = record.asset_materialization.metadata
    assert metadata["markets"].value == len(POOLED)
    assert metadata["market_names"].value == ", ".join(POOLED)
    assert {f"r2[{m}]" for m in POOLED} <= set(metadata)

    document = json.loads((assets / f"market_allocation/{MONTH}-01.json").read_text())
    assert document["markets"] == sorted(POOLED) and document["missing_markets"] == []
    [scenario] = document["scenarios"]
    assert {row["channel"] for row in scenario["channels"]} == {
        f"{m}/Channel{c}" for m in POOLED for c in range(4)
    }
    checks = instance.get_latest_asset_check_evaluation_record
    for name in ("budget_exact", "bounds_respected", "not_worse_than_referee"):
        record = checks(
            dg.AssetCheckKey(asset_key(project="meridian_geo", name="market_allocation"), name)
        )
        assert record.event.asset_check_evaluation.passed
