"""The attribution-scoped report: one offline HTML page, plus the same numbers as CSV and JSON.

Every money claim is scoped: projections apply to the share of sales the data can see, and
the claim on total sales is labelled with that share. The HTML is self-contained (inline CSS,
images as data URIs, no scripts; its Content-Security-Policy forbids scripts and remote loads),
and every string from the data is escaped by Jinja's autoescaping.

CSV layout: one long file with columns ``table,row,column,value``; ``row`` is the row key of
keyed tables (``headline``, ``diagnostics``) and the 0-based row number otherwise, and table
``report`` holds the scope of the run (window, target, attributable share, ...) and what the
report was made for (budget, current budget, horizon, ``scenario_budgets`` joined by ``;``,
objective, ``report_id``). Numbers are the rounded values the HTML shows; fractions (shares,
probabilities, MAPE) are fractions.
Tables ``lift_tests`` and ``customer_value`` (and ``customer_value_horizon_days`` in the scope)
appear only when the report has that data; a payback the horizon does not reach is stored as
its text ("not within 12 months"), as shown.

Reports never overwrite each other silently: :func:`write_report` given a month keeps each
report under a name with its month, budget and :func:`report_id`, and copies it to the month's
stable ``attribution_report.<format>`` (the latest).
"""

from __future__ import annotations

import base64
import csv
import hashlib
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
    cell_text,
    display,
    months_text,
    num,
    plain,
    recommendation,
    scope_note,
    scope_statements,
    share_text,
)

FORMATS = ("html", "csv", "json")
SCHEMA_VERSION = 1
BASENAME = "attribution_report"
MetaValue = str | int | float | bool | list[float]


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


def _whole_money(x: float) -> float:
    """Money as the report shows it (no cents), so tiny float noise never changes an id."""
    return float(round(x))


def report_id(data: ReportData) -> str:
    """Eight hex digits naming what the report was made for: the same budget, scenarios,
    horizon and objective (to whole money) give the same id, any other question another."""
    made_for = {
        "budget": _whole_money(data.budget),
        "scenarios": sorted(_whole_money(b) for b in data.scenario_budgets),
        "horizon_weeks": int(data.horizon_weeks),
        "objective": data.objective,
    }
    text = json.dumps(made_for, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def report_name(data: ReportData, month: str, basename: str = BASENAME) -> str:
    """The kept report's file name without suffix: ``<basename>_<month>_<budget>_<id>``."""
    return f"{basename}_{month}_{_whole_money(data.budget):.0f}_{report_id(data)}"


def report_meta(data: ReportData) -> dict[str, MetaValue]:
    """The scope of the run and what it was made for, shown in the header and stored with the
    tables."""
    meta: dict[str, MetaValue] = {
        "project": data.project,
        "generated_at": data.generated_at,
        "window_start": data.window_start,
        "window_end": data.window_end,
        "n_weeks": int(data.n_weeks),
        "target": data.target,
        "currency": data.currency,
        "attributable_share": float(data.attributable_share),
        "horizon_weeks": int(data.horizon_weeks),
        "budget": _whole_money(data.budget),
        "current_budget": _whole_money(data.current_budget),
        "scenario_budgets": [_whole_money(b) for b in data.scenario_budgets],
        "objective": data.objective,
        "report_id": report_id(data),
        "diagnostics_passed": bool(data.diagnostics["passed"]),
        "data_kind": data.data_kind,
        "p_uplift_positive": data.p_uplift_positive,
        "min_uplift_probability": float(data.min_uplift_probability),
        "recommended": data.recommended,
    }
    if data.sampling is not None:
        meta["sampling"] = data.sampling
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
                [(cell_text(row[c.key], currency), cell_class[c.key]) for c in table.columns],
            )
            for key, row in zip(keys, table.rows, strict=True)
        ],
    }


def _headline_cards(tables: ReportTables, data: ReportData) -> list[dict[str, str]]:
    def text(key: str, column: str) -> str:
        return cell_text(tables.headline.row(key)[column], data.currency)

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
            "scope": scope_note(data.attributable_share, data.data_kind),
            "low": text("business_claim", "hdi_low"),
            "high": text("business_claim", "hdi_high"),
            "probability": text("business_claim", "p_positive"),
        },
    ]


# The page is template.html.j2 beside this module (package data, so an install ships it).
_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader(__package__, "."),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATE = _ENVIRONMENT.get_template("template.html.j2")


def render_html(data: ReportData) -> str:
    """The whole report as one self-contained HTML page."""
    tables = build_tables(data)
    headline = tables.headline
    meta = report_meta(data)
    return _TEMPLATE.render(
        meta=meta,
        money={
            key: display(num(meta[key], "money"), data.currency)
            for key in ("budget", "current_budget")
        },
        scenario_budgets=[
            display(num(b, "money"), data.currency) for b in meta["scenario_budgets"]
        ],
        share=share_text(data.attributable_share),
        cards=_headline_cards(tables, data),
        absolute_uplift=cell_text(headline.row("absolute_uplift")["mean"], data.currency),
        current_outcome=cell_text(headline.row("current_outcome")["mean"], data.currency),
        units="of revenue" if data.target == "revenue" else "conversions",
        recommendation=recommendation(data),
        tables={
            "lift_tests": None,
            "customer_value": None,
            "priors": None,
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
        "recommendation": recommendation(data),
        "tables": {t.name: _table_json(t) for t in tables.all},
        "scope": scope_statements(data),
        "source_files": [str(name) for name in data.source_files],
    }
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# A text cell starting with one of these is run as a formula by spreadsheet programs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """Text from data that a spreadsheet would run as a formula, made inert with a leading
    apostrophe (OWASP's advice on CSV injection); numbers are never text here."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return spreadsheet_safe(";".join(_csv_value(v) for v in value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return spreadsheet_safe(str(value))


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
                cell = _csv_value(plain(row[column.key]))
                writer.writerow([table.name, spreadsheet_safe(key), column.key, cell])
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
    basename: str = BASENAME,
    *,
    month: str | None = None,
) -> dict[str, Path]:
    """Write the selected formats to ``output_dir/basename.<format>``; return their paths.

    With ``month`` the report is kept as ``output_dir/<report_name>.<format>`` (returned) and
    ``basename.<format>`` becomes a copy of it, the month's latest: a report for another budget,
    scenario set, horizon or objective gets a file of its own instead of replacing this one.
    Everything is rendered before anything is written, and each file is replaced atomically,
    so a failure leaves the previous report in place.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown report format(s) {unknown}; choose from {list(FORMATS)}")
    selected = list(dict.fromkeys(formats))
    texts = {fmt: _RENDERERS[fmt](data) for fmt in selected}
    latest = {fmt: Path(output_dir) / f"{basename}.{fmt}" for fmt in selected}
    name = basename if month is None else report_name(data, month, basename)
    kept = {fmt: Path(output_dir) / f"{name}.{fmt}" for fmt in selected}
    for fmt in selected:
        write_text_atomic(kept[fmt], texts[fmt])
    if kept != latest:  # the month's latest: an atomic copy of the report just kept
        for fmt in selected:
            write_text_atomic(latest[fmt], texts[fmt])
    return kept
