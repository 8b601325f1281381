"""Attribution-scoped report: headline math, escaping, format agreement, writing, browser view."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import time
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from conversionflow_dagster.core.errors import ContractError
from conversionflow_dagster.core.model.priors import PRIORS
from conversionflow_dagster.core.report import plots as report_plots
from conversionflow_dagster.core.report.data import (
    build_tables,
    cell_text,
    display,
    headline_figures,
    headline_table,
    num,
    payback_cell,
    recommendation,
    share_statement,
    summarise,
)
from conversionflow_dagster.core.report.plots import plot_label
from conversionflow_dagster.core.report.render import (
    render_html,
    report_csv,
    report_id,
    report_json,
    write_report,
)
from conversionflow_dagster.core.report.summary import summary_markdown
from conversionflow_dagster.core.stats import hdi
from conversionflow_tests.conftest import CHROMIUM_ARGS, REPO, chromium_executable
from conversionflow_tests.core.report_fixtures import (
    CHANNELS,
    CUSTOMER_VALUE_HORIZON_DAYS,
    build_report_data,
)

SCRIPT_CHANNEL = "<script>alert(1)</script>"
IMG_FILE = "<img src=x onerror=alert(2)>"
HOSTILE_CHANNELS = (*CHANNELS[:2], SCRIPT_CHANNEL, "tv $x$ promo", "_internal", CHANNELS[-1])
# Names that mean something in Markdown: tables, emphasis, code, links, escapes and raw HTML.
MARKDOWN_CHANNELS = (
    SCRIPT_CHANNEL,
    "tv|radio *promo*",
    "_internal_",
    "`ad` [x](http://example.com)",
    "back\\slash & <b>",
    "email",
)
HEADLINE_IDS = {
    "headline-raw-improvement": ("raw_improvement", "mean"),
    "headline-raw-low": ("raw_improvement", "hdi_low"),
    "headline-raw-high": ("raw_improvement", "hdi_high"),
    "headline-raw-probability": ("raw_improvement", "p_positive"),
    "headline-business-claim": ("business_claim", "mean"),
    "headline-business-low": ("business_claim", "hdi_low"),
    "headline-business-high": ("business_claim", "hdi_high"),
    "headline-business-probability": ("business_claim", "p_positive"),
    "headline-absolute-uplift": ("absolute_uplift", "mean"),
    "headline-current-outcome": ("current_outcome", "mean"),
}
PLOT_IDS = (
    "plot-response-curves",
    "plot-contributions",
    "plot-ppc",
    "plot-roas",
    "plot-stability",
)
SCRIPT_PRIOR = "<script>alert(3)</script>"
HOSTILE_PRIORS = {  # as a trace's `priors` attribute holds them, plus a name that injects markup
    **{
        name: {"distribution": p.family, "parameters": dict(p.default), "source": "default"}
        for name, p in PRIORS.items()
        if name in ("trend", "media_effect", "adstock_decay", "saturation_lam")
    },
    "intercept": {
        "distribution": "Normal",
        "parameters": {"loc": 0.8, "scale": 0.3},
        "source": "config",
    },
    SCRIPT_PRIOR: {"distribution": "<b>Normal</b>", "parameters": {"loc": 0}, "source": "default"},
}
NEW_SECTIONS = {  # section id: (heading, table)
    "section-customer-value": ("Customer value (LTV:CAC)", "customer_value"),
    "section-lift-tests": ("Campaign lift tests", "lift_tests"),
}


@pytest.fixture(scope="module")
def hostile():
    """Realistic data whose channel, test and file names try to inject markup."""
    return build_report_data(
        channels=HOSTILE_CHANNELS,
        source_files=("journeys_2024.csv", IMG_FILE),
        assumptions=("Dealer visits <b>not</b> tracked before 2024.",),
        lift_tests=True,
        customer_value=True,
        priors=HOSTILE_PRIORS,
    )


@pytest.fixture(scope="module")
def hostile_html(hostile) -> str:
    return render_html(hostile)


class PageParser(HTMLParser):
    """Text of elements with an id, tables by id (header keys, keyed rows), images, all text."""

    VOID = frozenset({"img", "meta", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text_by_id: dict[str, str] = {}
        self.tables: dict[str, dict] = {}
        self.images: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._open: list[str | None] = []
        self._table: dict | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), {"keys": [], "rows": []})
        elif tag == "th" and self._table is not None:
            self._table["keys"].append(attrs.get("data-key"))
        elif tag == "tr" and self._table is not None and "data-key" not in attrs:
            self._table["rows"].append((None, []))
        elif tag == "tr" and self._table is not None:
            self._table["rows"].append((attrs["data-key"], []))
        elif tag == "td":
            self._cell = []
        if tag not in self.VOID:
            self._open.append(attrs.get("id"))
            if attrs.get("id"):
                self.text_by_id[attrs["id"]] = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._table["rows"][-1][1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table":
            self._table = None
        if tag not in self.VOID and self._open:
            self._open.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        for element_id in filter(None, self._open):
            self.text_by_id[element_id] += data


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    for table in parser.tables.values():
        table["rows"] = [row for row in table["rows"] if row[1]]  # drop the header row
    return parser


def parse_shown(text: str, currency: str) -> float | None:
    """The number behind a displayed cell: strip currency, separators and %."""
    if text == "—":
        return None
    bare = text.replace(currency, "").replace(",", "")
    return float(bare[:-1]) / 100 if bare.endswith("%") else float(bare)


def assert_same(shown: str, stored, currency: str) -> None:
    if isinstance(stored, bool):
        assert shown == ("yes" if stored else "no")
    elif isinstance(stored, str):
        assert shown == stored
    elif stored is None:
        assert shown in ("—", "")
    else:
        assert parse_shown(shown, currency) == pytest.approx(stored, rel=1e-12, abs=1e-12)


def flatten(node, path=()):
    """{path: leaf} of a JSON document."""
    if isinstance(node, dict):
        return {
            k: v for key, child in node.items() for k, v in flatten(child, (*path, key)).items()
        }
    if isinstance(node, list):
        return {k: v for i, child in enumerate(node) for k, v in flatten(child, (*path, i)).items()}
    return {path: node}


# --- headline math ------------------------------------------------------------------------


def test_headline_from_constant_draws_is_exact():
    current, uplift = np.full(200, 1000.0), np.full(200, 50.0)
    headline = headline_figures(current, uplift, 0.05)
    assert headline.raw_improvement == summarise(np.full(200, 0.05))
    assert (headline.raw_improvement.mean, headline.raw_improvement.p_positive) == (0.05, 1.0)
    assert headline.business_claim.mean == pytest.approx(0.0025)
    assert headline.business_claim.hdi_low == pytest.approx(0.0025)
    assert headline.absolute_uplift.mean == 50.0
    assert headline.current_outcome.mean == 1000.0
    # the base of the % figures is an observed total: its row shows no interval
    base = headline_table(headline, "conversions").row("current_outcome")
    assert display(base["mean"]) == "1,000"
    assert (cell_text(base["hdi_low"]), cell_text(base["hdi_high"])) == ("—", "—")
    assert "base of the % figures" in base["figure"]


def test_business_claim_is_raw_improvement_times_share():
    rng = np.random.default_rng(1)
    current = rng.normal(10_000, 500, 1000)
    uplift = rng.normal(300, 250, 1000)
    headline = headline_figures(current, uplift, 0.05)
    raw, business = headline.raw_improvement, headline.business_claim
    assert raw.mean == pytest.approx(np.mean(uplift / current))
    assert (raw.hdi_low, raw.hdi_high) == hdi(uplift / current)
    assert 0 < raw.p_positive < 1
    assert business.mean == pytest.approx(raw.mean * 0.05)
    assert business.hdi_low == pytest.approx(raw.hdi_low * 0.05)
    assert business.hdi_high == pytest.approx(raw.hdi_high * 0.05)
    assert business.p_positive == raw.p_positive


def test_changing_the_share_changes_only_the_business_claim():
    data = build_report_data()
    before = flatten(json.loads(report_json(data)))
    after = flatten(json.loads(report_json(dataclasses.replace(data, attributable_share=0.2))))
    changed = {path for path in before if before[path] != after[path]}
    assert before.keys() == after.keys()
    business = {
        ("tables", "headline", "business_claim", c) for c in ("mean", "hdi_low", "hdi_high")
    }
    assert business <= changed
    assert {p for p in changed - business if p[0] != "scope"} == {("attributable_share",)}
    ratio = (
        after[("tables", "headline", "business_claim", "mean")]
        / before[("tables", "headline", "business_claim", "mean")]
    )
    assert ratio == pytest.approx(4.0, rel=0.05)  # within rounding of the displayed figure


@pytest.mark.parametrize(
    "changes",
    [
        {"attributable_share": 0.0},
        {"attributable_share": 1.5},
        {"uplift_draws": np.zeros(3)},
        {"current_outcome_draws": np.zeros(400)},
        {"target": "profit"},
        {"diagnostics": {"max_r_hat": 1.0}},
        {"lift_tests": pd.DataFrame({"test_id": ["T1"], "channel": ["tv"]})},
        {"customer_value": pd.DataFrame({"channel": ["tv"], "ltv_mean": [10.0]})},
        {"customer_value_horizon_days": 0},
    ],
)
def test_inconsistent_inputs_are_refused(changes):
    with pytest.raises(ContractError, match="report data"):
        dataclasses.replace(build_report_data(n_draws=400), **changes)


def test_numbers_are_rounded_once_and_displayed_without_new_digits():
    assert display(num(-1234.4, "money"), "€") == "-€1,234"
    assert display(num(53300.2, "money", signed=True), "€") == "+€53,300"
    assert display(num(0.06149, "percent", signed=True)) == "+6.1%"
    assert display(num(0.006149, "percent_fine")) == "0.61%"
    assert display(num(-0.0004, "percent")) == "0.0%"
    assert num(0.00074849, "ratio").value == 0.000748
    assert display(num(0.00074849, "ratio")) == "0.000748"
    assert display(num(12345.6, "ratio")) == "12,300"
    assert display(num(1480.4, "integer")) == "1,480"
    assert display(num(None, "money")) == display(num(float("nan"), "fixed3")) == "—"
    assert display(num(34.29486, "unit_money"), "€") == "€34.29"
    assert num(3.7749e-07, "pvalue").value == 3.77e-07
    assert display(num(3.7749e-07, "pvalue")) == "3.77e-07"
    assert display(num(0.021778, "pvalue")) == "0.0218"
    assert display(num(1.0, "pvalue")) == "1.00"
    # counts: a tenth of a conversion is shown only where it is not noise
    assert display(num(994585.84, "count", signed=True)) == "+994,586"
    assert display(num(-100.04, "count")) == "-100"
    assert display(num(42.44, "count")) == "42.4"
    # money at a small scale (spend in thousands) keeps its cents
    assert display(num(4.3749, "money"), "€") == "€4.37"


def test_plot_labels_never_turn_into_mathtext():
    assert plot_label("tv $x$ promo") == r"tv \$x\$ promo"
    assert plot_label("_internal").strip() == "_internal"
    assert not plot_label("_internal").startswith("_")


# --- HTML ---------------------------------------------------------------------------------


def test_names_from_data_are_escaped(hostile_html):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile_html
    assert "&lt;img src=x onerror=alert(2)&gt;" in hostile_html
    assert "<script" not in hostile_html.lower()
    assert "onerror=" not in hostile_html.replace("&lt;img src=x onerror=alert(2)&gt;", "")
    page = parse_page(hostile_html)
    text = "".join(page.text)
    assert SCRIPT_CHANNEL in text
    assert IMG_FILE in text
    assert "Dealer visits <b>not</b> tracked before 2024." in text
    assert "script" not in page.tags
    assert len(page.images) == len(PLOT_IDS)
    lift_rows = page.tables["table-lift_tests"]["rows"]
    assert f"LT-03 {SCRIPT_CHANNEL}" in [cells[0] for _, cells in lift_rows]
    assert SCRIPT_CHANNEL in [cells[1] for _, cells in lift_rows]
    assert SCRIPT_CHANNEL in [cells[0] for _, cells in page.tables["table-customer_value"]["rows"]]


def test_page_is_self_contained(hostile_html):
    page = parse_page(hostile_html)
    assert "http://" not in hostile_html and "https://" not in hostile_html
    assert {tag for tag in page.tags} & {"script", "link", "iframe", "object"} == set()
    for image in page.images:
        assert image["src"].startswith("data:image/png;base64,")
        assert image["alt"]
    assert [image["id"] for image in page.images] == [
        "plot-response-curves",
        "plot-ppc",
        "plot-contributions",
        "plot-roas",
        "plot-stability",
    ]


def test_the_page_template_ships_with_the_package():
    """A non-editable install carries only declared package data: without it no report renders."""
    import fnmatch
    import tomllib
    from pathlib import Path

    from conversionflow_dagster.core.report import render

    template = Path(render.__file__).with_name("template.html.j2")
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    patterns = package_data["conversionflow_dagster.core.report"]
    assert template.is_file() and any(fnmatch.fnmatch(template.name, p) for p in patterns)


def test_html_csv_and_json_carry_the_same_numbers(hostile, hostile_html):
    page = parse_page(hostile_html)
    document = json.loads(report_json(hostile))
    stored_csv = {
        (row["table"], row["row"], row["column"]): row["value"]
        for row in csv.DictReader(io.StringIO(report_csv(hostile)))
    }
    currency = hostile.currency
    checked = 0
    for name, rows in document["tables"].items():
        shown = page.tables[f"table-{name}"]
        keyed = isinstance(rows, dict)
        items = list(rows.items()) if keyed else list(enumerate(rows))
        assert len(shown["rows"]) == len(items)
        for (row_key, cells), (shown_key, texts) in zip(items, shown["rows"], strict=True):
            assert shown_key == (row_key if keyed else None)
            assert shown["keys"] == list(cells)
            for (column, value), text in zip(cells.items(), texts, strict=True):
                assert_same(text, value, currency)
                in_csv = stored_csv[(name, str(row_key), column)]
                if isinstance(value, bool):
                    assert in_csv == str(value).lower()
                elif isinstance(value, int | float):
                    assert float(in_csv) == value
                else:
                    assert in_csv == ("" if value is None else value)
                checked += 1
    assert checked > 100
    assert {"lift_tests", "customer_value"} <= set(document["tables"])
    assert {"lift_tests", "customer_value"} <= {table for table, _, _ in stored_csv}
    assert stored_csv[("report", "", "customer_value_horizon_days")] == "365"
    for element_id, (row, column) in HEADLINE_IDS.items():
        value = document["tables"]["headline"][row][column]
        assert_same(page.text_by_id[element_id].strip(), value, currency)
    assert stored_csv[("report", "", "attributable_share")] == "0.05"


def test_headline_reads_as_a_scoped_claim(hostile, hostile_html):
    page = parse_page(hostile_html)
    business = page.text_by_id["card-business"]
    assert "of total sales" in business
    assert "5% of sales the journey data sees" in business
    assert "other 95% is unchanged" in business
    assert page.text_by_id["diagnostics-status"].strip() == "Diagnostics passed"
    assert "Move €" in page.text_by_id["recommendation"]
    scope = page.text_by_id["scope"]
    for topic in ("Observational data", "Attributable share", "Steady-state", "Planning horizon"):
        assert topic in scope


def test_lift_test_and_customer_value_sections_are_absent_without_their_data():
    data = build_report_data()
    html = render_html(data)
    page = parse_page(html)
    document = json.loads(report_json(data))
    tables = {row["table"] for row in csv.DictReader(io.StringIO(report_csv(data)))}
    for section_id, (heading, table) in NEW_SECTIONS.items():
        assert section_id not in page.text_by_id
        assert heading not in html
        assert f"table-{table}" not in page.tables
        assert table not in document["tables"]
        assert table not in tables
    assert "customer_value_horizon_days" not in document
    assert [t.name for t in build_tables(data).all] == [
        "headline",
        "allocation",
        "scenarios",
        "diagnostics",
        "roas",
    ]


def test_lift_test_and_customer_value_sections_explain_their_figures(hostile_html):
    page = parse_page(hostile_html)
    lift = " ".join(page.text_by_id["section-lift-tests"].split())
    assert lift.startswith("Campaign lift tests")
    for phrase in (
        "chi-square test",
        "p-value",
        "significant at 95% when it is below 5%",
        "P(test > control) is the probability",
        "94% HDI",
        '"Used in fit" marks the tests',
    ):
        assert phrase in lift
    value = " ".join(page.text_by_id["section-customer-value"].split())
    assert value.startswith("Customer value (LTV:CAC)")
    for phrase in (
        f"over the {CUSTOMER_VALUE_HORIZON_DAYS} days (about 12 months) after acquisition",
        "spend divided by the customers it acquired",
        "below 1 the channel loses money",
        "from 1 to 3 it is marginal",
        "3 or more is healthy",
        "months until a customer's cumulative value covers the CAC",
    ):
        assert phrase in value
    text = "".join(page.text)
    assert (
        text.index("Headline figures in detail")
        < text.index("Customer value (LTV:CAC)")
        < text.index("Campaign lift tests")
        < text.index("Model checks")
    )


def test_lift_test_rows_read_the_analysis(hostile):
    frame = hostile.lift_tests
    table = build_tables(hostile).lift_tests
    assert len(table.rows) == len(frame)
    for row, test in zip(table.rows, frame.itertuples(index=False), strict=True):
        met = [level for level in (99, 95, 90) if getattr(test, f"significant_{level}")]
        assert row["significant_at"] == (f"{met[0]}%" if met else "not significant")
        assert row["p_value"].value == pytest.approx(test.p_value, rel=5e-3)
        assert row["relative_lift"].value == pytest.approx(test.relative_lift, abs=5e-4)
        assert row["p_test_better"].value == pytest.approx(test.p_test_better, abs=5e-4)
        assert row["period"] == f"{test.start:%Y-%m-%d} to {test.end:%Y-%m-%d}"
        assert row["calibrated"] is bool(test.calibrated)
    assert {row["significant_at"] for row in table.rows} == {
        "99%",
        "95%",
        "90%",
        "not significant",
    }
    without = dataclasses.replace(hostile, lift_tests=frame.drop(columns="calibrated"))
    assert "calibrated" not in [c.key for c in build_tables(without).lift_tests.columns]
    assert "Used in fit" not in render_html(without)


def test_customer_value_rows_and_payback_beyond_the_horizon(hostile):
    frame = hostile.customer_value
    table = build_tables(hostile).customer_value
    for row, channel in zip(table.rows, frame.itertuples(index=False), strict=True):
        assert row["channel"] == channel.channel
        assert row["quality_band"] == channel.quality_band
        assert row["cac"].value == pytest.approx(channel.spend / channel.customers, abs=0.005)
        assert row["ltv_cac"].value == pytest.approx(channel.ltv_cac, rel=5e-3)
        if np.isnan(channel.payback_months):
            assert row["payback_months"] == "not within 12 months"
        else:
            assert row["payback_months"].value == round(channel.payback_months, 1)
    assert {row["quality_band"] for row in table.rows} == {
        "below 1: loses money",
        "1-3: marginal",
        "3+: healthy",
    }
    assert "not within 12 months" in [row["payback_months"] for row in table.rows]
    assert payback_cell(float("nan"), 180) == "not within 5.9 months"
    assert payback_cell(float("nan"), None) == "not within the horizon"
    assert payback_cell(float("nan"), 365, cac=float("nan")) is None  # nothing to pay back


def test_a_channel_without_spend_or_customers_shows_missing_figures(hostile):
    frame = hostile.customer_value.copy()
    empty = ["ltv_mean", "ltv_low", "ltv_high", "cac", "cac_low", "cac_high", "ltv_cac"]
    frame.loc[0, [*empty, "ltv_cac_low", "ltv_cac_high", "payback_months"]] = np.nan
    frame.loc[0, ["customers", "spend"]] = (0, 0.0)
    frame["quality_band"] = frame["quality_band"].astype(object)
    frame.loc[0, "quality_band"] = None
    data = dataclasses.replace(hostile, customer_value=frame)
    row = json.loads(report_json(data))["tables"]["customer_value"][0]
    assert row["customers"] == 0 and row["spend"] == 0
    assert all(row[key] is None for key in (*empty, "quality_band", "payback_months"))


def test_twenty_channels_render_quickly_and_one_refit_month_has_no_stability_plot():
    data = build_report_data(channels=tuple(f"channel {i}" for i in range(20)), stability_months=1)
    started = time.perf_counter()
    html = render_html(data)
    assert time.perf_counter() - started < 10
    page = parse_page(html)
    assert "plot-stability" not in {image["id"] for image in page.images}
    assert len(page.tables["table-allocation"]["rows"]) == 20


# --- writing ------------------------------------------------------------------------------


def test_formats_are_selectable_and_the_directory_is_created(tmp_path):
    data = build_report_data(seed=2)
    target = tmp_path / "nested" / "reports"
    paths = write_report(data, target, formats=("json", "csv"), basename="q3")
    assert paths == {"json": target / "q3.json", "csv": target / "q3.csv"}
    assert sorted(p.name for p in target.iterdir()) == ["q3.csv", "q3.json"]
    assert json.loads(paths["json"].read_text())["project"] == data.project
    assert paths["csv"].read_text().startswith("table,row,column,value\n")


def test_unknown_format_is_rejected_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"unknown report format.*'pdf'"):
        write_report(build_report_data(), tmp_path / "out", formats=("json", "pdf"))
    assert not (tmp_path / "out").exists()


def test_a_failing_render_leaves_the_previous_report_intact(
    hostile, hostile_html, tmp_path, monkeypatch
):
    previous = {"html": hostile_html, "csv": report_csv(hostile), "json": report_json(hostile)}
    paths = {fmt: tmp_path / f"attribution_report.{fmt}" for fmt in previous}
    for fmt, text in previous.items():
        paths[fmt].write_text(text, encoding="utf-8")
    before = {fmt: path.read_bytes() for fmt, path in paths.items()}

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(report_plots, "ppc_png", broken)
    changed = dataclasses.replace(hostile, attributable_share=0.5)
    with pytest.raises(RuntimeError, match="figure failed"):
        write_report(changed, tmp_path)
    assert {fmt: path.read_bytes() for fmt, path in paths.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


# --- in a browser -------------------------------------------------------------------------


@pytest.mark.slow
def test_report_in_headless_chromium(hostile, tmp_path):
    executable = chromium_executable()
    sync_api = pytest.importorskip("playwright.sync_api")
    html_path = write_report(hostile, tmp_path, formats=("html",))["html"]
    tables = json.loads(report_json(hostile))["tables"]
    expected = tables["headline"]
    dialogs = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(html_path.as_uri(), wait_until="load")
            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
            headline = {i: page.inner_text(f"#{i}").strip() for i in HEADLINE_IDS}
            widths = page.evaluate(
                "() => Object.fromEntries([...document.images].map(i => [i.id, i.naturalWidth]))"
            )
            scripts = page.evaluate("() => document.getElementsByTagName('script').length")
            headings = {s: page.inner_text(f"#{s} h2").strip() for s in NEW_SECTIONS}
            cells = page.evaluate(
                """names => Object.fromEntries(names.map(name => [name,
                    [...document.querySelectorAll(`#table-${name} tbody tr`)].map(
                        row => [...row.cells].map(cell => cell.innerText.trim()))]))""",
                [table for _, table in NEW_SECTIONS.values()],
            )
            body = page.inner_text("body")
        finally:
            browser.close()
    assert screenshot.stat().st_size > 50_000
    for element_id, (row, column) in HEADLINE_IDS.items():
        assert_same(headline[element_id], expected[row][column], hostile.currency)
    assert set(widths) == set(PLOT_IDS)
    assert all(width > 0 for width in widths.values())
    assert dialogs == []
    assert scripts == 0
    assert SCRIPT_CHANNEL in body
    assert IMG_FILE in body
    for section_id, (heading, table) in NEW_SECTIONS.items():
        assert headings[section_id] == heading
        assert len(cells[table]) == len(tables[table])
        for texts, stored in zip(cells[table], tables[table], strict=True):
            for text, value in zip(texts, stored.values(), strict=True):
                assert_same(text, value, hostile.currency)


def test_the_scope_statement_credits_lift_tests_only_when_the_fit_used_them():
    from conversionflow_dagster.core.report.data import scope_statements

    assert "not from a controlled experiment" in scope_statements(build_report_data())[0]
    data = build_report_data(lift_tests=True)
    used = dataclasses.replace(data, lift_tests=data.lift_tests.assign(calibrated=True))
    assert "randomised test" in scope_statements(used)[0]
    unused = dataclasses.replace(data, lift_tests=data.lift_tests.assign(calibrated=False))
    assert "not from a controlled experiment" in scope_statements(unused)[0]


def test_an_uncertain_plan_is_labelled_not_recommended():
    """Below the configured probability of uplift the report says why it does not recommend."""
    data = build_report_data(seed=4)
    assert data.recommended  # the fixture's plan wins in nearly every draw
    assert "Not recommended" not in render_html(data)
    rng = np.random.default_rng(0)
    coin_flip = dataclasses.replace(
        data, uplift_draws=rng.normal(5.0, 10.0, data.uplift_draws.size)
    )
    assert 0.6 < coin_flip.p_uplift_positive < 0.8
    page = parse_page(render_html(coin_flip))
    recommendation = page.text_by_id["recommendation"]
    assert "Not recommended \u2014 uncertain" in recommendation
    assert "below the 90.0%" in recommendation and "report.min_uplift_probability" in recommendation
    assert "Uncertain recommendation" in page.text_by_id["scope"]
    document = json.loads(report_json(coin_flip))
    assert document["recommended"] is False and document["recommendation"].startswith("Not")
    assert "Not recommended \u2014 uncertain" in summary_markdown(coin_flip)
    lenient = dataclasses.replace(coin_flip, min_uplift_probability=0.6)
    assert "Not recommended" not in parse_page(render_html(lenient)).text_by_id["recommendation"]


def test_a_revenue_budget_whose_last_unit_does_not_pay_back_is_called_into_question():
    """Revenue target, plan's marginal return below 1: the recommendation says the budget, not
    only its mix, is in question; above 1, or for conversions, it says nothing of it."""
    data = build_report_data(seed=4, target="revenue", currency="$")
    main = data.scenarios["main"].to_numpy()
    thin = dataclasses.replace(
        data, scenarios=data.scenarios.assign(marginal_return=np.where(main, 0.0469, 2.0))
    )
    text = parse_page(render_html(thin)).text_by_id["recommendation"]
    assert "the last $1 of spend brings back about $0.0469 of revenue" in text
    assert "a smaller budget would likely save more than it loses" in text
    assert "brings back about" in json.loads(report_json(thin))["recommendation"]
    paying = dataclasses.replace(data, scenarios=data.scenarios.assign(marginal_return=1.8))
    assert "brings back" not in parse_page(render_html(paying)).text_by_id["recommendation"]
    plain = parse_page(render_html(dataclasses.replace(thin, currency=""))).text_by_id
    assert "the last unit of spend brings back about 0.0469" in plain["recommendation"]
    counts = dataclasses.replace(thin, target="conversions")
    assert "brings back" not in parse_page(render_html(counts)).text_by_id["recommendation"]


def test_panel_wording_and_full_share():
    """A weekly panel of total sales is described as such, never as journey data."""
    data = dataclasses.replace(build_report_data(seed=4), data_kind="panel", attributable_share=1.0)
    html = render_html(data)
    assert "journey data" not in html.lower()
    page = parse_page(html)
    assert "the weekly panel sees all sales" in page.text_by_id["card-business"]
    assert "taken to hold all sales (100%)" in page.text_by_id["scope"]


# --- what a report was made for, and where it is kept -------------------------------------


def at_budget(data, factor: float):
    """The same report for ``factor`` times the plan's budget: the plan, the current mix scaled
    to the budget and the scenarios move with it, the actual current spend does not."""
    allocation = data.allocation.assign(
        current_spend=data.allocation["current_spend"] * factor,
        optimised_spend=data.allocation["optimised_spend"] * factor,
    )
    scenarios = data.scenarios.assign(budget=data.scenarios["budget"] * factor)
    return dataclasses.replace(data, allocation=allocation, scenarios=scenarios)


def money(x: float) -> str:
    return display(num(x, "money"), "€")


def test_the_header_states_what_the_report_was_made_for():
    data = at_budget(build_report_data(seed=3), 1.2)
    html = render_html(data)
    page = parse_page(html)
    shown = {
        key: " ".join(page.text_by_id[f"plan-{key}"].split())
        for key in ("budget", "current-budget", "horizon", "scenarios", "objective", "report-id")
    }
    assert shown == {
        "budget": money(data.budget),
        "current-budget": money(data.current_budget),
        "horizon": "13",
        "scenarios": "; ".join(money(b) for b in data.scenario_budgets),
        "objective": "mean",
        "report-id": report_id(data),
    }
    assert data.budget == pytest.approx(1.2 * data.current_budget, rel=0.01)
    assert re.fullmatch(r"[0-9a-f]{8}", report_id(data))
    assert "Made for a budget of" in page.text_by_id["made-for"]

    document = json.loads(report_json(data))
    assert document["budget"] == round(data.budget)
    assert document["current_budget"] == round(data.current_budget)
    assert document["scenario_budgets"] == [round(b) for b in data.scenario_budgets]
    assert (document["horizon_weeks"], document["objective"]) == (13, "mean")
    assert document["report_id"] == report_id(data)
    stored = {
        row["column"]: row["value"]
        for row in csv.DictReader(io.StringIO(report_csv(data)))
        if row["table"] == "report"
    }
    assert stored["scenario_budgets"].split(";") == [
        repr(float(round(b))) for b in data.scenario_budgets
    ]
    assert (stored["objective"], stored["report_id"]) == ("mean", report_id(data))


def test_the_allocation_shows_the_current_mix_at_this_budget_beside_the_actual_spend():
    data = at_budget(build_report_data(seed=3), 1.2)
    html = render_html(data)
    labels = dict(re.findall(r'<th data-key="(\w+)"\s+class="[^"]*">([^<]*)</th>', html))
    assert labels["actual_current_spend"] == "Current spend"
    assert labels["current_spend"] == "Current mix at this budget"
    table = parse_page(html).tables["table-allocation"]
    assert table["keys"][:5] == [
        "channel",
        "actual_current_spend",
        "current_spend",
        "optimised_spend",
        "change",
    ]
    rows = json.loads(report_json(data))["tables"]["allocation"]
    actual = data.allocation["actual_current_spend"]
    assert [row["actual_current_spend"] for row in rows] == [round(x) for x in actual]
    for row in rows:  # the plan is compared with the mix at its budget, not with today's spend
        assert row["current_spend"] == pytest.approx(1.2 * row["actual_current_spend"], abs=1)
        assert row["change"] == pytest.approx(row["optimised_spend"] - row["current_spend"], abs=1)
    in_csv = [
        row
        for row in csv.DictReader(io.StringIO(report_csv(data)))
        if (row["table"], row["column"]) == ("allocation", "actual_current_spend")
    ]
    assert [float(row["value"]) for row in in_csv] == [round(x) for x in actual]


def test_the_report_id_names_the_question_it_answers():
    data = build_report_data(seed=2)
    assert report_id(at_budget(data, 1 + 1e-12)) == report_id(data)  # float noise: same
    others = [
        at_budget(data, 1.1),
        dataclasses.replace(data, horizon_weeks=26),
        dataclasses.replace(data, objective="quantile"),
        dataclasses.replace(data, scenarios=data.scenarios.iloc[:2]),
    ]
    assert len({report_id(d) for d in [data, *others]}) == 5


def test_each_report_is_kept_under_its_own_name_beside_the_latest_copy(tmp_path):
    data = build_report_data(seed=2)
    first = write_report(data, tmp_path, month="2024-12")
    name = f"attribution_report_2024-12_{round(data.budget)}_{report_id(data)}"
    assert first == {fmt: tmp_path / f"{name}.{fmt}" for fmt in ("html", "csv", "json")}

    bigger = at_budget(data, 1.25)
    second = write_report(bigger, tmp_path, month="2024-12")
    assert f"_{round(bigger.budget)}_" in second["html"].name
    latest = {fmt: tmp_path / f"attribution_report.{fmt}" for fmt in first}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (*first.values(), *second.values(), *latest.values())
    )
    for fmt, path in latest.items():
        assert path.read_bytes() == second[fmt].read_bytes()
    assert json.loads(first["json"].read_text())["budget"] == round(data.budget)
    assert json.loads(second["json"].read_text())["budget"] == round(bigger.budget)

    # The same question again replaces its own report, and becomes the latest.
    again = write_report(data, tmp_path, formats=("json",), month="2024-12")
    assert again == {"json": first["json"]}
    assert len(list(tmp_path.iterdir())) == 9
    assert latest["json"].read_bytes() == first["json"].read_bytes()
    assert latest["html"].read_bytes() == second["html"].read_bytes()


# --- the summary in the Dagster UI --------------------------------------------------------


def rendered_markdown(text: str) -> PageParser:
    """The summary as a CommonMark renderer with tables shows it (raw HTML allowed, so an
    unescaped name would come through as markup)."""
    markdown_it = pytest.importorskip("markdown_it")
    return parse_page(markdown_it.MarkdownIt("commonmark").enable("table").render(text))


def test_the_summary_carries_the_reports_figures_and_scope(hostile):
    text = summary_markdown(hostile)
    page = rendered_markdown(text)
    shown = "".join(page.text)
    rows = [cells for _, cells in page.tables[None]["rows"]]  # headline rows, then allocation
    tables, currency = build_tables(hostile), hostile.currency

    def cell(row, key):
        return cell_text(row[key], currency) or "—"

    def headline(row):
        low, high = cell(row, "hdi_low"), cell(row, "hdi_high")
        return [row["figure"], cell(row, "mean"), f"{low} to {high}", cell(row, "p_positive")]

    assert rows[: len(tables.headline.rows)] == [headline(row) for row in tables.headline.rows]
    columns = ("channel", "actual_current_spend", "current_spend", "optimised_spend", "change")
    assert rows[len(tables.headline.rows) :] == [
        [cell(row, key) for key in columns] for row in tables.allocation.rows
    ]
    assert f"Recommendation. {recommendation(hostile)}" in shown
    assert f"Scope. {share_statement(hostile)}" in shown
    assert "Diagnostics passed" in shown
    assert f"budget {money(hostile.budget)} over 13 weeks" in shown
    assert f"current spend over the horizon: {money(hostile.current_budget)}" in shown
    assert "scenarios: " + " · ".join(money(b) for b in hostile.scenario_budgets) in shown
    assert f"objective: mean; report id {report_id(hostile)}" in shown
    assert "Current mix at this budget" in shown


def test_names_in_the_summary_are_escaped():
    data = build_report_data(channels=MARKDOWN_CHANNELS)
    page = rendered_markdown(summary_markdown(data))
    assert {"script", "b", "a", "em", "code"} & set(page.tags) == set()
    allocation = [cells for _, cells in page.tables[None]["rows"] if len(cells) == 5]
    assert [cells[0] for cells in allocation] == list(MARKDOWN_CHANNELS)  # table intact
    shown = "".join(page.text)
    assert recommendation(data) in shown
    for name in MARKDOWN_CHANNELS[:-1]:
        assert name in recommendation(data)


def test_csv_cells_from_data_never_run_as_spreadsheet_formulas():
    """Names starting with =, +, - or @ are stored inert; negative numbers stay numbers."""
    channels = ('=HYPERLINK("http://x","y")', "+cmd", "@SUM(A1)", "-2+3", *CHANNELS[:2])
    data = dataclasses.replace(build_report_data(channels=channels), project="=1+1")
    rows = list(csv.DictReader(io.StringIO(report_csv(data))))
    text = [value for row in rows for value in (row["row"], row["value"])]
    assert not [v for v in text if v.startswith(("=", "+", "@"))]
    assert "'=1+1" in text and '\'=HYPERLINK("http://x","y")' in text
    assert "'-2+3" in text and "'@SUM(A1)" in text
    numbers = [float(v) for v in text if v.startswith("-") and v[1:2].isdigit()]
    assert numbers  # e.g. the channels whose spend the plan cuts, still numeric


def test_the_model_checks_list_the_priors_the_fit_used(hostile, hostile_html):
    page = parse_page(hostile_html)
    rows = dict(page.tables["table-priors"]["rows"])
    assert list(rows) == list(HOSTILE_PRIORS)
    assert rows["intercept"][:4] == ["intercept", "Normal", "loc 0.8, scale 0.3", "config"]
    assert rows["adstock_decay"][:4] == [
        "adstock_decay",
        "Beta",
        "concentration1 2, concentration0 2",
        "default",
    ]
    assert rows["media_effect"][4] == PRIORS["media_effect"].meaning
    assert rows[SCRIPT_PRIOR][:2] == [SCRIPT_PRIOR, "<b>Normal</b>"]  # shown as text
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in hostile_html
    assert "&lt;b&gt;Normal&lt;/b&gt;" in hostile_html and "<b>Normal" not in hostile_html
    section = " ".join(page.text_by_id["section-priors"].split())
    assert section.startswith("Priors") and "model.priors" in section
    assert hostile_html.index("Model checks") < hostile_html.index('id="section-priors"')
    stored = json.loads(report_json(hostile))["tables"]["priors"]
    assert stored["intercept"]["parameters"] == "loc 0.8, scale 0.3"

    without = render_html(dataclasses.replace(hostile, priors=None))
    assert 'id="section-priors"' not in without and "table-priors" not in without
