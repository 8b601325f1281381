"""The attribution-scoped report: HTML (self-contained), CSV and JSON for each month.

Every money claim is tied to the share of sales the data can see: the business claim is the
modelled improvement scaled to the configured attributable share, never a claim on total sales.
Each materialisation shows its executive summary (Markdown) and a link to its HTML file in the
UI; numbers in the metadata are rounded for people, the exact values stay in the JSON files.
"""

from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from conversionflow_dagster import settings
from conversionflow_dagster.asset_names import (
    ATTRIBUTION_REPORT,
    CAMPAIGN_LIFT_TESTS,
    CUSTOMER_VALUE,
    PARAMETER_EXPORT,
    POSTERIOR_TRACE,
    WEEKLY_PANEL,
)
from conversionflow_dagster.assets.model import market_view
from conversionflow_dagster.core.ingest.panel import WeeklyPanel
from conversionflow_dagster.partitions import PipelinePartitions, market_of, month_of
from conversionflow_dagster.resources import ProjectResource, with_overrides

GROUP = "report"


class ReportConfig(dg.Config):
    """Run-time overrides of the `report` section (the original `--output`, `--formats`)."""

    formats: list[str] | None = Field(
        None,
        description="Files to write, any of html, csv, json; default: report.formats (all three).",
    )
    output_dir: str | None = Field(
        None,
        description="Folder for reports, relative to the project root (the project key and "
        "month are added below it); default: report.output_dir (storage/reports).",
    )
    attributable_share: float | None = Field(
        None,
        description="Fraction (0 to 1] of total sales the data sees; the business claim is "
        "the modelled improvement times it. default: report.attributable_share (1.0 on the "
        "panel route).",
    )
    min_uplift_probability: float | None = Field(
        None,
        description="Probability (0 to 1] that the plan beats the current one below which the "
        "report says 'not recommended'; default: report.min_uplift_probability (0.9).",
    )


def previous_exports(root: Path, project_key: str, market: str | None = None) -> dict:
    """Every month's stored parameter export of this project (and ``market``), for the
    stability plot."""
    from conversionflow_dagster.core.errors import ContractError
    from conversionflow_dagster.core.parameter_export import read_export

    folder = settings.asset_dir(project_key, PARAMETER_EXPORT, root)
    exports = {}
    for path in sorted((folder / market if market else folder).glob("*.json")):
        try:
            exports[path.stem[:7]] = read_export(path)
        except ContractError:
            continue  # an export from an older schema simply drops out of the stability plot
    return exports


def _non_empty(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    return frame if frame is not None and len(frame) else None


def _for_people(x: float) -> float:
    """A share or probability to two significant digits (0.04312 -> 0.043) for the UI."""
    return float(f"{x:.2g}")


def build_report_assets(
    parts: PipelinePartitions, extras: tuple[str, ...] = ()
) -> list[dg.AssetsDefinition]:
    """The report; ``extras`` names the experiment assets present (lift tests, customer value)."""

    @dg.asset(
        name=ATTRIBUTION_REPORT,
        partitions_def=parts.fit,
        ins={
            WEEKLY_PANEL: parts.panel_input,
            POSTERIOR_TRACE: parts.trace_input,
            **{name: dg.AssetIn() for name in extras},
        },
        group_name=GROUP,
        kinds={"html", "csv", "json"},
    )
    def attribution_report(
        context: dg.AssetExecutionContext,
        config: ReportConfig,
        project: ProjectResource,
        budget_allocation: dict,
        parameter_export: object,
        posterior_trace: object,
        weekly_panel: WeeklyPanel,
        **experiments: pd.DataFrame,
    ) -> dg.MaterializeResult:
        """Executive summary, allocation, scenarios, diagnostics and plots, scoped to the data."""
        from conversionflow_dagster.core.report.data import headline_figures
        from conversionflow_dagster.core.report.inputs import build_report_data
        from conversionflow_dagster.core.report.render import report_id, write_report
        from conversionflow_dagster.core.report.summary import summary_markdown
        from conversionflow_dagster.report_server import report_url

        settings_ = project.config()
        section = with_overrides(settings_.report, config)
        settings_ = settings_.model_copy(update={"report": section})
        month, market = month_of(context.partition_key), market_of(context.partition_key)
        share = settings_.attributable_share
        data = build_report_data(
            project=settings_.project.name,
            allocation=budget_allocation,
            export=parameter_export,
            idata=market_view(posterior_trace, context.partition_key),
            panel=weekly_panel,
            target=settings_.model.target,
            attributable_share=share,
            monthly_exports=previous_exports(Path(project.root), settings_.project.key, market),
            currency=section.currency,
            seed=settings_.model.seed,
            lift_tests=experiments.get(CAMPAIGN_LIFT_TESTS),
            customer_value=_non_empty(experiments.get(CUSTOMER_VALUE)),
            customer_value_horizon_days=settings_.customer_value.horizon_days,
            data_kind="journey" if settings_.sources.route == "events" else "panel",
            min_uplift_probability=section.min_uplift_probability,
        )
        out_dir = project.path(section.output_dir) / settings_.project.key
        out_dir = out_dir / market / month if market else out_dir / month
        written = write_report(data, out_dir, formats=tuple(section.formats), month=month)
        headline = headline_figures(data.current_outcome_draws, data.uplift_draws, share)
        metadata = {
            "summary": dg.MetadataValue.md(summary_markdown(data)),
            "raw_improvement": _for_people(headline.raw_improvement.mean),
            "raw_improvement_p_positive": _for_people(headline.raw_improvement.p_positive),
            "business_claim": _for_people(headline.business_claim.mean),
            "attributable_share": share,
            "recommended": data.recommended,
            "budget": round(data.budget),
            "report_id": report_id(data),
            **{f"path_{fmt}": dg.MetadataValue.path(str(p)) for fmt, p in written.items()},
        }
        if "html" in written:  # http under the served folder (the config's, not a run's own)
            served = project.path(project.config().report.output_dir)
            metadata["report_url"] = dg.MetadataValue.url(report_url(written["html"], served))
        return dg.MaterializeResult(metadata=metadata)

    return [attribution_report]
