"""Event types: a conversion logged under a paid touchpoint is not a touch of that channel."""

import textwrap

import pytest
import yaml

from conversionflow_dagster.core.config import parse_config
from conversionflow_dagster.core.errors import ConfigError
from conversionflow_dagster.core.ingest.events import event_rules, read_month_events
from conversionflow_dagster.core.ingest.panel import build_panel_from_events, panel_rules
from conversionflow_tests.conftest import REPO

LOG = """\
    user,time,channel,interaction,converted,amount
    u1,2024-01-02T09:00:00,search_touch,impression,0,
    u1,2024-01-02T09:01:00,search_touch,click,0,
    u1,2024-01-02T09:30:00,search_touch,purchase,1,120
    u2,2024-01-03T10:00:00,tv_touch,impression,0,
    u2,2024-01-04T11:00:00,tv_touch,purchase,1,80
    u3,2024-01-05T12:00:00,search_touch,add_to_cart,0,
"""
COLUMNS = {
    "customer_id": "user",
    "timestamp": "time",
    "touchpoint": "channel",
    "conversion": "converted",
    "value": "amount",
    "event_type": "interaction",
}


def config_with(**events):
    document = yaml.safe_load((REPO / "configs/default.yaml").read_text())
    document["project"]["partitions"] = {"start_month": "2024-01", "end_month": "2024-01"}
    document["sources"]["events"] = {"path": "log.csv", "columns": COLUMNS, **events}
    document["sources"].pop("spend")
    document["channels"] = {
        name: {"touchpoints": [f"{name}_touch"], "cost_per_touch": 1.0} for name in ("search", "tv")
    }
    document["controls"] = {}
    return parse_config(document)


def read(tmp_path, config):
    path = tmp_path / "log.csv"
    path.write_text(textwrap.dedent(LOG))
    return read_month_events(path, config.sources.events, "2024-01")


def test_conversion_rows_are_not_touches_of_their_touchpoint(tmp_path):
    config = config_with(conversion_types=["purchase"])
    events = read(tmp_path, config)
    assert list(events["touch"]) == [1, 1, 0, 1, 0, 1]
    assert all(o.passed for o in event_rules(events, "2024-01"))
    panel = build_panel_from_events({"2024-01": events}, None, None, config)
    week = panel.frame.loc["2024-01-01"]
    assert week["touches__search_touch"] == 3  # impression, click, add to cart
    assert week["touches__tv_touch"] == 1
    assert week["spend__search"] == 3.0  # paid per touch: the purchase is not a paid touch
    assert week["conversions"] == 2 and week["revenue"] == 200
    assert {o.name: o.passed for o in panel_rules(panel)}["totals_reconcile"]


def test_touch_types_keep_only_those_rows_as_touches(tmp_path):
    config = config_with(conversion_types=["purchase"], touch_types=["impression", "click"])
    events = read(tmp_path, config)
    assert list(events["touch"]) == [1, 1, 0, 1, 0, 0]


def test_conversions_can_come_from_the_event_type(tmp_path):
    columns = {**COLUMNS, "conversion": None}
    config = config_with(columns=columns, conversion_types=["purchase"])
    events = read(tmp_path, config)
    assert list(events["conversion"]) == [0, 0, 1, 0, 1, 0]


def test_without_an_event_type_every_row_is_a_touch(tmp_path):
    columns = {k: v for k, v in COLUMNS.items() if k != "event_type"}
    events = read(tmp_path, config_with(columns=columns))
    assert list(events["touch"]) == [1] * 6


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ({"conversion_types": ["purchase"], "columns": {}}, "need columns.event_type"),
        ({}, "columns.event_type: list the types that are conversions"),
        (
            {"conversion_types": ["purchase"], "touch_types": ["purchase"]},
            r"\['purchase'\] are in both conversion_types and touch_types",
        ),
        (
            {"columns": {**COLUMNS, "conversion": None}, "touch_types": ["click"]},
            "columns.conversion: map the 0/1 conversion column, or set conversion_types",
        ),
    ],
)
def test_event_type_settings_are_checked(events, message):
    with pytest.raises(ConfigError, match=rf"sources\.events: .*{message}"):
        config_with(**events)
