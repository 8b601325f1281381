"""How much history a project has: months without data, too few weeks, the fit window."""

import shutil

import pandas as pd
import pytest
import yaml

from conversionflow_dagster.core.config import load_config, parse_config
from conversionflow_dagster.core.errors import ConfigError, ContractError
from conversionflow_dagster.core.ingest.panel import (
    build_panel_from_file,
    left_out_message,
    panel_window,
    weeks_left_out,
)
from conversionflow_dagster.core.ingest.validation import check_history, validate_inputs
from conversionflow_dagster.core.model.history import MIN_FIT_WEEKS, short_history
from conversionflow_tests.conftest import REPO, write_config
from conversionflow_tests.core.test_panel import small_panel


def one_month_project(project, **partitions):
    """The small sample's February alone, as one events file (the tester's shape)."""
    shutil.copy(project / "data/sample/events/2023-02.csv", project / "data/sample/events.csv")
    return write_config(
        project,
        **{
            "project.partitions": {"start_month": "2023-02", **partitions},
            "sources.events.path": "data/sample/events.csv",
            "sources.spend.path": "data/sample/spend/2023-02.csv",
        },
    )


def test_months_without_data_are_told_once_with_the_months_that_have_data(project):
    config = one_month_project(project)  # no end_month: every month up to the last one
    ok, lines = validate_inputs(project, config)
    assert not ok
    events = [line for line in lines if "events dated in" in line]
    spend = [line for line in lines if "spend rows dated in" in line]
    assert len(events) == 1 and len(spend) == 1, lines
    assert "events.csv: no events dated in " in events[0]
    assert "configured month(s), 2023-03 to " in events[0]
    assert "it has data for the months 2023-02 to 2023-02" in events[0]
    assert "set project.partitions.start_month/end_month" in events[0]


def test_a_one_month_project_builds_its_panel_and_is_told_it_is_too_short(project):
    ok, lines = validate_inputs(project, one_month_project(project, end_month="2023-02"))
    assert "panel: 3 weeks from 1 months" in lines
    assert not ok
    assert lines[-1] == (
        "error: weekly_panel: up to the end of 2023-02 the data has 3 complete week(s); the "
        f"model needs at least {MIN_FIT_WEEKS} ({MIN_FIT_WEEKS} to fit; each week "
        "model.holdout_weeks holds out adds one)"
    )


def test_holdout_weeks_raise_what_the_model_needs():
    assert short_history(MIN_FIT_WEEKS, 0) is None
    message = short_history(20, 13)
    assert message.startswith("the data has 20 complete week(s); the model needs at least 22")
    assert "13 held out by model.holdout_weeks; lower model.holdout_weeks" in message


def test_the_run_command_is_refused_before_any_run(project):
    config = load_config(
        write_config(
            project, **{"project.partitions": {"start_month": "2023-01", "end_month": "2023-05"}}
        )
    )
    check_history(project, config, "2023-05")  # 21 weeks: enough
    with pytest.raises(ContractError, match=r"2023-01 to 2023-02 hold 8 complete week\(s\)"):
        check_history(project, config, "2023-02")


def test_the_run_command_counts_the_weeks_of_a_panel_file(tmp_path):
    shutil.copytree(REPO / "data/public/meridian", tmp_path / "data/public/meridian")
    document = yaml.safe_load((REPO / "configs/meridian_national.yaml").read_text())
    config = parse_config(document)  # holdout_weeks 13: 22 weeks needed
    check_history(tmp_path, config, "2024-01")
    with pytest.raises(
        ContractError,
        match=r"national_media.csv has 14 complete week\(s\); the model needs at "
        r"least 22 \(9 to fit \+ 13 held out",
    ):
        check_history(tmp_path, config, "2021-04")  # weeks from 2021-01-25 to 2021-04-26


def test_every_week_is_fitted_by_default_and_a_cap_says_what_it_leaves_out(project):
    panel = small_panel(project)
    assert len(panel_window(panel, "2023-05", None).frame) == len(panel.frame) == 21
    window = panel_window(panel, "2023-05", 26)
    assert len(weeks_left_out(panel, window)) == 0
    capped = panel_window(panel, "2023-05", 12)
    left_out = weeks_left_out(panel, capped)
    assert len(left_out) == 9 and capped.weeks[0] == pd.Timestamp("2023-03-06")
    assert left_out_message(left_out, 12) == (
        "9 complete week(s) of data are left out of the fit, 2023-01-02 to 2023-02-27: "
        "model.window_weeks 12 caps the window; raise it, or remove it to fit every week"
    )


def test_a_window_too_small_for_the_holdout_is_refused():
    document = yaml.safe_load((REPO / "configs/default.yaml").read_text())
    document["model"].update({"window_weeks": 26, "holdout_weeks": 20})
    with pytest.raises(ConfigError, match=r"model: .*window_weeks 26 with holdout_weeks 20"):
        parse_config(document)
    assert (
        parse_config(yaml.safe_load((REPO / "configs/default.yaml").read_text())).model.window_weeks
        is None
    )


def test_the_panel_route_keeps_a_last_week_that_runs_into_the_next_month():
    """Robyn's file runs to 2019-11-11; fitted as of 2019-10, the week of 2019-10-28 (ending
    3 November) is in the file, so it is complete, and used."""
    config = load_config(REPO / "configs/robyn_weekly.yaml")
    panel = build_panel_from_file(REPO / config.sources.panel.path, config)
    window = panel_window(panel, "2019-10", None)
    assert window.weeks[-1] == pd.Timestamp("2019-10-28")
    assert window.weeks[0] == panel.weeks[0]  # and every earlier week


def test_the_run_config_can_still_cap_the_window():
    from conversionflow_dagster.assets.model import FitConfig
    from conversionflow_dagster.resources import with_overrides

    model = load_config(REPO / "configs/default.yaml").model
    assert with_overrides(model, FitConfig()).window_weeks is None
    assert with_overrides(model, FitConfig(window_weeks=52)).window_weeks == 52


def offset_geo_project(root, geo0_weeks, geo7_weeks, markets="hierarchical"):
    """Two geo markets that cover different weeks of the geo dataset (index ranges)."""
    source = pd.read_csv(REPO / "data/public/meridian/geo_media.csv")
    weeks = sorted(source["time"].unique())
    keep = {"Geo0": weeks[slice(*geo0_weeks)], "Geo7": weeks[slice(*geo7_weeks)]}
    rows = source[[t in keep.get(g, ()) for g, t in zip(source.geo, source.time, strict=True)]]
    (root / "data").mkdir()
    rows.to_csv(root / "data/geo.csv", index=False)
    document = yaml.safe_load((REPO / "configs/meridian_geo.yaml").read_text())
    document["project"]["markets"] = ["Geo0", "Geo7"]
    document["sources"]["panel"]["path"] = "data/geo.csv"
    document["model"].update(markets=markets, holdout_weeks=0)
    path = root / "geo.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_a_pooled_fit_counts_the_weeks_the_markets_share(tmp_path):
    config_file = offset_geo_project(tmp_path, (0, 95), (90, 156))  # 5 weeks shared
    with pytest.raises(ContractError, match=r"the markets of geo.csv share 5 complete week\(s\)"):
        check_history(tmp_path, load_config(config_file), "2024-01")
    ok, lines = validate_inputs(tmp_path, config_file)
    assert not ok
    pooled = [line for line in lines if "markets (pooled fit)" in line]
    assert pooled and "the markets share 5 complete week(s)" in pooled[0]
    # fitted one at a time, each market has weeks enough of its own
    (tmp_path / "independent").mkdir()
    independent = offset_geo_project(tmp_path / "independent", (0, 95), (90, 156), "independent")
    check_history(tmp_path / "independent", load_config(independent), "2024-01")
    assert validate_inputs(tmp_path / "independent", independent)[0]


def test_validate_names_the_weeks_a_pooled_fit_leaves_out(tmp_path):
    config_file = offset_geo_project(tmp_path, (0, 100), (80, 156))  # 20 weeks shared
    check_history(tmp_path, load_config(config_file), "2024-01")
    ok, lines = validate_inputs(tmp_path, config_file)
    assert ok, lines
    note = next(line for line in lines if line.startswith("markets (pooled fit)"))
    assert "the pooled fit uses the 20 week(s) they all have" in note
    assert "Geo0: 80 week(s), 2021-01-25" in note and "Geo7: 56 week(s)" in note


def test_a_channel_that_spends_only_in_held_out_weeks_is_refused_before_sampling(tmp_path):
    """Its contribution to the fitted weeks is zero whatever its parameters: validate, the
    single-market fit and the pooled fit name it instead of diverging on every transition."""
    from conversionflow_dagster.core.model.fitting import fit_mmm
    from conversionflow_dagster.core.model.hierarchical import MarketSeries, fit_markets
    from conversionflow_dagster.core.model.mmm import ModelSpec
    from conversionflow_dagster.core.synthetic.panel import simulate_panel

    (tmp_path / "data/public/meridian").mkdir(parents=True)
    frame = pd.read_csv(REPO / "data/public/meridian/national_media.csv")
    frame.loc[: len(frame) - 14, "Channel2_spend"] = 0.0  # spends in the 13 held-out weeks only
    frame.to_csv(tmp_path / "data/public/meridian/national_media.csv", index=False)
    config_file = tmp_path / "national.yaml"
    shutil.copy(REPO / "configs/meridian_national.yaml", config_file)
    ok, lines = validate_inputs(tmp_path, config_file)
    assert not ok
    assert lines[-1] == (
        "error: weekly_panel: channel Channel2 spends nothing in the 143 weeks a fit as of "
        "2024-01 fits: the data cannot tell what it adds. Remove it from `channels`, or fit "
        "weeks in which it spends (weeks held out by model.holdout_weeks are not fitted)"
    )

    p = simulate_panel(60, 3, seed=0)
    spend = p.spend.copy()
    spend[:50, [0, 2]] = 0.0
    fit = (p.target, p.controls, p.channel_names, p.control_names, p.week_start, ModelSpec())
    with pytest.raises(ContractError, match=r"channels ch 0, ch 2 spend nothing in the 50 fitted"):
        fit_mmm(spend, *fit, holdout_weeks=10)
    markets = {"a": MarketSeries(spend, p.target, p.controls)}
    markets["b"] = MarketSeries(p.spend * [1, 1, 0], p.target, p.controls)  # ch0 spends here
    with pytest.raises(
        ContractError, match=r"channel ch 2 spends nothing in the 50 fitted weeks of"
    ):
        fit_markets(markets, *fit[2:], holdout_weeks=10)
