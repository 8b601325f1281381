"""Turn the domain core's data-quality rules into blocking Dagster asset checks."""

import warnings
from collections.abc import Callable, Mapping

import dagster as dg

from conversionflow_dagster.asset_names import (
    BUDGET_ALLOCATION,
    MARKET_ALLOCATION,
    POSTERIOR_TRACE,
    RAW_EVENTS,
    RAW_SPEND,
    WEEKLY_PANEL,
)
from conversionflow_dagster.core.ingest.events import event_rules
from conversionflow_dagster.core.ingest.panel import panel_rules
from conversionflow_dagster.core.ingest.spend import spend_rules
from conversionflow_dagster.core.rules import CheckOutcome
from conversionflow_dagster.partitions import PipelinePartitions, month_in
from conversionflow_dagster.resources import ProjectResource

RAW_EVENTS_CHECKS = {
    "schema": "Columns and types match the events contract.",
    "critical_fields_not_null": "customer_id, timestamp and touchpoint are filled in.",
    "no_duplicate_events": "No event appears twice.",
    "timestamps_in_month": "Every event is dated inside the partition's month.",
    "values_valid": "conversion is 0 or 1 and value is not negative.",
}
RAW_SPEND_CHECKS = {
    "schema": "Columns and types match the spend contract.",
    "no_nulls": "date, channel and spend are filled in.",
    "dates_in_month": "Every spend row is dated inside the partition's month.",
    "spend_non_negative": "No negative spend.",
}
TRACE_CHECKS = {
    "max_r_hat": "Every parameter's R-hat is at most the configured threshold.",
    "min_ess_bulk": "Every parameter's bulk ESS is at least the configured minimum.",
    "min_ess_tail": "Every parameter's tail ESS is at least the configured minimum.",
    "divergences": "No more divergent transitions than allowed.",
}
ALLOCATION_CHECKS = {
    "budget_exact": "Every scenario's plan spends its budget (relative 1e-6).",
    "bounds_respected": "Every channel stays within its bounds.",
    "not_worse_than_referee": "The plan is within 0.1% of the SLSQP referee, or better.",
    "beats_current_plan": "Expected response at least that of the current mix.",
}
PANEL_CHECKS = {
    "no_missing_weeks": "Consecutive weeks, each with source data.",
    "totals_reconcile": "Spend, conversions and revenue equal the source rows to 0.1%.",
}


def blocking_rule_checks(
    asset: str,
    checks: Mapping[str, str],
    evaluate: Callable[[object, str | None, ProjectResource], list[CheckOutcome]],
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetChecksDefinition:
    """One op that loads ``asset`` once and reports each rule as its own blocking check.

    ``evaluate(value, month, project)`` reads its thresholds from the project per run, like
    every asset, so a config change takes effect without reloading the code location.
    """
    with warnings.catch_warnings():  # partitioned check specs are a preview feature in 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = [
            dg.AssetCheckSpec(
                name, asset=asset, description=text, blocking=True, partitions_def=partitions_def
            )
            for name, text in checks.items()
        ]

    @dg.multi_asset_check(specs=specs, name=f"{asset}_checks", ins={"value": dg.AssetIn(asset)})
    def _checks(context: dg.AssetCheckExecutionContext, project: ProjectResource, value: object):
        month = month_in(context.partition_key if context.has_partition_key else None)
        for outcome in evaluate(value, month, project):
            yield dg.AssetCheckResult(  # the asset's key (with the project prefix) from the spec
                check_name=outcome.name,
                passed=outcome.passed,
                description=outcome.description,
                metadata=outcome.metadata,
                severity=dg.AssetCheckSeverity.ERROR,
            )

    return _checks


def build_ingest_checks(
    asset_names: set[str], parts: PipelinePartitions
) -> list[dg.AssetChecksDefinition]:
    monthly = parts.monthly
    checks = [
        blocking_rule_checks(
            WEEKLY_PANEL, PANEL_CHECKS, lambda p, _m, _p: panel_rules(p), parts.markets
        )
    ]
    if RAW_EVENTS in asset_names:
        checks.append(
            blocking_rule_checks(
                RAW_EVENTS, RAW_EVENTS_CHECKS, lambda e, m, _p: event_rules(e, m), monthly
            )
        )
    if RAW_SPEND in asset_names:
        checks.append(
            blocking_rule_checks(
                RAW_SPEND, RAW_SPEND_CHECKS, lambda s, m, _p: spend_rules(s, m), monthly
            )
        )
    return checks


def build_trace_checks(monthly: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    """The convergence gates: blocking, so a trace that fails them is never exported."""

    def evaluate(idata: object, _month: str | None, project: ProjectResource) -> list[CheckOutcome]:
        from conversionflow_dagster.core.model.gates import trace_rules

        return trace_rules(idata, project.config().model.gates)

    return [blocking_rule_checks(POSTERIOR_TRACE, TRACE_CHECKS, evaluate, monthly)]


def build_allocation_checks(parts: PipelinePartitions) -> list[dg.AssetChecksDefinition]:
    """What the business acts on must add up: blocking before the report."""

    def evaluate(document: object, _month: str | None, _project: object) -> list[CheckOutcome]:
        from conversionflow_dagster.core.allocation.rules import allocation_rules

        return allocation_rules(document)

    checks = [blocking_rule_checks(BUDGET_ALLOCATION, ALLOCATION_CHECKS, evaluate, parts.fit)]
    if parts.markets is not None:
        checks.append(
            blocking_rule_checks(MARKET_ALLOCATION, ALLOCATION_CHECKS, evaluate, parts.monthly)
        )
    return checks
