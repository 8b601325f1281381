"""The report's executive summary as Markdown, for the Dagster UI (asset materialisation metadata).

An analyst reads the answer on the asset's page without opening a file: the headline figures
with their 94% intervals and P(> 0), the recommendation, the allocation, the scope statement
and what the report was made for. The figures are the report's own (its tables, rounded once),
so the summary never disagrees with the HTML. Every text that can carry a name from the data
is escaped: a channel called ``<b>tv|radio</b>`` shows as written, and can neither break a
table nor inject markup.
"""

from __future__ import annotations

import re

from conversionflow_dagster.core.report.data import (
    CURRENT_MIX_LABEL,
    MISSING,
    Cell,
    ReportData,
    Table,
    build_tables,
    cell_text,
    display,
    num,
    recommendation,
    share_statement,
)
from conversionflow_dagster.core.report.render import report_id

# Characters with a meaning in (GitHub-flavoured) Markdown inline text or tables.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def md_escape(text: str) -> str:
    """``text`` shown literally by a Markdown renderer, on one line."""
    return _SPECIAL.sub(r"\\\1", re.sub(r"\s*[\r\n]+\s*", " ", str(text)))


def _cell(cell: Cell, currency: str) -> str:
    return md_escape(cell_text(cell, currency) or MISSING)


def _money(x: float, currency: str) -> str:
    return md_escape(display(num(x, "money"), currency))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; columns after the first are numbers, aligned right."""
    align = ["---", *["--:"] * (len(header) - 1)]
    return ["| " + " | ".join(line) + " |" for line in (header, align, *rows)]


def _headline(table: Table, currency: str) -> list[str]:
    rows = [
        [
            md_escape(str(row["figure"])),
            _cell(row["mean"], currency),
            f"{_cell(row['hdi_low'], currency)} to {_cell(row['hdi_high'], currency)}",
            _cell(row["p_positive"], currency),
        ]
        for row in table.rows
    ]
    return _table(["Figure", "Mean", "94% interval", "P(> 0)"], rows)


def _allocation(table: Table, currency: str) -> list[str]:
    columns = ("channel", "actual_current_spend", "current_spend", "optimised_spend", "change")
    rows = [[_cell(row[key], currency) for key in columns] for row in table.rows]
    header = ["Channel", "Current spend", CURRENT_MIX_LABEL, "Optimised spend", "Change"]
    return _table(header, rows)


def summary_markdown(data: ReportData) -> str:
    """The executive summary of ``data`` as Markdown (GitHub-flavoured: tables)."""
    tables = build_tables(data)
    currency = data.currency
    scenarios = " · ".join(_money(b, currency) for b in data.scenario_budgets)
    status = (
        "passed"
        if data.diagnostics.get("passed")
        else "**failed**: do not act on these figures until the fit is repaired"
    )
    lines = [
        f"**{md_escape(data.project)}**: data {data.window_start} to {data.window_end} "
        f"({data.n_weeks} weeks), target {data.target}.",
        "",
        "**Made for**",
        "",
        f"- budget {_money(data.budget, currency)} over {data.horizon_weeks} weeks (current "
        f"spend over the horizon: {_money(data.current_budget, currency)})",
        f"- scenarios: {scenarios}",
        f"- objective: {md_escape(data.objective)}; report id {report_id(data)}",
        "",
        *_headline(tables.headline, currency),
        "",
        f"**Recommendation.** {md_escape(recommendation(data))}",
        "",
        f"Spend over {data.horizon_weeks} weeks. Change: optimised spend against the current "
        "mix at this budget.",
        "",
        *_allocation(tables.allocation, currency),
        "",
        f"**Scope.** {md_escape(share_statement(data))}",
        "",
        f"**Diagnostics** {status}.",
    ]
    return "\n".join(lines) + "\n"
