"""Attribution-scoped report: headline math, escaping, format agreement, writing, browser view."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from html.parser import HTMLParser

import numpy as np
import pytest

from conversionflow_dagster.core import report_plots
from conversionflow_dagster.core.errors import ContractError
from conversionflow_dagster.core.report import render_html, report_csv, report_json, write_report
from conversionflow_dagster.core.report_data import (
    display,
    hdi,
    headline_figures,
    num,
    summarise,
)
from conversionflow_dagster.core.report_plots import plot_label
from conversionflow_tests.conftest import CHROMIUM_ARGS, chromium_executable
from conversionflow_tests.core.report_fixtures import CHANNELS, build_report_data

SCRIPT_CHANNEL = "<script>alert(1)</script>"
IMG_FILE = "<img src=x onerror=alert(2)>"
HOSTILE_CHANNELS = (*CHANNELS[:2], SCRIPT_CHANNEL, "tv $x$ promo", "_internal", CHANNELS[-1])
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


@pytest.fixture(scope="module")
def hostile():
    """Realistic data whose channel and file names try to inject markup."""
    return build_report_data(
        channels=HOSTILE_CHANNELS,
        source_files=("journeys_2024.csv", IMG_FILE),
        assumptions=("Dealer visits <b>not</b> tracked before 2024.",),
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


def test_hdi_of_known_samples():
    assert hdi(np.arange(100.0)) == (0.0, 94.0)
    assert hdi(np.full(50, 3.5)) == (3.5, 3.5)
    # Skewed: the narrowest interval hugs the mode at 0 instead of cutting 3% off each tail.
    skewed = np.r_[np.zeros(60), np.linspace(0, 10, 40)]
    assert hdi(skewed) == (0.0, np.sort(skewed)[94])


@pytest.mark.slow
def test_hdi_agrees_with_arviz():
    az = pytest.importorskip("arviz")
    draws = np.random.default_rng(3).gamma(2.0, 1.0, 4001)
    assert hdi(draws) == pytest.approx(tuple(az.hdi(draws, hdi_prob=0.94)))


def test_headline_from_constant_draws_is_exact():
    current, uplift = np.full(200, 1000.0), np.full(200, 50.0)
    headline = headline_figures(current, uplift, 0.05)
    assert headline.raw_improvement == summarise(np.full(200, 0.05))
    assert (headline.raw_improvement.mean, headline.raw_improvement.p_positive) == (0.05, 1.0)
    assert headline.business_claim.mean == pytest.approx(0.0025)
    assert headline.business_claim.hdi_low == pytest.approx(0.0025)
    assert headline.absolute_uplift.mean == 50.0
    assert headline.current_outcome.mean == 1000.0


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
    expected = json.loads(report_json(hostile))["tables"]["headline"]
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
