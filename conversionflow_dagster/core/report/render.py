"""The attribution-scoped report: one offline HTML page, plus the same numbers as CSV and JSON.

Every money claim is scoped: projections apply to the share of sales the data can see, and
the claim on total sales is labelled with that share. The HTML is self-contained (inline CSS,
images as data URIs, no scripts; its Content-Security-Policy forbids scripts and remote loads),
and every string from the data is escaped by Jinja's autoescaping.

CSV layout: one long file with columns ``table,row,column,value``; ``row`` is the row key of
keyed tables (``headline``, ``diagnostics``) and the 0-based row number otherwise, and table
``report`` holds the scope of the run (window, target, attributable share, ...). Numbers are
the rounded values the HTML shows; fractions (shares, probabilities, MAPE) are fractions.
Tables ``lift_tests`` and ``customer_value`` (and ``customer_value_horizon_days`` in the scope)
appear only when the report has that data; a payback the horizon does not reach is stored as
its text ("not within 12 months"), as shown.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from conversionflow_dagster.core.atomic import write_text_atomic
from conversionflow_dagster.core.report import plots as report_plots
from conversionflow_dagster.core.report.data import (
    Num,
    ReportData,
    ReportTables,
    Table,
    build_tables,
    display,
    months_text,
    plain,
    recommendation_text,
    scope_note,
    scope_statements,
    share_text,
)

FORMATS = ("html", "csv", "json")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Plot:
    """One embedded figure; ``id`` is the stable id of its ``<img>``."""

    id: str
    title: str
    alt: str
    caption: str
    png: bytes

    @property
    def src(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def report_meta(data: ReportData) -> dict[str, str | int | float | bool]:
    """The scope of the run, shown in the header and stored with the tables."""
    meta: dict[str, str | int | float | bool] = {
        "project": data.project,
        "generated_at": data.generated_at,
        "window_start": data.window_start,
        "window_end": data.window_end,
        "n_weeks": int(data.n_weeks),
        "target": data.target,
        "currency": data.currency,
        "attributable_share": float(data.attributable_share),
        "horizon_weeks": int(data.horizon_weeks),
        "diagnostics_passed": bool(data.diagnostics["passed"]),
    }
    if data.customer_value is not None and data.customer_value_horizon_days is not None:
        meta["customer_value_horizon_days"] = int(data.customer_value_horizon_days)
    return meta


def customer_value_horizon_text(data: ReportData) -> str:
    """'over the 365 days (about 12 months) after acquisition', or without the number."""
    days = data.customer_value_horizon_days
    if days is None:
        return "over the value horizon after acquisition"
    return f"over the {days} days (about {months_text(days)} months) after acquisition"


def build_plots(data: ReportData) -> list[Plot]:
    """Every figure of the report, each rendered and released before the next is built."""
    weekly = data.allocation.assign(channel=data.allocation["channel"].astype(str))
    weekly = weekly.set_index("channel")[["current_spend", "optimised_spend"]]
    weekly = weekly / data.horizon_weeks
    plots: list[tuple[str, str, str, str, Callable[[], bytes]]] = [
        (
            "plot-response-curves",
            "Response curves",
            "Weekly response against weekly spend for each channel, posterior mean with 94% "
            "HDI band; dashed lines mark the current and optimised weekly spend.",
            "Steady-state weekly response (mean and 94% HDI) per channel. Dashed lines: current "
            "(grey) and optimised (orange) weekly spend.",
            lambda: report_plots.response_curves_png(
                data.response_curves,
                weekly["current_spend"].to_dict(),
                weekly["optimised_spend"].to_dict(),
                data.currency,
            ),
        ),
        (
            "plot-contributions",
            "Contributions over time",
            "Stacked area chart of the weekly contribution of each channel and the baseline.",
            "Posterior mean weekly contribution of each channel on top of the baseline.",
            lambda: report_plots.contributions_png(data.contributions),
        ),
        (
            "plot-ppc",
            "Posterior predictive check",
            "Observed weekly target as points against the posterior predictive mean and 94% "
            "band; shaded weeks were held out of the fit.",
            "Observed weeks (points) against the model's predictive mean and 94% band. Shaded "
            "weeks, if any, were held out of the fit.",
            lambda: report_plots.ppc_png(data.ppc),
        ),
        (
            "plot-roas",
            "Return on ad spend",
            "Return on ad spend per channel with 94% HDI error bars.",
            "Posterior mean ROAS per channel with its 94% HDI.",
            lambda: report_plots.roas_png(data.roas),
        ),
    ]
    stability = data.stability
    if stability is not None and stability["as_of_month"].astype(str).nunique() >= 2:
        plots.append(
            (
                "plot-stability",
                "Parameter stability across monthly refits",
                "Posterior mean and 94% HDI of each channel parameter in each monthly refit.",
                "Each monthly refit's posterior mean and 94% HDI; drifting lines mean the data "
                "does not pin the parameter down.",
                lambda: report_plots.stability_png(stability),
            )
        )
    return [Plot(pid, title, alt, caption, draw()) for pid, title, alt, caption, draw in plots]


# --- HTML ---------------------------------------------------------------------------------


def _cell_text(cell: object, currency: str) -> str:
    if isinstance(cell, Num):
        return display(cell, currency)
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    return "" if cell is None else str(cell)


def _table_view(table: Table, currency: str) -> dict[str, object]:
    """Display strings and cell classes (numbers right, date ranges readable), for the template."""
    numeric = {c.key: any(isinstance(row[c.key], Num) for row in table.rows) for c in table.columns}
    cell_class = {
        c.key: "num" if numeric[c.key] else "dates" if c.dates else "" for c in table.columns
    }
    keys = table.row_keys or [None] * len(table.rows)
    return {
        "name": table.name,
        "title": table.title,
        "columns": [(c.key, c.label, "num" if numeric[c.key] else "") for c in table.columns],
        "rows": [
            (
                key,
                [(_cell_text(row[c.key], currency), cell_class[c.key]) for c in table.columns],
            )
            for key, row in zip(keys, table.rows, strict=True)
        ],
    }


def _headline_cards(tables: ReportTables, data: ReportData) -> list[dict[str, str]]:
    def text(key: str, column: str) -> str:
        return _cell_text(tables.headline.row(key)[column], data.currency)

    return [
        {
            "id": "raw",
            "figure_id": "headline-raw-improvement",
            "label": "Modelled improvement",
            "value": text("raw_improvement", "mean"),
            "scope": f"of the modelled (attributable) sales, over {data.horizon_weeks} weeks.",
            "low": text("raw_improvement", "hdi_low"),
            "high": text("raw_improvement", "hdi_high"),
            "probability": text("raw_improvement", "p_positive"),
        },
        {
            "id": "business",
            "figure_id": "headline-business-claim",
            "label": "Change in total sales (scoped)",
            "value": text("business_claim", "mean"),
            "scope": scope_note(data.attributable_share),
            "low": text("business_claim", "hdi_low"),
            "high": text("business_claim", "hdi_high"),
            "probability": text("business_claim", "p_positive"),
        },
    ]


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ meta.project }} · budget plan report</title>
<style>
:root { --ink:#1f2933; --muted:#52606d; --line:#d9e2ec; --soft:#f5f7fa; --navy:#102a43;
  --good:#0b7a4b; --bad:#b42318; }
* { box-sizing: border-box; }
body { margin:0; color:var(--ink); background:#fff;
  font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
header { background:var(--navy); color:#fff; }
header .inner, main { max-width:1160px; margin:0 auto; padding:0 28px; }
header .inner { display:flex; flex-wrap:wrap; justify-content:space-between; align-items:baseline;
  gap:4px 24px; padding-top:14px; padding-bottom:14px; }
header h1 { font-size:19px; margin:0; font-weight:650; }
header h1 span { font-weight:400; color:#bcccdc; }
header .meta { font-size:12.5px; color:#d9e2ec; }
main { padding-bottom:48px; }
h2 { font-size:17px; margin:34px 0 10px; padding-bottom:5px; border-bottom:2px solid var(--line); }
h3 { font-size:14px; margin:22px 0 6px; color:var(--muted); }
p { margin:6px 0 10px; max-width:880px; }
.cards { display:grid; grid-template-columns:1fr 1fr; gap:16px; margin-top:14px; }
.card { border:1px solid var(--line); border-radius:8px; padding:14px 18px;
  background:var(--soft); }
.card .label { font-size:11.5px; font-weight:600; letter-spacing:.06em; text-transform:uppercase;
  color:var(--muted); }
.card .value { font-size:34px; font-weight:700; line-height:1.2; margin:2px 0;
  font-variant-numeric:tabular-nums; }
.card .scope { font-size:13px; color:var(--ink); margin:2px 0 8px; }
.card .interval { font-size:13px; color:var(--muted); font-variant-numeric:tabular-nums; }
.card .interval b { color:var(--ink); font-weight:600; }
.summary { margin-top:14px; }
.status { display:inline-block; font-size:12.5px; font-weight:600; padding:2px 10px;
  border-radius:12px; }
.status.pass { background:#e3f9e5; color:var(--good); }
.status.fail { background:#ffe3e3; color:var(--bad); }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; width:100%; font-size:12.5px; font-variant-numeric:tabular-nums; }
th, td { padding:5px 7px; border-bottom:1px solid var(--line); vertical-align:top; }
th { text-align:left; font-weight:600; color:var(--muted); background:var(--soft);
  border-bottom:1px solid #bcccdc; vertical-align:bottom; line-height:1.3; }
.num { text-align:right; }
td.num { white-space:nowrap; }
td.dates { min-width:8.3em; }
td:first-child { min-width:9em; overflow-wrap:anywhere; }
tbody tr:hover { background:#f0f4f8; }
table.narrow { width:auto; min-width:60%; }
figure { margin:14px 0 4px; }
figure img { display:block; width:100%; height:auto; border:1px solid var(--line);
  border-radius:4px; }
figcaption { font-size:12.5px; color:var(--muted); margin-top:4px; }
ul.scope { padding-left:20px; max-width:900px; }
ul.scope li { margin:5px 0; }
.muted { color:var(--muted); font-size:12.5px; }
footer { margin-top:36px; font-size:12px; color:var(--muted); }
@media (max-width: 760px) { .cards { grid-template-columns:1fr; } }
@media print { header { background:none; color:var(--ink); } header .meta, header h1 span
  { color:var(--muted); } figure, table { break-inside:avoid; } }
</style>
</head>
<body>
{% macro table(t, narrow=False) %}
<div class="table-wrap"><table id="table-{{ t.name }}"{% if narrow %} class="narrow"{% endif %}>
<thead><tr>{% for key, label, align in t.columns %}<th data-key="{{ key }}"
 class="{{ align }}">{{ label }}</th>{% endfor %}</tr></thead>
<tbody>
{% for key, cells in t.rows %}
<tr{% if key %} data-key="{{ key }}"{% endif %}>{% for text, align in cells %}<td
 class="{{ align }}">{{ text }}</td>{% endfor %}</tr>
{% endfor %}
</tbody></table></div>
{% endmacro %}
{% macro figure(plot) %}
<figure><img id="{{ plot.id }}" src="{{ plot.src }}" alt="{{ plot.alt }}">
<figcaption>{{ plot.caption }}</figcaption></figure>
{% endmacro %}
<header><div class="inner">
<h1 id="project-name">{{ meta.project }} <span>· budget plan report</span></h1>
<div class="meta">Data {{ meta.window_start }} to {{ meta.window_end }} ({{ meta.n_weeks }} weeks)
 · target: {{ meta.target }} · horizon: {{ meta.horizon_weeks }} weeks
 · attributable share: {{ share }} · generated {{ meta.generated_at }}</div>
</div></header>
<main>
<h2>Executive summary</h2>
<div class="cards">
{% for card in cards %}
<section class="card" id="card-{{ card.id }}">
<div class="label">{{ card.label }}</div>
<div class="value" id="{{ card.figure_id }}">{{ card.value }}</div>
<div class="scope">{{ card.scope }}</div>
<div class="interval">94% credible interval <b id="headline-{{ card.id }}-low">{{ card.low }}</b>
 to <b id="headline-{{ card.id }}-high">{{ card.high }}</b>
 · P(&gt; 0) <b id="headline-{{ card.id }}-probability">{{ card.probability }}</b></div>
</section>
{% endfor %}
</div>
<div class="summary">
<p>Absolute uplift: <b id="headline-absolute-uplift">{{ absolute_uplift }}</b> {{ units }} over
{{ meta.horizon_weeks }} weeks, on a modelled <span id="headline-current-outcome">{{
 current_outcome }}</span> {{ units }} under the current plan.</p>
<p id="recommendation"><b>Recommendation.</b> {{ recommendation }}</p>
<p><span id="diagnostics-status" class="status {{ 'pass' if meta.diagnostics_passed else 'fail' }}">
{{ 'Diagnostics passed' if meta.diagnostics_passed
 else 'Diagnostics failed: do not act on these figures' }}</span></p>
</div>

<h2>Budget allocation</h2>
<p class="muted">Spend is money over {{ meta.horizon_weeks }} weeks; responses are modelled
{{ meta.target }} over the same horizon, for the attributable share of sales only.</p>
{{ table(tables.allocation) }}
<h3>Response curves</h3>
{{ figure(plots['plot-response-curves']) }}

<h2>Budget scenarios</h2>
<p class="muted">The optimised plan at each total budget. Marginal return: extra {{ meta.target }}
per extra unit of money at that budget.</p>
{{ table(tables.scenarios) }}

<h2>Headline figures in detail</h2>
{{ table(tables.headline) }}

{% if tables.customer_value %}
<section id="section-customer-value">
<h2>Customer value (LTV:CAC)</h2>
<p class="muted">Lifetime value (LTV) is the value a customer brought in {{ value_horizon }},
averaged over the customers each paid channel acquired, with the low and high ends of its
interval. Customer acquisition cost (CAC) is the channel's spend divided by the customers it
acquired. LTV:CAC compares the two: below 1 the channel loses money on every customer it buys,
from 1 to 3 it is marginal once other costs are paid, and 3 or more is healthy. Payback is the
number of months until a customer's cumulative value covers the CAC; "not within" means the
value horizon ends first. LTV and CAC are per customer.</p>
{{ table(tables.customer_value) }}
</section>

{% endif %}
{% if tables.lift_tests %}
<section id="section-lift-tests">
<h2>Campaign lift tests</h2>
<p class="muted">Each lift test split an audience at random into a test group that saw the
campaign and a control group that did not, so the difference in conversion rate is caused by the
campaign. Relative lift is the test rate over the control rate, minus one. The chi-square test
asks how likely a difference at least this large would be if the campaign had no effect at all:
that probability is the p-value, and a test is significant at 95% when it is below 5% (at 90%
below 10%, at 99% below 1%). The Bayesian columns read the same counts as a range of belief:
the posterior lift with its 94% HDI is the plausible range of the relative lift, and
P(test &gt; control) is the probability that the test group's true conversion rate is higher
than the control group's. Incremental conversions are the test group's conversions beyond what
the control rate would have given it.{% if has_calibration %} "Used in fit" marks the tests the
model was calibrated against.{% endif %}</p>
{{ table(tables.lift_tests) }}
</section>

{% endif %}
<h2>Model checks</h2>
{{ table(tables.diagnostics) }}
<h3>Posterior predictive check</h3>
{{ figure(plots['plot-ppc']) }}
<h3>Contributions over time</h3>
{{ figure(plots['plot-contributions']) }}
<h3>Return on ad spend</h3>
{{ figure(plots['plot-roas']) }}
{{ table(tables.roas, narrow=True) }}
{% if 'plot-stability' in plots %}
<h3>Parameter stability across monthly refits</h3>
{{ figure(plots['plot-stability']) }}
{% endif %}

<h2>Scope, assumptions and limitations</h2>
<ul class="scope" id="scope">
{% for line in scope %}<li>{{ line }}</li>
{% endfor %}
</ul>
<h3>Input files</h3>
<ul class="scope" id="source-files">
{% for name in source_files %}<li><code>{{ name }}</code></li>
{% else %}<li>not recorded</li>
{% endfor %}
</ul>
<footer>conversionflow · report schema {{ schema_version }}</footer>
</main>
</body>
</html>
"""

_ENVIRONMENT = jinja2.Environment(
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
)
_TEMPLATE = _ENVIRONMENT.from_string(TEMPLATE)


def render_html(data: ReportData) -> str:
    """The whole report as one self-contained HTML page."""
    tables = build_tables(data)
    headline = tables.headline
    return _TEMPLATE.render(
        meta=report_meta(data),
        share=share_text(data.attributable_share),
        cards=_headline_cards(tables, data),
        absolute_uplift=_cell_text(headline.row("absolute_uplift")["mean"], data.currency),
        current_outcome=_cell_text(headline.row("current_outcome")["mean"], data.currency),
        units="of revenue" if data.target == "revenue" else "conversions",
        recommendation=recommendation_text(data.allocation, data.horizon_weeks, data.currency),
        tables={
            "lift_tests": None,
            "customer_value": None,
            **{t.name: _table_view(t, data.currency) for t in tables.all},
        },
        has_calibration=tables.lift_tests is not None
        and any(c.key == "calibrated" for c in tables.lift_tests.columns),
        value_horizon=customer_value_horizon_text(data),
        plots={plot.id: plot for plot in build_plots(data)},
        scope=scope_statements(data),
        source_files=[str(name) for name in data.source_files],
        schema_version=SCHEMA_VERSION,
    )


# --- CSV and JSON -------------------------------------------------------------------------


def _table_json(table: Table) -> list[dict[str, object]] | dict[str, dict[str, object]]:
    rows = [{c.key: plain(row[c.key]) for c in table.columns} for row in table.rows]
    if table.row_keys is None:
        return rows
    return dict(zip(table.row_keys, rows, strict=True))


def report_json(data: ReportData) -> str:
    """Headline, tables, diagnostics and scope as JSON (no images)."""
    tables = build_tables(data)
    document = {
        "schema_version": SCHEMA_VERSION,
        **report_meta(data),
        "recommendation": recommendation_text(data.allocation, data.horizon_weeks, data.currency),
        "tables": {t.name: _table_json(t) for t in tables.all},
        "scope": scope_statements(data),
        "source_files": [str(name) for name in data.source_files],
    }
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def report_csv(data: ReportData) -> str:
    """Every table as long-format rows ``table,row,column,value`` (see the module docstring)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", "row", "column", "value"])
    for key, value in report_meta(data).items():
        writer.writerow(["report", "", key, _csv_value(value)])
    for table in build_tables(data).all:
        keys = table.row_keys or [str(i) for i in range(len(table.rows))]
        for key, row in zip(keys, table.rows, strict=True):
            for column in table.columns:
                writer.writerow([table.name, key, column.key, _csv_value(plain(row[column.key]))])
    return buffer.getvalue()


_RENDERERS: dict[str, Callable[[ReportData], str]] = {
    "html": render_html,
    "csv": report_csv,
    "json": report_json,
}


def write_report(
    data: ReportData,
    output_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    basename: str = "attribution_report",
) -> dict[str, Path]:
    """Write the selected formats to ``output_dir/basename.<format>``; return their paths.

    Everything is rendered before anything is written, and each file is replaced atomically,
    so a failure leaves the previous report in place.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown report format(s) {unknown}; choose from {list(FORMATS)}")
    selected = list(dict.fromkeys(formats))
    texts = {fmt: _RENDERERS[fmt](data) for fmt in selected}
    paths = {fmt: Path(output_dir) / f"{basename}.{fmt}" for fmt in selected}
    for fmt in selected:
        write_text_atomic(paths[fmt], texts[fmt])
    return paths
