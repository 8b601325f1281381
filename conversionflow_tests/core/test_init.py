"""`conversionflow init`'s core: recognising a stranger's data and proposing a config for it."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conversionflow_dagster.core.config import load_config, parse_config
from conversionflow_dagster.core.errors import ConfigError, InputDataError
from conversionflow_dagster.core.ingest.config_proposal import (
    Unset,
    config_document,
    render_config,
    render_yaml,
    summary_lines,
)
from conversionflow_dagster.core.ingest.inference import inspect_files
from conversionflow_dagster.core.ingest.panel import build_panel_from_file
from conversionflow_dagster.core.ingest.spend import read_month_spend
from conversionflow_dagster.core.ingest.validation import validate_inputs
from conversionflow_tests.conftest import REPO, SMALL_MONTHS
from conversionflow_tests.core.init_fixtures import (
    PANEL_CHANNELS,
    SPEND_RANGES,
    journey_month,
    monthly_investment_sheet,
    recent_spend,
    spread_recent_spend,
    total_sales_panel,
    write_journey_log,
)


def _propose(tmp_path, files, root=REPO, share=None):
    """Inspect ``files``, write the proposal under ``tmp_path`` and load it."""
    inference = inspect_files(files)
    text = render_config(inference, "my project", root, "configs/my_project.yaml", share)
    path = tmp_path / "proposal.yaml"
    path.write_text(text)
    return inference, path, text


def _without_unset(node):
    if isinstance(node, dict):
        return {k: _without_unset(v) for k, v in node.items() if not isinstance(v, Unset)}
    return node


def _channels(config):
    return {n: (c.spend_column, c.touches_column) for n, c in config.channels.items()}


def _controls(config):
    return {s.column: (s.categorical, s.baseline) for s in config.controls.series.values()}


@pytest.mark.parametrize(
    ("data", "shipped"),
    [
        ("meridian/national_media.csv", "meridian_national.yaml"),
        ("robyn/dt_simulated_weekly.csv", "robyn_weekly.yaml"),
        ("meridian/geo_media.csv", "meridian_geo.yaml"),
    ],
)
def test_public_panels_get_the_shipped_configs_mapping(tmp_path, data, shipped):
    inference, path, _ = _propose(tmp_path, [REPO / "data/public" / data])
    proposed, expected = load_config(path), load_config(REPO / "configs" / shipped)
    assert inference.route == "panel"
    assert proposed.sources.panel.path == expected.sources.panel.path
    assert proposed.sources.panel.columns == expected.sources.panel.columns  # date, target, market
    assert proposed.model.target == expected.model.target
    assert _channels(proposed) == _channels(expected)  # names, spend and touches columns
    assert _controls(proposed) == _controls(expected)
    assert proposed.project.markets == expected.project.markets
    assert proposed.project.week_start == expected.project.week_start
    # stage-2 defaults are left to the data, and a panel of total sales is all of them
    assert proposed.optimisation.budget is None and proposed.optimisation.scenarios is None
    assert proposed.attributable_share == 1.0
    ok, lines = validate_inputs(REPO, path)
    assert ok, lines


def test_month_range_spans_the_data(tmp_path):
    inference, _, _ = _propose(tmp_path, [REPO / "data/public/robyn/dt_simulated_weekly.csv"])
    assert inference.months == ("2015-11", "2019-11")  # 2015-11-23 .. the week of 2019-11-11
    meridian = inspect_files([REPO / "data/public/meridian/national_media.csv"])
    assert any("'revenue_per_conversion' is left out" in n for n in meridian.notes)


def test_untidy_panel_headers_are_mapped_as_the_pipeline_reads_them(tmp_path):
    frame = total_sales_panel()
    frame.to_parquet(tmp_path / "weekly.parquet")  # Parquet keeps the leading space
    inference, path, text = _propose(tmp_path, [tmp_path / "weekly.parquet"], root=tmp_path)
    config = load_config(path)
    assert {n: c.spend_column for n, c in config.channels.items()} == PANEL_CHANNELS
    assert '" TV_Spend"' in text  # quoted, so YAML keeps the space
    assert config.sources.panel.columns.date == "Week"
    assert config.sources.panel.columns.revenue == "Total Sales"
    assert config.model.target == "revenue" and config.model.likelihood == "student_t"
    assert {s.column for s in config.controls.series.values()} == {"Holiday"}
    assert config.project.partitions.start_month == "2022-01"
    assert config.project.partitions.end_month == "2024-04"
    assert inference.recent_spend == pytest.approx(recent_spend(frame))
    document, _ = config_document(inference, "my project", tmp_path)
    assert yaml.safe_load(text) == _without_unset(document)  # the comments change nothing
    ok, lines = validate_inputs(tmp_path, path)
    assert ok, lines


def test_journey_log_with_spend_is_the_events_route(tmp_path, small_sample_dir):
    events, spend = write_journey_log(small_sample_dir, tmp_path / "data")
    inference, path, text = _propose(tmp_path, [events, spend], root=tmp_path)
    assert inference.route == "events"
    assert inference.columns["events"] == {
        "customer_id": "user_id",
        "timestamp": "event_time",
        "conversion": "converted",
        "touchpoint": "channel",
        "value": "revenue",
    }
    assert inference.spend_layout == "long"
    assert {c.name: c.touchpoints for c in inference.channels} == {
        name: (f"{name}_touch",) for name in ("display", "email", "search", "social", "tv", "video")
    }
    # June holds only its first days: a partial month would leave weeks without events
    assert inference.months == (SMALL_MONTHS[0], SMALL_MONTHS[-1])
    assert any("2023-06" in note for note in inference.notes)
    paid = [note for note in inference.notes if "'affiliate_touch'" in note]
    assert paid and "name a channel" in paid[0]  # paid-looking, but no spend: said so
    lines = summary_lines(inference)
    assert any("sources.events.columns.touchpoint" in line and "channel" in line for line in lines)
    assert any("--attributable-share" in line for line in lines)
    assert "# attributable_share: 0.05" in text  # written commented out, with why
    with pytest.raises(ConfigError, match=r"report\.attributable_share"):
        load_config(path)
    # with the share, the same proposal is valid and every month reads cleanly
    _, path, _ = _propose(tmp_path, [events, spend], root=tmp_path, share=0.05)
    ok, lines = validate_inputs(tmp_path, path)
    assert ok, lines


def _write(tmp_path, frames):
    paths = []
    for name, frame in frames.items():
        frame.to_csv(tmp_path / name, index=False)
        paths.append(tmp_path / name)
    return paths


@pytest.mark.parametrize("flag", [False, True])
def test_an_interaction_type_column_says_which_rows_are_conversions(tmp_path, flag):
    events, spend = journey_month()
    if flag:  # a 0/1 column as well: it stays the conversion, the type still keeps touches out
        events["is_purchase"] = (events["interaction"] == "purchase").astype(int)
    files = _write(tmp_path, {"journeys.csv": events, "spend.csv": spend})
    inference, path, text = _propose(tmp_path, files, root=tmp_path, share=0.1)
    assert inference.columns["events"] == {
        "customer_id": "user_id",
        "timestamp": "event_time",
        "event_type": "interaction",
        "touchpoint": "source_medium",  # not the interaction: that is the event type
        "conversion": "is_purchase" if flag else None,
        "value": "revenue",
    }
    assert inference.conversion_types == ("purchase",)
    config = load_config(path)
    assert config.sources.events.conversion_types == ["purchase"]
    assert config.channels["google"].touchpoints == ["google / cpc"]
    evidence = inference.evidence()
    assert "the touches are click, page_view" in evidence["sources.events.columns.event_type"]
    if not flag:
        assert "conversion: null" in text
        assert "no 0/1 column" in evidence["sources.events.columns.conversion"]
    # every month reads cleanly; one month is too short a history, and validate says so
    ok, lines = validate_inputs(tmp_path, path)
    assert "panel: 4 weeks from 1 months" in lines
    assert not ok and lines[-1].startswith("error: weekly_panel: up to the end of 2024-03 the data")


def _quarterly(sheet):
    sheet = sheet.iloc[:30]  # whole quarters
    quarters = sheet.iloc[::3].reset_index(drop=True)
    # a quarter with a blank month stays blank
    sums = sheet.drop(columns="month").groupby(sheet.index // 3).sum(min_count=3)
    quarters[sums.columns] = sums.round(2)
    return quarters.rename(columns={"month": "quarter_start"})


def _year_and_month(sheet):
    dates = pd.to_datetime(sheet["month"])
    dated = sheet.drop(columns="month")
    dated.insert(0, "Month", dates.dt.strftime("%b"))  # Jan, Feb, ...
    dated.insert(0, "Year", dates.dt.year)
    return dated


@pytest.mark.parametrize(
    ("reshape", "dated_by", "period", "months"),
    [
        (lambda s: s, {"date": "month"}, "month", ("2022-01", "2024-07")),
        (_quarterly, {"date": "quarter_start"}, "quarter", ("2022-01", "2024-06")),
        (_year_and_month, {"year": "Year", "month": "Month"}, "month", ("2022-01", "2024-07")),
    ],
)
def test_a_coarse_sheet_is_spread_over_its_days_and_its_blanks_are_left_to_the_user(
    tmp_path, reshape, dated_by, period, months
):
    sheet = reshape(monthly_investment_sheet())
    [data] = _write(tmp_path, {"media.csv": sheet})
    inference, path, text = _propose(tmp_path, [data], root=tmp_path)
    config = load_config(path)
    panel = config.sources.panel
    assert panel.columns.date_fields() == dated_by and panel.row_period == period
    assert f"period: {period}" in text
    assert (config.project.partitions.start_month, config.project.partitions.end_month) == months
    assert config.project.week_start == "monday"
    assert set(config.channels) == {"TV", "Radio", "Print", "Facebook", "Google_Search"}
    assert config.channels["Radio"].spend_column == "Radio"  # the CSV header ' Radio', stripped
    assert config.model.target == "revenue" and config.attributable_share == 1.0
    # blanks: a note and a commented key with why, never set silently
    assert not panel.blank_as_zero
    [note] = [n for n in inference.notes if "blank" in n]
    assert "'Print' (4)" in note and "uncomment sources.panel.blank_as_zero: true" in note
    assert "# blank_as_zero: true" in text
    ok, lines = validate_inputs(tmp_path, path)
    assert not ok and "sources.panel.blank_as_zero: true" in lines[-1]
    path.write_text(text.replace("# blank_as_zero: true", "blank_as_zero: true"))
    ok, lines = validate_inputs(tmp_path, path)
    assert ok, lines
    if period == "month":  # the budget stage 2 defaults to: the spread spend of the last 13 weeks
        expected = spread_recent_spend(monthly_investment_sheet())
        assert inference.recent_spend == pytest.approx(expected)


@pytest.mark.parametrize("by_year_and_month", [False, True])
def test_a_monthly_spend_feed_gets_its_period(tmp_path, small_sample_dir, by_year_and_month):
    events, daily = write_journey_log(small_sample_dir, tmp_path)
    spend = pd.read_csv(daily, parse_dates=["date"])
    month = spend["date"].dt.to_period("M")
    monthly = spend.groupby([month, "channel"], as_index=False)["spend"].sum()
    monthly["spend"] = monthly["spend"].round(2)
    first_days = monthly.pop("date").dt.start_time
    if by_year_and_month:
        monthly.insert(0, "month", first_days.dt.month)
        monthly.insert(0, "year", first_days.dt.year)
    else:
        monthly.insert(0, "date", first_days.dt.strftime("%Y-%m-%d"))
    monthly.to_csv(daily, index=False)
    inference, path, _ = _propose(tmp_path, [events, daily], root=tmp_path, share=0.05)
    assert inference.periods == {"spend": "month"}
    dated_by = {"year": "year", "month": "month"} if by_year_and_month else {"date": "date"}
    assert inference.columns["spend"] == {**dated_by, "channel": "channel", "spend": "spend"}
    assert not any("monthly" in note for note in inference.notes)
    assert inference.months == (SMALL_MONTHS[0], SMALL_MONTHS[-1])
    config = load_config(path)
    assert config.sources.spend.row_period == "month"
    ok, lines = validate_inputs(tmp_path, path)
    assert ok, lines


def test_per_month_files_become_a_template(tmp_path, small_sample_dir):
    events = sorted((small_sample_dir / "events").glob("*.csv"))
    spend = sorted((small_sample_dir / "spend").glob("*.csv"))
    inference = inspect_files([*events, *spend, small_sample_dir / "controls.csv"])
    assert inference.paths["events"] == small_sample_dir / "events" / "{month}.csv"
    assert inference.paths["spend"] == small_sample_dir / "spend" / "{month}.csv"
    assert inference.paths["controls"] == small_sample_dir / "controls.csv"
    assert inference.columns["controls"] == {"date_column": "week_start"}
    document, _ = config_document(inference, "x", small_sample_dir, 0.05)
    config = parse_config(_without_unset(document))
    assert config.sources.events.path == "events/{month}.csv"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "file is empty"),
        (b"a,b\n1,2\n3,4\n", "no column of ISO 8601 dates"),
        (b"Date,sales,tv_spend\n01/02/2024,3,4\n08/02/2024,3,4\n", "holds dates like '01/02/2024'"),
        (b"date,colour\n2024-01-01,red\n2024-01-08,blue\n", "expected a weekly panel"),
        (b"date,sales\n2024-01-01,3\n2024-01-08,\xe94\n", "not valid UTF-8"),
        (b"date,sales,tv_spend\n2024-01-01,3,4\n2024-01-04,3,4\n", "3 day(s) apart"),
    ],
)
def test_unusable_files_are_refused_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "mine.csv"
    path.write_bytes(content)
    with pytest.raises(InputDataError) as raised:
        inspect_files([path])
    message = str(raised.value)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message


def test_render_yaml_inlines_plain_mappings_and_comments_unset_keys():
    document = {
        "channels": {"tv": {"spend_column": " TV spend"}},
        "sources": {"columns": {"date": "2024-01", "revenue": "yes"}},
        "report": {"attributable_share": Unset(0.05)},
    }
    comments = {"sources.columns.date": "ISO dates", "report.attributable_share": "required"}
    text = "\n".join(render_yaml(document, comments))
    assert 'tv: {spend_column: " TV spend"}' in text
    assert "# attributable_share: 0.05" in text and "# required" in text
    assert yaml.safe_load(text) == {
        "channels": {"tv": {"spend_column": " TV spend"}},
        "sources": {"columns": {"date": "2024-01", "revenue": "yes"}},  # strings stay strings
        "report": {},
    }


def test_data_outside_the_project_root_are_allowed_explicitly(tmp_path):
    data = tmp_path / "downloads" / "weekly.csv"
    data.parent.mkdir()
    total_sales_panel().to_csv(data, index=False)
    root = tmp_path / "project"
    root.mkdir()
    _, path, _ = _propose(tmp_path, [data], root=root)
    config = load_config(path)
    assert config.project.allow_paths_outside_root  # said in the config, not silently
    assert config.sources.panel.path == data.resolve().as_posix()
    ok, lines = validate_inputs(root, path)
    assert ok, lines


@pytest.mark.parametrize(
    ("suffix", "currency"), [("_EUR", "€"), (" usd", "$"), ("", None), ("mixed", None)]
)
def test_the_currency_the_spend_columns_name_reaches_the_report_section(tmp_path, suffix, currency):
    frame = total_sales_panel()
    names = list(SPEND_RANGES)
    if suffix == "mixed":  # two currencies: not guessed
        frame = frame.rename(columns={names[0]: f"{names[0]}_eur", names[1]: f"{names[1]}_gbp"})
    else:
        frame = frame.rename(columns={n: f"{n}{suffix}" for n in names})
    frame.to_csv(tmp_path / "weekly.csv", index=False)
    _, path, text = _propose(tmp_path, [tmp_path / "weekly.csv"], root=tmp_path)
    config = load_config(path)
    assert len(config.channels) == len(names)
    assert config.report.currency == (currency or "")
    if currency is None:
        assert "# currency:" in text and "set it, e.g." in text
    assert validate_inputs(tmp_path, path)[0]


def test_a_daily_sheet_is_read_as_days_summed_by_week(tmp_path):
    rng = np.random.default_rng(2)
    days = pd.date_range("2023-01-04", periods=400, freq="D")  # a Wednesday
    frame = pd.DataFrame(
        {
            "Day": days.strftime("%Y-%m-%d"),
            "Google Ads": rng.uniform(100, 900, len(days)).round(2),
            "TV Spend": np.where(days.isocalendar().week.to_numpy() % 4 < 2, 3000.0, 0.0),
            "Sales (€)": rng.normal(5000, 300, len(days)).round(2),
        }
    )
    frame.to_csv(tmp_path / "daily.csv", index=False)
    inference, path, text = _propose(tmp_path, [tmp_path / "daily.csv"], root=tmp_path)
    assert inference.periods == {"panel": "day"}
    assert "daily rows" in text and "summed by week" in text
    config = load_config(path)
    assert config.sources.panel.period == "day" and config.report.currency == "€"
    assert set(config.channels) == {"Google_Ads", "TV"}
    ok, lines = validate_inputs(tmp_path, path)
    assert ok, lines
    assert "weekly_panel: 56 weeks, 2 channels" in lines  # Monday 9 Jan 2023 on, whole weeks
    # the budget default: the 13 complete weeks to Sunday 4 February 2024 (the data end on a
    # Wednesday)
    recent = frame[(days >= "2023-11-06") & (days <= "2024-02-04")]
    assert inference.recent_spend == pytest.approx(
        recent[["Google Ads", "TV Spend"]].to_numpy().sum()
    )


@pytest.mark.parametrize(
    "form",
    ["%d/%m/%Y", "%m/%d/%Y", "%d.%m.%y", "%Y/%m/%d", "%Y%m%d", "%d-%b-%Y", "%b %d, %Y"],
)
def test_dates_written_day_or_month_first_are_read_in_the_one_form_that_fits(tmp_path, form):
    frame = total_sales_panel()
    iso = pd.to_datetime(frame["Week"])
    frame["Week"] = iso.dt.strftime(form)
    frame.to_csv(tmp_path / "weekly.csv", index=False)
    inference, path, _ = _propose(tmp_path, [tmp_path / "weekly.csv"], root=tmp_path)
    assert inference.date_formats == {"panel": form}
    config = load_config(path)
    assert config.sources.panel.date_format == form
    ok, lines = validate_inputs(tmp_path, path)
    assert ok, lines
    panel = build_panel_from_file(tmp_path / "weekly.csv", config)
    assert list(panel.weeks) == list(iso)
    # a row in another form is refused, naming its line and the form expected
    frame.loc[5, "Week"] = iso[5].strftime("%Y-%m-%d")
    frame.to_csv(tmp_path / "weekly.csv", index=False)
    example = pd.Timestamp("2024-01-20").strftime(form)
    expected = rf"line 7, column 'Week': expected a date like '{re.escape(example)}' \(sources"
    with pytest.raises(InputDataError, match=expected):
        build_panel_from_file(tmp_path / "weekly.csv", config)


def test_dates_that_read_day_or_month_first_alike_are_left_to_the_user(tmp_path):
    frame = total_sales_panel().head(2)  # 3 and 10 January: no day above 12
    frame["Week"] = pd.to_datetime(frame["Week"]).dt.strftime("%d/%m/%Y")
    frame.to_csv(tmp_path / "weekly.csv", index=False)
    with pytest.raises(InputDataError, match=r"read as %d/%m/%Y or %m/%d/%Y alike"):
        inspect_files([tmp_path / "weekly.csv"])


def test_spend_named_in_thousands_is_read_in_the_revenues_money(tmp_path):
    """'TV (k$)' columns: init proposes spend_unit 1000, the channels keep plain names and the
    panel's spend, like the default budget, is in the money the sales are in."""
    frame = total_sales_panel()
    names = list(SPEND_RANGES)
    in_thousands = {n: f"{n.split('_')[0].split()[0].strip()} (k$)" for n in names}
    thousands = frame.rename(columns=in_thousands)
    thousands[list(in_thousands.values())] = (frame[names] / 1000).round(5)
    thousands.to_csv(tmp_path / "weekly.csv", index=False)
    inference, path, text = _propose(tmp_path, [tmp_path / "weekly.csv"], root=tmp_path)
    assert inference.spend_units == {"panel": 1000}
    assert "spend_unit: 1000" in text and "every spend column is named in thousands" in text
    config = load_config(path)
    assert set(config.channels) == {"TV", "search", "Social", "OOH"}
    assert inference.recent_spend == pytest.approx(recent_spend(frame), rel=1e-6)
    assert validate_inputs(tmp_path, path)[0]
    panel = build_panel_from_file(tmp_path / "weekly.csv", config)
    spend = panel.frame[[f"spend__{c}" for c in config.channels]].to_numpy()
    np.testing.assert_allclose(spend, frame[names].to_numpy(), rtol=1e-6)


def test_spend_columns_in_different_money_are_left_to_the_user(tmp_path):
    frame = total_sales_panel()
    names = list(SPEND_RANGES)
    frame = frame.rename(columns={names[0]: "TV (k$)"})
    frame["TV (k$)"] = frame["TV (k$)"] / 1000
    frame.to_csv(tmp_path / "weekly.csv", index=False)
    inference, _, text = _propose(tmp_path, [tmp_path / "weekly.csv"], root=tmp_path)
    assert inference.spend_units == {} and "spend_unit" not in text
    assert any("not all in the same money: 'TV (k$)' x 1,000" in n for n in inference.notes)


def test_a_spreadsheet_export_with_semicolons_and_decimal_commas_reads_as_its_numbers(tmp_path):
    """A spreadsheet in a decimal-comma locale saves 'Week;Sales;...' with 1.234,56 and
    31.12.2023: init proposes the config, and the panel holds the same numbers as the
    comma-separated file would."""
    frame = total_sales_panel()
    frame[list(SPEND_RANGES)] = frame[list(SPEND_RANGES)].round(2)
    iso = pd.to_datetime(frame["Week"])
    export = frame.assign(Week=iso.dt.strftime("%d.%m.%Y"))
    text = export.to_csv(sep=";", index=False, decimal=",", float_format="%.2f")
    # thousands grouped with '.', as the locale's spreadsheet shows them
    text = re.sub(r"(?<![\d.,])(\d{1,3})(\d{3}),", r"\1.\2,", text)
    assert ".000," in text or re.search(r"\d\.\d{3},\d\d", text)
    (tmp_path / "weekly.csv").write_text(text)
    inference, path, _ = _propose(tmp_path, [tmp_path / "weekly.csv"], root=tmp_path)
    config = load_config(path)
    assert config.sources.panel.date_format == "%d.%m.%Y"
    assert validate_inputs(tmp_path, path)[0]
    panel = build_panel_from_file(tmp_path / "weekly.csv", config)
    assert list(panel.weeks) == list(iso)
    spend = panel.frame[[f"spend__{c}" for c in config.channels]].to_numpy()
    np.testing.assert_allclose(
        np.sort(spend.sum(axis=0)),
        np.sort(frame[list(SPEND_RANGES)].to_numpy().sum(axis=0)),
        rtol=1e-9,
    )
    assert inference.recent_spend == pytest.approx(recent_spend(frame), rel=1e-6)


@pytest.mark.parametrize("spend_in_thousands", [True, False])
def test_spend_is_read_in_the_money_a_revenue_in_thousands_is_in(tmp_path, spend_in_thousands):
    """'Total Sales (k$)': spend named in thousands too is read as it is (budgets in
    thousands, with a note); spend in plain money is divided into thousands."""
    frame = total_sales_panel()
    names = list(SPEND_RANGES)
    export = frame.rename(columns={"Total Sales": "Total Sales (k$)"})
    export["Total Sales (k$)"] = (frame["Total Sales"] / 1000).round(5)
    if spend_in_thousands:
        in_thousands = {n: f"{n.split('_')[0].split()[0].strip()} (k$)" for n in names}
        export = export.rename(columns=in_thousands)
        export[list(in_thousands.values())] = (frame[names] / 1000).round(5)
    export.to_csv(tmp_path / "weekly.csv", index=False)
    inference, path, text = _propose(tmp_path, [tmp_path / "weekly.csv"], root=tmp_path)
    config = load_config(path)
    if spend_in_thousands:
        assert inference.spend_units == {} and "spend_unit" not in text
        assert any("spend and revenue are both named in thousands" in n for n in inference.notes)
    else:
        assert inference.spend_units == {"panel": 0.001}
        assert "spend_unit: 0.001" in text and "the revenue in thousands" in text
    panel = build_panel_from_file(tmp_path / "weekly.csv", config)
    spend = panel.frame[[f"spend__{c}" for c in config.channels]].to_numpy()
    np.testing.assert_allclose(spend, frame[names].to_numpy() / 1000, rtol=1e-6)
    assert inference.recent_spend == pytest.approx(recent_spend(frame) / 1000, rel=1e-6)


def test_bare_media_names_are_channels(tmp_path):
    """The textbook layout, 'Week,TV,Radio,Newspaper,Sales': each medium is a channel."""
    weeks = pd.date_range("2022-01-03", periods=60, freq="7D")
    rng = np.random.default_rng(0)
    media = {m: rng.uniform(1, 100, 60).round(1) for m in ("TV", "Radio", "Newspaper")}
    sales = 7 + 0.05 * media["TV"] + 0.1 * media["Radio"] + rng.normal(0, 1, 60)
    frame = pd.DataFrame({"Week": weeks.strftime("%Y-%m-%d"), **media, "Sales": sales.round(1)})
    frame.to_csv(tmp_path / "advertising.csv", index=False)
    inference, path, _ = _propose(tmp_path, [tmp_path / "advertising.csv"], root=tmp_path)
    assert [c.name for c in inference.channels] == ["TV", "Radio", "Newspaper"]
    assert not inference.controls
    assert validate_inputs(tmp_path, path)[0]


def test_money_written_with_its_currency_sign_is_read_and_names_the_report_currency(tmp_path):
    """'$146,756.00' in every spend and sales cell: the numbers are read, and the report
    shows '$' though no column name says so."""
    frame = total_sales_panel()
    money = [*SPEND_RANGES, "Total Sales"]
    export = frame.copy()
    export[money] = frame[money].apply(lambda column: column.map(lambda v: f"${v:,.2f}"))
    export.to_csv(tmp_path / "weekly.csv", index=False)
    assert '"$3,' in (tmp_path / "weekly.csv").read_text()
    inference, path, text = _propose(tmp_path, [tmp_path / "weekly.csv"], root=tmp_path)
    assert load_config(path).report.currency == "$"
    assert "the money columns say so (the values of 'TV_Spend'" in text
    assert inference.recent_spend == pytest.approx(recent_spend(frame), rel=1e-9)
    panel = build_panel_from_file(tmp_path / "weekly.csv", load_config(path))
    assert panel.frame["revenue"].sum() == pytest.approx(frame["Total Sales"].sum(), rel=1e-12)


@pytest.mark.parametrize("form", ["%G-W%V", "%GW%V", "%G-W%V-%u"])
def test_iso_week_dates_are_read_as_their_mondays(tmp_path, form):
    """'2024-W03' is ISO 8601 too (Looker, Tableau and ISOWEEKNUM sheets write it): init
    maps it, and the panel's weeks are the weeks' Mondays; a bad week is named."""
    frame = total_sales_panel()
    iso = pd.to_datetime(frame["Week"])
    frame["Week"] = iso.dt.strftime(form)
    frame.to_csv(tmp_path / "weekly.csv", index=False)
    _, path, _ = _propose(tmp_path, [tmp_path / "weekly.csv"], root=tmp_path)
    config = load_config(path)
    assert config.sources.panel.columns.date == "Week"
    assert config.project.week_start == "monday"
    assert validate_inputs(tmp_path, path)[0]
    panel = build_panel_from_file(tmp_path / "weekly.csv", config)
    assert list(panel.weeks) == list(iso)
    frame.loc[4, "Week"] = "2023-W54"
    frame.to_csv(tmp_path / "weekly.csv", index=False)
    with pytest.raises(InputDataError, match=r"line 6, column 'Week': expected an ISO 8601 date"):
        build_panel_from_file(tmp_path / "weekly.csv", config)


def test_a_spend_file_given_with_a_weekly_panel_is_named_with_what_to_do(tmp_path):
    frame = total_sales_panel()
    frame[["Week", "Total Sales"]].to_csv(tmp_path / "sales.csv", index=False)
    spend = frame.melt(id_vars="Week", value_vars=list(SPEND_RANGES), var_name="channel")
    spend.rename(columns={"value": "spend"}).to_csv(tmp_path / "spend.csv", index=False)
    with pytest.raises(InputDataError) as raised:
        inspect_files([tmp_path / "spend.csv", tmp_path / "sales.csv"])
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'spend.csv'}: this looks like a spend file, given ")
    assert f"with the weekly panel {tmp_path / 'sales.csv'}" in message
    assert "join the spend into the panel file (one row per week)" in message


def test_an_event_logs_spend_written_in_euros_names_the_report_currency(tmp_path, small_sample_dir):
    """The spend feed's '€1,234.56' cells: read as the plain numbers, and the report shows '€'."""
    events, spend = write_journey_log(small_sample_dir, tmp_path / "data")
    feed = pd.read_csv(spend)
    feed.to_csv(tmp_path / "plain.csv", index=False)
    feed["spend"] = feed["spend"].map(lambda v: f"€{v:,.2f}")
    feed.to_csv(spend, index=False)
    _, path, text = _propose(tmp_path, [events, spend], root=tmp_path, share=0.05)
    config = load_config(path)
    assert config.report.currency == "€"
    assert "the values of 'spend'" in text
    ok, lines = validate_inputs(tmp_path, path)
    assert ok, lines
    month = SMALL_MONTHS[0]
    euros, plain = (read_month_spend(f, config, month) for f in (spend, tmp_path / "plain.csv"))
    pd.testing.assert_series_equal(euros["spend"], plain["spend"])
