"""Bad input: every refusal names the file, the line or column, and what was expected."""

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from conversionflow_dagster.core.config import EventsSource, load_config
from conversionflow_dagster.core.errors import InputDataError
from conversionflow_dagster.core.ingest.events import event_rules, read_month_events
from conversionflow_dagster.core.ingest.spend import read_month_spend, spend_rules

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_config(REPO / "configs" / "default.yaml")
SOURCE = EventsSource(path="events/{month}.csv")
HEADER = "customer_id,timestamp,touchpoint,conversion,value\n"


def events_file(tmp_path: Path, body: str, month: str = "2024-01", header: str = HEADER) -> Path:
    path = tmp_path / "events" / f"{month}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + textwrap.dedent(body))
    return tmp_path / "events" / "{month}.csv"


def spend_file(tmp_path: Path, body: str, month: str = "2024-01") -> Path:
    path = tmp_path / "spend" / f"{month}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("date,channel,spend\n" + textwrap.dedent(body))
    return tmp_path / "spend" / "{month}.csv"


GOOD = """\
    CUST_001,2024-01-20T09:45:00,search_touch,0,
    CUST_001,2024-01-21T10:00:00,dealer_visit,1,35000
"""


def read(template: Path, month: str = "2024-01") -> pd.DataFrame:
    return read_month_events(template, SOURCE, month)


def test_good_file_reads_with_blank_value_as_zero(tmp_path):
    events = read(events_file(tmp_path, GOOD))
    assert list(events["value"]) == [0.0, 35000.0]
    assert list(events["line"]) == [2, 3]
    assert events["timestamp"].iloc[1] == pd.Timestamp("2024-01-21 10:00")


def test_missing_column_suggests_the_close_name(tmp_path):
    header = "customer_id,timestmp,touchpoint,conversion,value\n"
    template = events_file(tmp_path, GOOD, header=header)
    with pytest.raises(InputDataError) as info:
        read(template)
    message = str(info.value)
    assert "2024-01.csv" in message
    assert "missing column(s) 'timestamp' for sources.events.columns.timestamp" in message
    assert "did you mean 'timestmp'?" in message


def test_unparsable_timestamp_names_line_and_column(tmp_path):
    body = GOOD + "    CUST_002,20/01/2024 09:45,search_touch,0,\n"
    with pytest.raises(InputDataError) as info:
        read(events_file(tmp_path, body))
    assert "2024-01.csv, line 4, column 'timestamp'" in str(info.value)
    assert "expected an ISO 8601 date or timestamp" in str(info.value)
    assert "'20/01/2024 09:45'" in str(info.value)


def test_conversion_not_binary(tmp_path):
    body = GOOD + "    CUST_002,2024-01-22T09:45:00,dealer_visit,2,100\n"
    with pytest.raises(
        InputDataError, match=r"line 4, column 'conversion': expected 0 or 1, got '2'"
    ):
        read(events_file(tmp_path, body))


def test_negative_value(tmp_path):
    body = GOOD + "    CUST_002,2024-01-22T09:45:00,dealer_visit,1,-5\n"
    with pytest.raises(InputDataError, match=r"line 4, column 'value': expected a value >= 0"):
        read(events_file(tmp_path, body))


def test_empty_file_and_header_only(tmp_path):
    template = events_file(tmp_path, "", header="")
    with pytest.raises(InputDataError, match=r"2024-01.csv: file is empty"):
        read(template)
    template = events_file(tmp_path, "")
    with pytest.raises(InputDataError, match=r"2024-01.csv: file has a header but no data rows"):
        read(template)


def test_non_utf8_file_names_the_line(tmp_path):
    path = tmp_path / "events" / "2024-01.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes((HEADER + "CUST_001,2024-01-20T09:45:00,caf\xe9_visit,0,\n").encode("latin-1"))
    with pytest.raises(
        InputDataError, match=r"2024-01.csv, line 2: file is not valid UTF-8 \(byte 0xe9\)"
    ):
        read(tmp_path / "events" / "{month}.csv")


def test_month_with_no_data(tmp_path):
    template = events_file(tmp_path, GOOD)
    with pytest.raises(InputDataError, match=r"2024-02.csv: no event file for month 2024-02"):
        read(template, "2024-02")
    single = tmp_path / "all.csv"
    single.write_text(HEADER + textwrap.dedent(GOOD))
    with pytest.raises(InputDataError, match=r"all.csv: no events dated in month 2024-03"):
        read(single, "2024-03")


def test_single_file_is_filtered_to_the_month(tmp_path):
    single = tmp_path / "all.csv"
    single.write_text(HEADER + textwrap.dedent(GOOD) + "CUST_9,2024-02-01T00:00:00,x,0,\n")
    assert len(read(single, "2024-01")) == 2
    february = read(single, "2024-02")
    assert list(february["line"]) == [4]


def test_negative_spend_names_line(tmp_path):
    template = spend_file(tmp_path, "2024-01-01,search,10\n2024-01-02,tv,-3.5\n")
    with pytest.raises(
        InputDataError, match=r"line 3, column 'spend': expected a value >= 0, got '-3.5'"
    ):
        read_month_spend(template, CONFIG, "2024-01")


def test_unknown_channel_in_spend(tmp_path):
    template = spend_file(tmp_path, "2024-01-01,search,10\n2024-01-01,radio,3\n")
    with pytest.raises(InputDataError) as info:
        read_month_spend(template, CONFIG, "2024-01")
    assert "line 3, column 'channel': unknown channel 'radio'" in str(info.value)
    assert "'search'" in str(info.value)


def test_spend_rows_for_a_per_touch_channel_are_refused(tmp_path):
    template = spend_file(tmp_path, "2024-01-01,affiliate,10\n")
    with pytest.raises(InputDataError, match="'affiliate' is paid per touch"):
        read_month_spend(template, CONFIG, "2024-01")


def test_rules_flag_duplicates_nulls_and_rows_outside_the_month(tmp_path):
    body = (
        GOOD
        + "    CUST_001,2024-01-20T09:45:00,search_touch,0,\n"  # duplicate of line 2
        + "    ,2024-01-23T09:45:00,search_touch,0,\n"  # no customer
        + "    CUST_003,2024-02-01T00:00:01,search_touch,0,\n"  # February, in January's file
    )
    events = read(events_file(tmp_path, body))
    outcomes = {o.name: o for o in event_rules(events, "2024-01")}
    assert outcomes["schema"].passed and outcomes["values_valid"].passed
    assert not outcomes["no_duplicate_events"].passed
    assert "2024-01.csv line 4" in outcomes["no_duplicate_events"].description
    assert not outcomes["critical_fields_not_null"].passed
    assert "2024-01.csv line 5" in outcomes["critical_fields_not_null"].description
    assert not outcomes["timestamps_in_month"].passed
    assert "1 of 5 rows" in outcomes["timestamps_in_month"].description


def test_drop_duplicates_option(tmp_path):
    body = GOOD + "    CUST_001,2024-01-20T09:45:00,search_touch,0,\n"
    events = read_month_events(
        events_file(tmp_path, body), EventsSource(path="x", drop_duplicates=True), "2024-01"
    )
    assert len(events) == 2


def test_spend_rules_on_stored_data():
    spend = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-31", "2024-02-01"]),
            "channel": ["search", "tv"],
            "spend": [1.0, -2.0],
        }
    )
    outcomes = {o.name: o for o in spend_rules(spend, "2024-01")}
    assert not outcomes["dates_in_month"].passed
    assert not outcomes["spend_non_negative"].passed
    assert outcomes["no_nulls"].passed
