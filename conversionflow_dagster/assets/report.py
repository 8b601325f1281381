"""The attribution-scoped report: HTML (self-contained), CSV and JSON for each month.

Every money claim is tied to the share of sales the data can see: the business claim is the
modelled improvement scaled to the configured attributable share, never a claim on total sales.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from conversionflow_dagster import settings
from conversionflow_dagster.assets.experiments import CUSTOMER_VALUE, LIFT_TESTS
from conversionflow_dagster.core.ingest.panel import WeeklyPanel
from conversionflow_dagster.partitions import PipelinePartitions, market_of, month_of
from conversionflow_dagster.resources import ProjectResource

GROUP = "report"


class ReportConfig(dg.Config):
    """Run-time overrides of the `report` section (the original `--output`, `--formats`)."""

    formats: list[str] | None = None
    output_dir: str | None = None
    attributable_share: float | None = None


def previous_exports(root: Path, market: str | None = None) -> dict:
    """Every month's stored parameter export (of ``market``), for the stability plot."""
    from conversionflow_dagster.core.errors import ContractError
    from conversionflow_dagster.core.parameter_export import read_export

    folder = settings.storage_dir(root) / "assets" / "parameter_export"
    exports = {}
    for path in sorted((folder / market if market else folder).glob("*.json")):
        try:
            exports[path.stem[:7]] = read_export(path)
        except ContractError:
            continue  # an export from an older schema simply drops out of the stability plot
    return exports


def _non_empty(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    return frame if frame is not None and len(frame) else None


def build_report_assets(
    parts: PipelinePartitions, extras: tuple[str, ...] = ()
) -> list[dg.AssetsDefinition]:
    """The report; ``extras`` names the experiment assets present (lift tests, customer value)."""

    @dg.asset(
        name="attribution_report",
        partitions_def=parts.fit,
        ins={"weekly_panel": parts.panel_input, **{name: dg.AssetIn() for name in extras}},
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
        from conversionflow_dagster.core.report.render import write_report

        settings_ = project.config()
        section = settings_.report
        month, market = month_of(context.partition_key), market_of(context.partition_key)
        share = config.attributable_share or section.attributable_share
        data = build_report_data(
            project=settings_.project.name,
            allocation=budget_allocation,
            export=parameter_export,
            idata=posterior_trace,
            panel=weekly_panel,
            target=settings_.model.target,
            attributable_share=share,
            monthly_exports=previous_exports(Path(project.root), market),
            currency=section.currency,
            seed=settings_.model.seed,
            lift_tests=experiments.get(LIFT_TESTS),
            customer_value=_non_empty(experiments.get(CUSTOMER_VALUE)),
            customer_value_horizon_days=settings_.customer_value.horizon_days,
        )
        out_dir = project.path(config.output_dir or section.output_dir)
        out_dir = out_dir / market / month if market else out_dir / month
        written = write_report(data, out_dir, formats=tuple(config.formats or section.formats))
        headline = headline_figures(data.current_outcome_draws, data.uplift_draws, share)
        metadata = {
            "raw_improvement": headline.raw_improvement.mean,
            "raw_improvement_p_positive": headline.raw_improvement.p_positive,
            "business_claim": headline.business_claim.mean,
            "attributable_share": share,
            **{f"path_{fmt}": dg.MetadataValue.path(str(p)) for fmt, p in written.items()},
        }
        return dg.MaterializeResult(metadata=metadata)

    return [attribution_report]
