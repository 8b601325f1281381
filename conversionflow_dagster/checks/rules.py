"""Turn the domain core's data-quality rules into blocking Dagster asset checks."""

import warnings
from collections.abc import Callable, Mapping

import dagster as dg

from conversionflow_dagster.core.checks import CheckOutcome
from conversionflow_dagster.core.events import event_rules
from conversionflow_dagster.core.panel import panel_rules
from conversionflow_dagster.core.spend import spend_rules
from conversionflow_dagster.partitions import month_of

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
PANEL_CHECKS = {
    "no_missing_weeks": "Consecutive weeks, each with source data.",
    "totals_reconcile": "Spend, conversions and revenue equal the source rows to 0.1%.",
}


def blocking_rule_checks(
    asset: str,
    checks: Mapping[str, str],
    evaluate: Callable[[object, str | None], list[CheckOutcome]],
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetChecksDefinition:
    """One op that loads ``asset`` once and reports each rule as its own blocking check."""
    with warnings.catch_warnings():  # partitioned check specs are a preview feature in 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = [
            dg.AssetCheckSpec(
                name, asset=asset, description=text, blocking=True, partitions_def=partitions_def
            )
            for name, text in checks.items()
        ]

    @dg.multi_asset_check(specs=specs, name=f"{asset}_checks", ins={"value": dg.AssetIn(asset)})
    def _checks(context: dg.AssetCheckExecutionContext, value: object):
        month = month_of(context.partition_key) if context.has_partition_key else None
        for outcome in evaluate(value, month):
            yield dg.AssetCheckResult(
                asset_key=asset,
                check_name=outcome.name,
                passed=outcome.passed,
                description=outcome.description,
                metadata=outcome.metadata,
                severity=dg.AssetCheckSeverity.ERROR,
            )

    return _checks


def build_ingest_checks(
    asset_names: set[str], monthly: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    checks = [blocking_rule_checks("weekly_panel", PANEL_CHECKS, lambda p, _: panel_rules(p))]
    if "raw_events" in asset_names:
        checks.append(blocking_rule_checks("raw_events", RAW_EVENTS_CHECKS, event_rules, monthly))
    if "raw_spend" in asset_names:
        checks.append(blocking_rule_checks("raw_spend", RAW_SPEND_CHECKS, spend_rules, monthly))
    return checks
