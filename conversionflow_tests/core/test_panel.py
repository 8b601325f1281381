"""Weekly panel (events route): aggregation, complete weeks, reconciliation, contract."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conversionflow_dagster.core.config import load_config
from conversionflow_dagster.core.errors import ContractError, InputDataError
from conversionflow_dagster.core.ingest.events import read_month_events
from conversionflow_dagster.core.ingest.panel import (
    build_panel_from_events,
    complete_weeks,
    panel_rules,
    read_controls,
    read_panel,
    week_floor,
    write_panel,
)
from conversionflow_dagster.core.ingest.spend import read_month_spend
from conversionflow_tests.conftest import SMALL_MONTHS, write_config

REPO = Path(__file__).resolve().parents[2]


def events(rows, month):
    frame = pd.DataFrame(
        rows, columns=["customer_id", "timestamp", "touchpoint", "conversion", "value"]
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame["conversion"] = frame["conversion"].astype(np.int8)
    frame["value"] = frame["value"].astype(float)
    frame["touchpoint"] = frame["touchpoint"].astype("category")
    frame["line"] = np.arange(len(frame)) + 2
    frame["source_file"] = pd.Categorical([f"{month}.csv"] * len(frame))
    return frame


def spend(rows):
    frame = pd.DataFrame(rows, columns=["date", "channel", "spend"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


@pytest.fixture
def config(tmp_path):
    return load_config(
        write_config(
            tmp_path,
            **{
                "project.partitions": {"start_month": "2024-01", "end_month": "2024-02"},
                "controls": {},
            },
        )
    )


def test_week_floor_and_complete_weeks():
    stamps = pd.Series(pd.to_datetime(["2024-01-31 23:59", "2024-02-04 00:00", "2024-02-05 00:00"]))
    assert list(week_floor(stamps, 0).dt.date.astype(str)) == [
        "2024-01-29",
        "2024-01-29",
        "2024-02-05",
    ]
    weeks = complete_weeks("2024-01", "2024-02", 0)  # Jan 1 2024 is a Monday
    assert weeks[0] == pd.Timestamp("2024-01-01")
    assert weeks[-1] == pd.Timestamp("2024-02-19")  # Feb 26 - Mar 3 is not complete
    sunday_weeks = complete_weeks("2024-01", "2024-01", 6)
    assert sunday_weeks[0] == pd.Timestamp("2024-01-07")


def test_week_straddling_two_months_takes_events_from_both(config):
    jan = events(
        [
            ["a", "2024-01-03 10:00", "search_touch", 0, 0],
            ["b", "2024-01-30 10:00", "search_touch", 0, 0],  # week of Jan 29
            ["b", "2024-01-31 12:00", "checkout", 1, 100],  # week of Jan 29
        ],
        "2024-01",
    )
    feb = events(
        [
            ["c", "2024-02-02 09:00", "checkout", 1, 50],  # week of Jan 29, February's file
            ["d", "2024-02-27 09:00", "checkout", 1, 999],  # week of Feb 26: incomplete, dropped
        ],
        "2024-02",
    )
    panel = build_panel_from_events({"2024-01": jan, "2024-02": feb}, None, None, config)
    straddle = panel.frame.loc["2024-01-29"]
    assert straddle["conversions"] == 2
    assert straddle["revenue"] == 150
    assert straddle["touches__search_touch"] == 1
    assert panel.weeks[-1] == pd.Timestamp("2024-02-19")
    assert panel.frame["revenue"].sum() == 150  # the Feb 27 event lies in no complete week
    assert panel.source_totals["revenue"] == 150
    # weeks without any event are reported, not silently filled
    assert "2024-01-08" in panel.missing_weeks
    assert not {o.name: o for o in panel_rules(panel)}["no_missing_weeks"].passed


def test_cost_per_touch_channel_spend(config):
    jan = events([["a", "2024-01-02 10:00", "affiliate_touch", 0, 0]] * 3, "2024-01")
    panel = build_panel_from_events({"2024-01": jan}, None, None, config)
    assert panel.frame.loc["2024-01-01", "spend__affiliate"] == 3 * 45.0
    assert panel.frame["spend__search"].sum() == 0


def test_month_gap_and_mismatched_spend_months_are_refused(config):
    jan = events([["a", "2024-01-02 10:00", "x", 0, 0]], "2024-01")
    mar = events([["a", "2024-03-02 10:00", "x", 0, 0]], "2024-03")
    with pytest.raises(ContractError, match=r"no data for month\(s\) 2024-02 between 2024-01"):
        build_panel_from_events({"2024-01": jan, "2024-03": mar}, None, None, config)
    with pytest.raises(ContractError, match="raw_spend months"):
        build_panel_from_events({"2024-01": jan}, {}, None, config)


def small_panel(project: Path):
    config = load_config(project / "configs" / "test.yaml")
    template = project / "data/sample/events/{month}.csv"
    ev = {m: read_month_events(template, config.sources.events, m) for m in SMALL_MONTHS}
    sp = {
        m: read_month_spend(project / "data/sample/spend/{month}.csv", config, m)
        for m in SMALL_MONTHS
    }
    controls = read_controls(project / "data/sample/controls.csv", config)
    return build_panel_from_events(ev, sp, controls, config)


def test_panel_equals_the_generators_truth(project, small_sample):
    panel = small_panel(project)
    truth = small_sample.weekly.loc[panel.weeks]
    assert len(panel.frame) == 21  # 2023-01-02 .. 2023-05-22: every complete week in Jan-May
    for column in [
        "conversions",
        "revenue",
        *[f"spend__{c.name}" for c in small_sample.channels],
        *[f"touches__{c.touchpoint}" for c in small_sample.channels],
    ]:
        np.testing.assert_allclose(panel.frame[column], truth[column], rtol=1e-9, err_msg=column)
    assert list(panel.controls) == ["control__holiday", "control__promo"]
    assert all(o.passed for o in panel_rules(panel)), panel_rules(panel)


def test_reconciliation_catches_a_lost_week(project):
    panel = small_panel(project)
    broken = dataclasses.replace(panel, frame=panel.frame.drop(panel.weeks[3]))
    outcomes = {o.name: o for o in panel_rules(broken)}
    assert not outcomes["totals_reconcile"].passed
    assert "conversions: panel" in outcomes["totals_reconcile"].description
    assert not outcomes["no_missing_weeks"].passed  # the index now skips a week


def test_controls_must_cover_every_week(project):
    controls = project / "data/sample/controls.csv"
    lines = controls.read_text().splitlines()
    controls.write_text("\n".join(lines[:5] + lines[6:]) + "\n")  # drop one week
    with pytest.raises(
        InputDataError, match=r"controls.csv: controls have no row for 1 panel week"
    ):
        small_panel(project)


def test_parquet_round_trip_keeps_the_contract(project, tmp_path):
    panel = small_panel(project)
    path = tmp_path / "panel.parquet"
    write_panel(panel, path)
    again = read_panel(path)
    pd.testing.assert_frame_equal(again.frame, panel.frame, check_freq=False)
    assert again.channels == panel.channels
    assert dict(again.source_totals) == pytest.approx(dict(panel.source_totals))


def test_reading_a_foreign_parquet_file_is_refused(tmp_path):
    path = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(ContractError, match="not a conversionflow weekly panel"):
        read_panel(path)


def test_window_as_of_a_month(project):
    from conversionflow_dagster.core.ingest.panel import panel_window

    panel = small_panel(project)
    march = panel_window(panel, "2023-03", 8)
    assert len(march.frame) == 8
    assert march.weeks[-1] == pd.Timestamp("2023-03-20")  # Mar 27 - Apr 2 ends in April
    assert panel_window(panel, "2023-03", 100).weeks[0] == pd.Timestamp("2023-01-02")
    with pytest.raises(ContractError, match="no complete week up to the end of 2022-12"):
        panel_window(panel, "2022-12", 8)
