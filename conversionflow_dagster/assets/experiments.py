"""Experiments and customer value: campaign lift tests, and LTV:CAC by acquiring channel.

``campaign_lift_tests`` reads the team's randomised tests (test vs control cohorts) and reads
each one twice (chi-square and a beta-binomial posterior); with ``experiments.calibrate`` the
fit uses them too. ``customer_value`` follows customers in the journey log from their
acquisition over a horizon. Both feed the report.
"""

import dagster as dg
import pandas as pd

from conversionflow_dagster.asset_names import CAMPAIGN_LIFT_TESTS, CUSTOMER_VALUE, RAW_EVENTS
from conversionflow_dagster.assets.ingest import ALL_MONTHS, IO_RETRY, by_month
from conversionflow_dagster.core.config import ProjectConfig
from conversionflow_dagster.core.ingest.panel import WeeklyPanel
from conversionflow_dagster.failures import retry_only_io_faults
from conversionflow_dagster.resources import ProjectResource

GROUP = "experiments"


def build_experiment_assets(config: ProjectConfig) -> list[dg.AssetsDefinition]:
    """The lift-test asset when a file is configured; customer value on the events route."""
    assets = []
    if config.experiments.lift_tests is not None:
        assets.append(_lift_tests_asset())
    if config.sources.route == "events":
        assets.append(_customer_value_asset())
    return assets


def _lift_tests_asset() -> dg.AssetsDefinition:
    @dg.asset(
        name=CAMPAIGN_LIFT_TESTS,
        group_name=GROUP,
        io_manager_key="parquet_io",
        retry_policy=IO_RETRY,
        kinds={"pandas", "scipy"},
    )
    def campaign_lift_tests(project: ProjectResource) -> dg.Output:
        """Each test's rates, chi-square p-value and significance, and Bayesian lift."""
        from conversionflow_dagster.core.experiments.lift_tests import (
            analyse_lift_tests,
            read_lift_tests,
        )

        counts = ["test_id", "test_size", "test_conversions", "control_size", "control_conversions"]
        with retry_only_io_faults():
            config = project.config()
            tests = read_lift_tests(project.path(config.experiments.lift_tests), config.channels)
            analysis = analyse_lift_tests(tests, seed=config.model.seed)
            table = analysis.merge(tests[counts], on="test_id", how="left")
        return dg.Output(
            table,
            metadata={
                "dagster/row_count": len(table),
                "significant_95": int(table["significant_95"].sum()),
                "calibrate": config.experiments.calibrate,
                "tests": dg.MetadataValue.md(_markdown(table)),
            },
        )

    return campaign_lift_tests


def _markdown(table: pd.DataFrame) -> str:
    shown = table[["test_id", "channel", "relative_lift", "p_value", "p_test_better"]]
    lines = [
        "| test | channel | relative lift | p-value | P(test > control) |",
        "|---|---|---|---|---|",
    ]
    for row in shown.itertuples(index=False):
        lines.append(
            f"| {_cell(row.test_id)} | {_cell(row.channel)} | {row.relative_lift:+.1%} | "
            f"{row.p_value:.3g} | {row.p_test_better:.1%} |"
        )
    return "\n".join(lines)


def _cell(text: object) -> str:
    """A table cell from data: no pipes or line breaks that would reshape the table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _customer_value_asset() -> dg.AssetsDefinition:
    @dg.asset(
        name=CUSTOMER_VALUE,
        ins={RAW_EVENTS: ALL_MONTHS},
        group_name=GROUP,
        io_manager_key="parquet_io",
        retry_policy=IO_RETRY,
        kinds={"pandas"},
    )
    def customer_value(
        context: dg.AssetExecutionContext,
        project: ProjectResource,
        raw_events: dict[str, pd.DataFrame],
        weekly_panel: WeeklyPanel,
    ) -> dg.Output:
        """LTV, CAC, LTV:CAC and payback per paid channel, with bootstrap intervals."""
        from conversionflow_dagster.core.experiments.customer_value import (
            TABLE_COLUMNS,
            channel_value_table,
        )

        with retry_only_io_faults():
            config = project.config()
            section = config.customer_value
            months = by_month(raw_events)
            events = pd.concat([months[m] for m in sorted(months)], ignore_index=True)
            span = weekly_panel.weeks[-1] - weekly_panel.weeks[0] + pd.Timedelta(days=7)
            if span < pd.Timedelta(days=section.horizon_days + 7):
                # Too little history for one mature cohort: nothing to say yet, which is not an
                # error of the data (the report simply leaves the section out).
                note = (
                    f"the data cover {span.days} days; customer value over {section.horizon_days} "
                    "days needs that plus a week. Shorten customer_value.horizon_days or wait"
                )
                context.log.warning(note)
                return dg.Output(pd.DataFrame(columns=list(TABLE_COLUMNS)), metadata={"note": note})
            table = channel_value_table(
                events,
                weekly_panel.spend(),
                config.touchpoint_channel(),
                horizon_days=section.horizon_days,
                rule=section.attribution,
                n_boot=section.bootstrap,
                seed=section.seed,
            )
        cohort = {
            k: str(v.date()) if isinstance(v, pd.Timestamp) else v
            for k, v in table.attrs.items()
            if k.startswith(("cohort_", "excluded_")) or k in ("acquired", "organic")
        }
        table.attrs = {}  # Parquet keeps the columns; the cohort's figures go to the metadata
        return dg.Output(
            table,
            metadata={
                "dagster/row_count": len(table),
                "horizon_days": section.horizon_days,
                "attribution": section.attribution,
                "customers": int(table["customers"].sum()),
                **cohort,
                **{
                    f"ltv_cac[{row.channel}]": float(row.ltv_cac)
                    for row in table.itertuples()
                    if pd.notna(row.ltv_cac)
                },
            },
        )

    return customer_value
