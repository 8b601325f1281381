"""Bad input: every refusal names the file, the line or column, and what was expected."""

import gzip
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conversionflow_dagster.core.config import EventsSource, load_config, parse_config
from conversionflow_dagster.core.errors import InputDataError
from conversionflow_dagster.core.ingest.events import event_rules, read_month_events
from conversionflow_dagster.core.ingest.panel import (
    build_panel_from_events,
    build_panel_from_file,
    read_controls,
)
from conversionflow_dagster.core.ingest.spend import read_month_spend, spend_rules
from conversionflow_dagster.core.ingest.tables import with_plain_numbers
from conversionflow_dagster.core.ingest.validation import validate_inputs

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


def config_with(path: str = "default.yaml", **changes) -> object:
    """A shipped config with ``changes`` (dotted key: value) applied."""
    document = yaml.safe_load((REPO / "configs" / path).read_text())
    for dotted, value in changes.items():
        node = document
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return parse_config(document)


BLANK_AS_ZERO = config_with(**{"sources.spend.blank_as_zero": True})
FED = ["search", "social", "video", "display", "tv", "email"]  # channels with a spend feed


def weekly_spend(*weeks: str, skip: tuple[str, str] | None = None) -> str:
    """Long spend rows, one per fed channel and week, leaving out ``skip`` (week, channel)."""
    return "".join(f"{w},{c},10\n" for w in weeks for c in FED if (w, c) != skip)


@pytest.mark.parametrize("text", ["NaN", "nan", "NULL", "None", "N/A"])
def test_text_for_a_missing_customer_id_is_refused(tmp_path, text):
    body = GOOD + f"    {text},2024-01-22T09:45:00,search_touch,0,\n"
    with pytest.raises(InputDataError) as info:
        read(events_file(tmp_path, body))
    message = str(info.value)
    assert "2024-01.csv, line 4, column 'customer_id': expected a value, not text that " in message
    assert f"got {text!r}; fill it in or remove the row" in message


def test_touchpoint_spelt_differently_from_the_config_is_refused(tmp_path):
    body = GOOD + "    CUST_002,2024-01-22T09:45:00,Search_Touch,0,\n"
    events = read(events_file(tmp_path, body))  # the log itself is fine...
    with pytest.raises(InputDataError) as info:  # ...but it would not map to the channel
        build_panel_from_events({"2024-01": events}, None, None, CONFIG)
    message = str(info.value)
    assert "2024-01.csv, line 4, column 'touchpoint': touchpoint 'Search_Touch'" in message
    assert "configured 'search_touch' (channels.search.touchpoints)" in message
    assert "would count as organic" in message


@pytest.mark.parametrize("value", ["inf", "1e308", "-2e16"])
def test_non_finite_or_absurd_numbers_are_refused(tmp_path, value):
    body = GOOD + f"    CUST_002,2024-01-22T09:45:00,dealer_visit,1,{value}\n"
    with pytest.raises(InputDataError) as info:
        read(events_file(tmp_path, body))
    assert (
        f"line 4, column 'value': expected a finite number no larger than 1e+15 in size, "
        f"got {value!r}"
    ) in str(info.value)
    template = spend_file(tmp_path, f"2024-01-01,search,{value}\n2024-01-01,tv,1e308\n")
    with pytest.raises(InputDataError, match=r"line 2, column 'spend': expected a finite number"):
        read_month_spend(template, CONFIG, "2024-01")


@pytest.mark.parametrize(
    ("last", "found"),
    [
        ("CUST_002,2024-01-22T09:45:00,dealer", 3),  # truncated, no newline at the end
        ("CUST_002,2024-01-22T09:45:00,dealer_visit,1,35,000\n", 6),  # unquoted comma
    ],
)
def test_rows_with_the_wrong_number_of_fields_are_refused(tmp_path, last, found):
    path = tmp_path / "events" / "2024-01.csv"
    path.parent.mkdir()
    path.write_text(HEADER + textwrap.dedent(GOOD) + last)
    with pytest.raises(InputDataError) as info:
        read(tmp_path / "events" / "{month}.csv")
    assert f"2024-01.csv, line 4: expected 5 fields as in the header, found {found}" in str(
        info.value
    )


def test_line_numbers_count_quoted_newlines_and_blank_lines(tmp_path):
    body = (
        GOOD
        + '    CUST_002,2024-01-22T09:45:00,"dealer\nvisit",0,\n'  # lines 4-5
        + "\n"  # line 6, skipped
        + "    CUST_003,2024-01-23T09:45:00,dealer_visit,0,\n"  # line 7
    )
    events = read(events_file(tmp_path, textwrap.dedent(body)))
    assert list(events["line"]) == [2, 3, 4, 7]
    assert events["touchpoint"].iloc[2] == "dealer\nvisit"
    bad = body + "    CUST_004,24/01/2024,dealer_visit,0,\n"  # line 8
    with pytest.raises(InputDataError, match=r"line 8, column 'timestamp'"):
        read(events_file(tmp_path, textwrap.dedent(bad)))


def test_duplicate_spend_rows_are_refused_naming_both_lines(tmp_path):
    template = spend_file(tmp_path, "2024-01-01,search,10\n2024-01-01,tv,5\n2024-01-01,search,7\n")
    with pytest.raises(InputDataError) as info:
        read_month_spend(template, CONFIG, "2024-01")
    assert (
        "line 4, column 'date': date 2024-01-01, channel 'search' repeats line 2; "
        "expected one row per date and channel"
    ) in str(info.value)
    wide = {f"channels.{c}.spend_column": c for c in FED}
    config = config_with(**{"sources.spend.layout": "wide"}, **wide)
    path = tmp_path / "wide" / "2024-01.csv"
    path.parent.mkdir()
    row = ",".join(["10"] * len(FED))
    path.write_text(f"date,{','.join(FED)}\n2024-01-01,{row}\n2024-01-08,{row}\n2024-01-01,{row}\n")
    repeated = r"line 4, column 'date': date 2024-01-01 repeats line 2"
    with pytest.raises(InputDataError, match=repeated):
        read_month_spend(tmp_path / "wide" / "{month}.csv", config, "2024-01")


def test_a_channels_missing_week_is_refused_unless_blanks_are_zero(tmp_path):
    body = weekly_spend("2024-01-01", "2024-01-08", skip=("2024-01-08", "tv"))
    template = spend_file(tmp_path, body)
    with pytest.raises(InputDataError) as info:
        read_month_spend(template, CONFIG, "2024-01")
    message = str(info.value)
    assert "2024-01.csv, column 'channel': channel 'tv' has no spend row in the week" in message
    assert "starting 2024-01-08" in message and "sources.spend.blank_as_zero: true" in message
    spend = read_month_spend(template, BLANK_AS_ZERO, "2024-01")
    assert len(spend) == 2 * len(FED) - 1


def test_blank_spend_names_the_key_that_allows_it_on_both_routes(tmp_path):
    template = spend_file(tmp_path, weekly_spend("2024-01-01").replace("tv,10", "tv,"))
    with pytest.raises(InputDataError) as info:
        read_month_spend(template, CONFIG, "2024-01")
    assert (
        "line 6, column 'spend': expected a number, not a blank, got ''; "
        "set sources.spend.blank_as_zero: true to read blanks as 0"
    ) in str(info.value)
    spend = read_month_spend(template, BLANK_AS_ZERO, "2024-01")
    assert spend.set_index("channel")["spend"]["tv"] == 0.0

    path = tmp_path / "national_media.csv"
    shutil.copy(REPO / "data/public/meridian/national_media.csv", path)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[3].split(",")
    fields[header.index("Channel0_spend")] = ""
    path.write_text("\n".join([*lines[:3], ",".join(fields), *lines[4:]]) + "\n")
    with pytest.raises(
        InputDataError,
        match=r"line 4, column 'Channel0_spend': expected a number, not a blank, got ''; "
        r"set sources\.panel\.blank_as_zero: true",
    ):
        build_panel_from_file(path, config_with("meridian_national.yaml"))
    config = config_with("meridian_national.yaml", **{"sources.panel.blank_as_zero": True})
    assert build_panel_from_file(path, config).frame["spend__Channel0"].iloc[2] == 0.0

    controls = tmp_path / "controls.csv"
    controls.write_text("week_start,holiday,promo\n2024-01-01,0,1\n2024-01-08,,0\n")
    with pytest.raises(
        InputDataError,
        match=r"controls\.csv, line 3, column 'holiday': expected a number, not a blank, got ''; "
        r"set controls\.blank_as_zero: true",
    ):
        read_controls(controls, CONFIG)
    config = config_with(**{"controls.blank_as_zero": True})
    assert list(read_controls(controls, config)["control__holiday"]) == [0.0, 0.0]


def test_validate_runs_the_spend_checks_the_run_runs(project):
    path = project / "data/sample/spend/2023-01.csv"
    with path.open("a") as handle:
        handle.write("2023-02-01,search,10\n")  # February, in January's file
    ok, lines = validate_inputs(project, project / "configs" / "test.yaml")
    assert not ok
    failed = [line for line in lines if line.startswith("raw_spend 2023-01: dates_in_month")]
    assert failed and "FAILED" in failed[0] and "2023-01.csv line" in failed[0]


def test_a_compressed_file_is_named(tmp_path):
    path = tmp_path / "events" / "2024-01.csv"
    path.parent.mkdir()
    path.write_bytes(gzip.compress((HEADER + textwrap.dedent(GOOD)).encode()))
    with pytest.raises(InputDataError) as info:
        read(tmp_path / "events" / "{month}.csv")
    message = str(info.value)
    assert "2024-01.csv: file looks like gzip-compressed data (it starts with bytes 1f 8b)" in (
        message
    )
    assert "decompress it" in message and "UTF-8" not in message


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_separated_files_read_like_comma_separated_ones(tmp_path, delimiter):
    expected = read(events_file(tmp_path, GOOD))
    template = events_file(
        tmp_path, GOOD.replace(",", delimiter), header=HEADER.replace(",", delimiter)
    )
    pd.testing.assert_frame_equal(read(template), expected)


def test_decimal_commas_of_a_semicolon_file_are_read_as_decimals(tmp_path):
    body = """\
    CUST_001;2024-01-20T09:45:00;search_touch;0;
    CUST_001;2024-01-21T10:00:00;dealer_visit;1;35.000,5
    CUST_002;2024-01-22T10:00:00;dealer_visit;1;0,25
    """
    events = read(events_file(tmp_path, body, header=HEADER.replace(",", ";")))
    assert list(events["value"]) == [0.0, 35000.5, 0.25]
    assert list(events["line"]) == [2, 3, 4]
    # a value the locale cannot have written is named, not guessed
    bad = body.replace("0,25", "1,5,5")
    with pytest.raises(InputDataError, match=r"2024-01.csv, line 4, column 'value'"):
        read(events_file(tmp_path, bad, header=HEADER.replace(",", ";")))


@pytest.mark.parametrize(
    ("delimiter", "values"),
    [
        (",", ['"$35,000.50"', "$12", '"1,234,567"', "£0.25"]),
        (";", ["35.000,50 €", "12 €", "1.234.567", "€ 0,25"]),
    ],
)
def test_money_formatted_as_a_spreadsheet_shows_it_is_read_as_numbers(tmp_path, delimiter, values):
    rows = [f"CUST_00{i};2024-01-2{i}T10:00:00;dealer_visit;1;{v}" for i, v in enumerate(values, 1)]
    body = "\n".join(rows).replace(";", delimiter) + "\n"
    events = read(events_file(tmp_path, body, header=HEADER.replace(",", delimiter)))
    assert list(events["value"]) == [35000.5, 12.0, 1234567.0, 0.25]
    bad = body.replace(values[1], "12 $ 50")
    with pytest.raises(InputDataError, match=r"2024-01.csv, line 3, column 'value'"):
        read(events_file(tmp_path, bad, header=HEADER.replace(",", delimiter)))


def test_signs_and_what_is_not_a_formatted_number_are_kept():
    cells = ["-$12", "$-1,000", "- 3 €", "31.12.2024", "1,5", "abc", "$", "2024-01-01"]
    frame = pd.DataFrame({"x": cells})
    plain, signs = with_plain_numbers(frame, ".")
    assert list(plain["x"]) == ["-12", "-1000", "-3", *cells[3:]]
    assert signs == {}  # '$' and '€' in one column name no one currency
    assert list(with_plain_numbers(frame, ",")[0]["x"]) == [
        "-12",
        "-1.000",
        "-3",
        "31.12.2024",
        "1.5",
        "abc",
        "$",
        "2024-01-01",
    ]


def test_a_header_split_by_another_delimiter_than_its_lines_is_named(tmp_path):
    path = events_file(tmp_path, "", header=HEADER.replace(",", ";"))
    Path(str(path).format(month="2024-01")).write_text(
        HEADER.replace(",", ";") + "CUST_001,2024-01-21T10:00:00,x,1,35000\n"
    )
    with pytest.raises(InputDataError) as info:
        read(path)
    message = str(info.value)
    assert "2024-01.csv, line 2: expected 1 fields as in the header, found 5" in message
    assert "the file seems to use ';' as its delimiter, but its lines do not split" in message


@pytest.mark.parametrize("date", ["2024", "2024-01", "202401", "3", "12"])
def test_bare_years_and_month_numbers_are_not_dates(tmp_path, date):
    template = spend_file(tmp_path, f"2024-01-01,search,10\n{date},tv,5\n")
    with pytest.raises(InputDataError) as info:
        read_month_spend(template, CONFIG, "2024-01")
    message = str(info.value)
    assert f"line 3, column 'date': expected a date with a day like 2024-01-20, got {date!r}" in (
        message
    )
    assert "bare years and month numbers are not dates (monthly data needs a day" in message
