"""Checks on a published allocation: what the business acts on must add up and be optimal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conversionflow_dagster.core.rules import CheckOutcome

BUDGET_TOLERANCE = 1e-6  # relative
BOUND_SLACK = 1e-6  # relative to the budget
REFEREE_TOLERANCE = 1e-3  # the published plan may trail the gradient referee by 0.1%


def _per_scenario(name: str, scenarios, failing: list[str], passed_text: str) -> CheckOutcome:
    if failing:
        return CheckOutcome(name, False, "; ".join(failing), {"failing_scenarios": len(failing)})
    return CheckOutcome(name, True, f"{len(scenarios)} scenario(s): {passed_text}")


def allocation_rules(document: Mapping[str, Any]) -> list[CheckOutcome]:
    """Budget exact, bounds respected, not worse than the referee, not worse than today."""
    scenarios = document["scenarios"]
    budget, bounds, referee, current = [], [], [], []
    for s in scenarios:
        label = f"budget {s['budget']:,.0f}"
        total = sum(c["optimised_spend"] for c in s["channels"])
        if abs(total - s["budget"]) > BUDGET_TOLERANCE * s["budget"]:
            budget.append(f"{label}: plan spends {total:,.2f}")
        slack = BOUND_SLACK * s["budget"]
        for c in s["channels"]:
            if not c["lower"] - slack <= c["optimised_spend"] <= c["upper"] + slack:
                bounds.append(
                    f"{label}: {c['channel']} {c['optimised_spend']:,.2f} outside "
                    f"[{c['lower']:,.2f}, {c['upper']:,.2f}]"
                )
        shortfall = (s["referee_value"] - s["objective_value"]) / (abs(s["referee_value"]) or 1)
        if shortfall > REFEREE_TOLERANCE:
            referee.append(f"{label}: {shortfall:.3%} below the SLSQP referee")
        if s["optimised_response"] < s["current_response"] * (1 - 1e-9):
            current.append(
                f"{label}: optimised {s['optimised_response']:,.2f} < current "
                f"{s['current_response']:,.2f}"
            )
    return [
        _per_scenario("budget_exact", scenarios, budget, "spend equals the budget within 1e-6"),
        _per_scenario("bounds_respected", scenarios, bounds, "every channel within its bounds"),
        _per_scenario(
            "not_worse_than_referee",
            scenarios,
            referee,
            "within 0.1% of the gradient referee or better",
        ),
        _per_scenario(
            "beats_current_plan", scenarios, current, "expected response at least the current mix's"
        ),
    ]
