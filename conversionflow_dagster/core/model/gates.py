"""The convergence gates as check outcomes, each naming the parameters that fail and by how much."""

from __future__ import annotations

import arviz as az

from conversionflow_dagster.core.config import GatesConfig
from conversionflow_dagster.core.model.diagnostics import (
    ConvergenceReport,
    Gates,
    convergence_report,
)
from conversionflow_dagster.core.rules import CheckOutcome

SHOWN = 8


def gates_from_config(config: GatesConfig) -> Gates:
    return Gates(
        max_r_hat=config.max_r_hat,
        min_ess_bulk=config.min_ess_bulk,
        min_ess_tail=config.min_ess_tail,
        max_divergences=config.max_divergences,
    )


def _gate(name, rows, worst, threshold, text, fmt) -> CheckOutcome:
    metadata = {"worst": float(worst), "threshold": float(threshold), "failing": len(rows)}
    if not rows:
        return CheckOutcome(
            name, True, f"{text}: worst {fmt(worst)} (threshold {threshold})", metadata
        )
    listed = ", ".join(f"{n} {fmt(v)}" for n, v in rows[:SHOWN])
    more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    return CheckOutcome(
        name,
        False,
        f"{len(rows)} parameter(s) fail '{text}' (threshold {threshold}): {listed}{more}",
        metadata,
    )


def gate_outcomes(report: ConvergenceReport, gates: Gates) -> list[CheckOutcome]:
    failing = report.failing
    r_hat = sorted(
        ((r.name, r.r_hat) for r in failing if not r.r_hat <= gates.max_r_hat), key=lambda x: -x[1]
    )
    bulk = sorted(
        ((r.name, r.ess_bulk) for r in failing if not r.ess_bulk >= gates.min_ess_bulk),
        key=lambda x: x[1],
    )
    tail = sorted(
        ((r.name, r.ess_tail) for r in failing if not r.ess_tail >= gates.min_ess_tail),
        key=lambda x: x[1],
    )
    divergences = report.divergences
    return [
        _gate(
            "max_r_hat",
            r_hat,
            report.max_r_hat,
            gates.max_r_hat,
            "R-hat <= threshold",
            lambda v: f"{v:.3f}",
        ),
        _gate(
            "min_ess_bulk",
            bulk,
            report.min_ess_bulk,
            gates.min_ess_bulk,
            "bulk ESS >= threshold",
            lambda v: f"{v:.0f}",
        ),
        _gate(
            "min_ess_tail",
            tail,
            report.min_ess_tail,
            gates.min_ess_tail,
            "tail ESS >= threshold",
            lambda v: f"{v:.0f}",
        ),
        CheckOutcome(
            "divergences",
            divergences <= gates.max_divergences,
            f"{divergences} divergent transition(s) after warm-up "
            f"(allowed: {gates.max_divergences})",
            {"divergences": divergences},
        ),
    ]


def trace_rules(idata: az.InferenceData, gates: Gates) -> list[CheckOutcome]:
    return gate_outcomes(convergence_report(idata, gates=gates), gates)
