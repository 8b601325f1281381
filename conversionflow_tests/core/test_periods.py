"""Coarse feeds: spend (and ready panels) given per month, quarter or year, spread over days."""

import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml

from conversionflow_dagster.core.config import parse_config
from conversionflow_dagster.core.errors import ContractError, InputDataError
from conversionflow_dagster.core.ingest.panel import (
    build_panel_from_events,
    build_panel_from_file,
    panel_rules,
)
from conversionflow_dagster.core.ingest.spend import read_month_spend
from conversionflow_tests.conftest import REPO
from conversionflow_tests.core.test_panel import events

MONTHS = ["2024-01", "2024-02", "2024-03"]


def config_with(**sources) -> object:
    document = yaml.safe_load((REPO / "configs/default.yaml").read_text())
    document["project"]["partitions"] = {"start_month": MONTHS[0], "end_month": MONTHS[-1]}
    document["channels"] = {
        "search": {"touchpoints": ["search_touch"], "spend_column": "Search"},
        "tv": {"touchpoints": ["tv_touch"], "spend_column": "TV"},
    }
    document["controls"] = {}
    document["sources"].update(sources)
    return parse_config(document)


def write(tmp_path, name: str, body: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def daily_events(month: str) -> pd.DataFrame:
    """One search touch and one conversion a day: no week lacks events."""
    days = pd.date_range(month + "-01", periods=pd.Period(month).days_in_month, freq="D")
    rows = [[f"c{i}", day, "search_touch", i % 2, 10.0 * (i % 2)] for i, day in enumerate(days)]
    return events(rows, month)


def test_monthly_spend_is_spread_over_the_days_of_each_month(tmp_path):
    path = write(
        tmp_path,
        "spend.csv",
        """\
        date,channel,spend
        2024-01,search,3100
        2024-01,tv,310
        2024-02,search,2900
        2024-02,tv,290
        2024-03,search,3100
        2024-03,tv,0
        """,
    )
    config = config_with(spend={"path": "spend.csv", "period": "month"})
    spend = {m: read_month_spend(path, config, m) for m in MONTHS}
    assert len(spend["2024-02"]) == 2 * 29  # a row per day and channel
    panel = build_panel_from_events({m: daily_events(m) for m in MONTHS}, spend, None, config)
    outcomes = {o.name: o for o in panel_rules(panel)}
    assert outcomes["no_missing_weeks"].passed, outcomes["no_missing_weeks"].description
    assert outcomes["totals_reconcile"].passed
    week = panel.frame["spend__search"]
    assert week.loc["2024-01-08"] == pytest.approx(7 * 100)  # 7 of January's 31 days
    # 29 Jan - 4 Feb: three January days (100 a day) and four February days (100 a day)
    assert week.loc["2024-01-29"] == pytest.approx(3 * 100 + 4 * 2900 / 29)
    assert panel.frame["spend__tv"].loc["2024-02-26"] == pytest.approx(4 * 10)  # + 3 March 0s


def test_year_and_month_in_two_columns_of_a_wide_file(tmp_path):
    path = write(
        tmp_path,
        "wide.csv",
        """\
        Year,Month,Search,TV
        2024,Jan,3100,310
        2024,2,2900,290
        2024,March,3100,0
        """,
    )
    config = config_with(
        spend={"path": "wide.csv", "layout": "wide", "columns": {"year": "Year", "month": "Month"}}
    )
    assert config.sources.spend.row_period == "month"
    february = read_month_spend(path, config, "2024-02")
    assert february.groupby("channel", observed=True)["spend"].sum().to_dict() == pytest.approx(
        {"search": 2900, "tv": 290}
    )
    (tmp_path / "wide.csv").write_text("Year,Month,Search,TV\n2024,13,1,1\n")
    with pytest.raises(
        InputDataError, match=r"line 2, column 'Month': expected a month number 1-12 or a month"
    ):
        read_month_spend(path, config, "2024-01")


@pytest.mark.parametrize(
    ("period", "date", "expected"),
    [
        (None, "2024-02", "set sources.spend.period: month (or quarter, year)"),
        ("month", "2", "sources.spend.period is 'month'; a year and a month number in two columns"),
        ("month", "2024", "expected a date or year-month like 2024-03-01 or 2024-03"),
    ],
)
def test_a_partial_date_points_to_the_period_option(tmp_path, period, date, expected):
    path = write(tmp_path, "spend.csv", f"date,channel,spend\n2024-01-01,search,1\n{date},tv,2\n")
    config = config_with(spend={"path": "spend.csv", "period": period})
    with pytest.raises(InputDataError) as info:
        read_month_spend(path, config, "2024-01")
    assert "spend.csv, line 3, column 'date': expected " in str(info.value)
    assert expected in str(info.value)
    assert "sources.spend.columns.year and sources.spend.columns.month" in str(info.value)


def test_two_rows_for_one_month_are_refused(tmp_path):
    path = write(tmp_path, "spend.csv", "date,channel,spend\n2024-01-01,tv,1\n2024-01-15,tv,2\n")
    config = config_with(spend={"path": "spend.csv", "period": "month"})
    with pytest.raises(InputDataError, match=r"line 3, .*expected one row per month and channel"):
        read_month_spend(path, config, "2024-01")


def test_overlapping_weekly_rows_are_refused(tmp_path):
    path = write(tmp_path, "spend.csv", "date,channel,spend\n2024-01-01,tv,7\n2024-01-03,tv,7\n")
    config = config_with(spend={"path": "spend.csv", "period": "week"})
    with pytest.raises(ContractError, match="two rows' weeks both cover 2024-01-03"):
        read_month_spend(path, config, "2024-01")


def monthly_panel(tmp_path, rows: int = 12, **columns):
    months = pd.period_range("2024-01", periods=rows, freq="M")
    frame = pd.DataFrame(
        {
            "Year": months.year,
            "Month": months.month,
            "date": months.strftime("%Y-%m"),
            "Search": 310.0,
            "TV": np.arange(rows) * 10.0,
            "Sales": 1000.0,
            "Price": np.arange(rows, dtype=float),
        }
    )
    frame.to_csv(tmp_path / "monthly.csv", index=False)
    document = yaml.safe_load((REPO / "configs/robyn_weekly.yaml").read_text())
    document["sources"]["panel"] = {
        "path": "monthly.csv",
        "columns": {"revenue": "Sales", **columns},
        "period": "month",
    }
    document["channels"] = {"search": {"spend_column": "Search"}, "tv": {"spend_column": "TV"}}
    document["controls"] = {"series": {"price": {"column": "Price"}}}
    return tmp_path / "monthly.csv", parse_config(document), frame


@pytest.mark.parametrize("columns", [{"date": "date"}, {"year": "Year", "month": "Month"}])
def test_a_monthly_panel_becomes_every_week_its_months_cover(tmp_path, columns):
    path, config, raw = monthly_panel(tmp_path, **columns)
    panel = build_panel_from_file(path, config)
    # 2024-01-01 is a Monday; 30 Dec - 5 Jan 2025 runs past the file's last month.
    assert len(panel.frame) == 52 and not panel.missing_weeks
    assert panel.weeks[0] == pd.Timestamp("2024-01-01")
    assert panel.weeks[-1] == pd.Timestamp("2024-12-23")
    assert all(o.passed for o in panel_rules(panel)), panel_rules(panel)
    assert panel.frame.loc["2024-01-08", "revenue"] == pytest.approx(7 * 1000 / 31)
    # a control is a level: the week's mean over its days (3 January days at 0, 4 Feb at 1)
    assert panel.frame.loc["2024-01-29", "control__price"] == pytest.approx(4 / 7)
    december_tail = 2 * 310 / 31  # 30 and 31 December lie in no complete week
    assert panel.frame["spend__search"].sum() == pytest.approx(raw["Search"].sum() - december_tail)


def test_a_missing_month_in_a_monthly_panel_is_a_gap_of_missing_weeks(tmp_path):
    path, config, raw = monthly_panel(tmp_path, date="date")
    raw.drop(index=5).to_csv(path, index=False)  # June
    panel = build_panel_from_file(path, config)
    outcome = {o.name: o for o in panel_rules(panel)}["no_missing_weeks"]
    assert not outcome.passed
    assert "2024-06-03" in panel.missing_weeks and "2024-05-27" in panel.missing_weeks


def test_a_bare_month_in_a_weekly_panel_points_to_the_panel_period(tmp_path):
    path, config, _ = monthly_panel(tmp_path, date="date")
    document = config.model_dump(exclude_none=True)
    del document["sources"]["panel"]["period"]
    with pytest.raises(InputDataError) as info:
        build_panel_from_file(path, parse_config(document))
    assert "column 'date': expected a date with a day like 2024-01-20, got '2024-01'" in str(
        info.value
    )
    assert "or set sources.panel.period: month" in str(info.value)


def daily_panel(tmp_path, days: int = 30, start: str = "2024-01-03"):
    """A daily table (dates one day apart) read with sources.panel.period: day."""
    dates = pd.date_range(start, periods=days, freq="D")
    frame = pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "Search": 10.0 + np.arange(days),
            "TV": 5.0,
            "Sales": 100.0,
            "Price": np.arange(days, dtype=float),
        }
    )
    path, config, _ = monthly_panel(tmp_path, date="date")
    frame.to_csv(path, index=False)
    document = config.model_dump(exclude_none=True)
    document["sources"]["panel"]["period"] = "day"
    return path, parse_config(document), frame


def test_a_daily_panel_is_summed_into_the_weeks_its_days_cover(tmp_path):
    path, config, raw = daily_panel(tmp_path)  # Wednesday 3 Jan to Thursday 1 Feb 2024
    panel = build_panel_from_file(path, config)
    # the part weeks at either end are left out: Monday 8 Jan to Sunday 28 Jan
    assert list(panel.weeks) == list(pd.date_range("2024-01-08", periods=3, freq="7D"))
    assert not panel.missing_weeks
    assert (panel.frame["revenue"] == 700.0).all()
    first_week = raw.iloc[5:12]  # 8 to 14 January
    assert panel.frame["spend__search"].iloc[0] == first_week["Search"].sum()
    assert panel.frame["control__price"].iloc[0] == first_week["Price"].mean()  # a level
    assert all(o.passed for o in panel_rules(panel)), panel_rules(panel)


def test_a_missing_day_makes_its_week_missing_and_says_so(tmp_path):
    path, config, raw = daily_panel(tmp_path, days=35, start="2024-01-01")
    raw.drop(index=10).to_csv(path, index=False)  # Thursday 11 January
    panel = build_panel_from_file(path, config)
    assert panel.missing_weeks == ("2024-01-08",)
    path, config, raw = daily_panel(tmp_path, days=5)
    with pytest.raises(ContractError, match=r"its rows \(daily, sources.panel.period\) cover no"):
        build_panel_from_file(path, config)


def test_a_spend_feed_in_thousands_is_read_in_money(tmp_path):
    """sources.spend.spend_unit multiplies every amount; the totals still reconcile."""
    path = write(
        tmp_path,
        "spend.csv",
        """\
        date,channel,spend
        2024-01,search,3.1
        2024-01,tv,0.31
        2024-02,search,2.9
        2024-02,tv,0.29
        2024-03,search,3.1
        2024-03,tv,0
        """,
    )
    config = config_with(spend={"path": "spend.csv", "period": "month", "spend_unit": 1000})
    spend = {m: read_month_spend(path, config, m) for m in MONTHS}
    panel = build_panel_from_events({m: daily_events(m) for m in MONTHS}, spend, None, config)
    assert {o.name: o for o in panel_rules(panel)}["totals_reconcile"].passed
    assert panel.frame["spend__search"].loc["2024-01-08"] == pytest.approx(7 * 100)
