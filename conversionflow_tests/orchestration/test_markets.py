"""Markets: Meridian's 20-geo panel as a market x month partition space, fitted per market."""

import json
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
from conversionflow_dagster.core.parameter_export import read_export
from conversionflow_dagster.runner import execute_plan, pipeline_plan
from conversionflow_tests.conftest import REPO, asset_key

GEO_FILE = REPO / "data/public/meridian/geo_media.csv"
MONTH = "2024-01"
MARKETS = ["Geo0", "Geo7"]


def geo_project(root, markets=MARKETS, **model):
    """A project with the geo dataset and configs/meridian_geo.yaml cut to ``markets``."""
    shutil.copytree(REPO / "data/public/meridian", root / "data/public/meridian")
    document = yaml.safe_load((REPO / "configs/meridian_geo.yaml").read_text())
    document["project"]["markets"] = list(markets)
    document["model"].update(model)
    path = root / "configs/geo.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_each_market_gets_its_own_rows_and_errors_name_the_line(tmp_path):
    config_file = geo_project(tmp_path, markets=["Geo3", "Geo12"])
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
    config_file = geo_project(tmp_path, warmup=500, draws=500)
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
