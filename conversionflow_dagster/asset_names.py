"""Every asset's name, written once: assets, checks, jobs, the runner and the CLI import these,
so a rename cannot leave a check or a run plan pointing at an asset that no longer exists."""

RAW_EVENTS = "raw_events"
RAW_SPEND = "raw_spend"
WEEKLY_PANEL = "weekly_panel"
CAMPAIGN_LIFT_TESTS = "campaign_lift_tests"
CUSTOMER_VALUE = "customer_value"
POSTERIOR_TRACE = "posterior_trace"
PARAMETER_EXPORT = "parameter_export"
BUDGET_ALLOCATION = "budget_allocation"
MARKET_ALLOCATION = "market_allocation"
ATTRIBUTION_REPORT = "attribution_report"
