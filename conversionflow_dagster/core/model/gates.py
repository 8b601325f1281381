"""The convergence gates as check outcomes, each naming the parameters that fail and by how much."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import arviz as az

from conversionflow_dagster.core.config import Gates
from conversionflow_dagster.core.model.diagnostics import (
    ConvergenceReport,
    ParameterRow,
    convergence_report,
)
from conversionflow_dagster.core.model.ladder import Rung
from conversionflow_dagster.core.rules import CheckOutcome

SHOWN = 8


# What a user can do when a gate fails, in the words of the config and the CLI.
NEXT_STEP = {
    "max_r_hat": "the chains disagree: run longer (model.warmup and model.draws, or --warmup "
    "and --draws), and check the named parameters' priors",
    "min_ess_bulk": "too few independent draws: raise model.draws (--draws) or model.chains "
    "(--chains)",
    "min_ess_tail": "too few independent draws in the tails: raise model.draws (--draws) or "
    "model.chains (--chains)",
    "divergences": "the sampler hit regions it cannot explore: raise model.target_accept (up "
    "to 0.99) and model.warmup, keep model.convergence_ladder on, or tighten the priors "
    "(model.priors, see docs/priors.md) of the parameters named by R-hat",
}


def _gate(
    name: str,
    rows: Sequence[tuple[str, float]],
    worst: float,
    threshold: float,
    text: str,
    fmt: Callable[[float], str],
) -> CheckOutcome:
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
        f"{len(rows)} parameter(s) fail '{text}' (threshold {threshold}): {listed}{more}; "
        f"{NEXT_STEP[name]}",
        metadata,
    )


def _named(rows: Sequence[ParameterRow], field: str) -> list[tuple[str, float]]:
    return [(r.name, getattr(r, field)) for r in rows]


def gate_outcomes(report: ConvergenceReport, gates: Gates) -> list[CheckOutcome]:
    bad = report.failures(gates)
    return [
        _gate(
            "max_r_hat",
            _named(bad.r_hat, "r_hat"),
            report.max_r_hat,
            gates.max_r_hat,
            "R-hat <= threshold",
            lambda v: f"{v:.3f}",
        ),
        _gate(
            "min_ess_bulk",
            _named(bad.ess_bulk, "ess_bulk"),
            report.min_ess_bulk,
            gates.min_ess_bulk,
            "bulk ESS >= threshold",
            lambda v: f"{v:.0f}",
        ),
        _gate(
            "min_ess_tail",
            _named(bad.ess_tail, "ess_tail"),
            report.min_ess_tail,
            gates.min_ess_tail,
            "tail ESS >= threshold",
            lambda v: f"{v:.0f}",
        ),
        CheckOutcome(
            "divergences",
            not bad.divergences,
            f"{report.divergences} divergent transition(s) after warm-up "
            f"(allowed: {gates.max_divergences})"
            + (f"; {NEXT_STEP['divergences']}" if bad.divergences else ""),
            {"divergences": report.divergences},
        ),
    ]


def trace_rules(idata: az.InferenceData, gates: Gates) -> list[CheckOutcome]:
    return gate_outcomes(convergence_report(idata), gates)


def gate_failure_message(
    report: ConvergenceReport, gates: Gates, tried: Sequence[Rung], kept: Path
) -> str:
    """Why a fit was refused, what the ladder tried, where the trace is, and what to do next."""
    last = tried[-1]
    climbed = (
        f"after {len(tried)} fits of the convergence ladder (the last with target_accept "
        f"{last.target_accept}, max_tree_depth {last.max_tree_depth}, warm-up {last.warmup}, "
        f"draws {last.draws})"
        if len(tried) > 1
        else f"(target_accept {last.target_accept}, max_tree_depth {last.max_tree_depth})"
    )
    failing = [o.description for o in gate_outcomes(report, gates) if not o.passed]
    return "\n".join(
        [
            f"the fit failed its convergence gates {climbed}; nothing downstream runs:",
            *(f"- {text}" for text in failing),
            f"The refused trace is kept for inspection at {kept} (arviz.from_netcdf); the "
            "month's previous trace, if any, is unchanged. Rerun the month after the change.",
        ]
    )
