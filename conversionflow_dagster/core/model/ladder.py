"""The convergence ladder: refit with more careful sampler settings before giving up.

A fit that diverges or whose chains disagree usually converges with a smaller step size
(a higher target acceptance) or longer trajectories. Rather than hand a new user a failed gate,
the fit climbs a short ladder of ever more careful settings and the gates judge the last rung:

    rung 0: the configured settings (model.target_accept, model.max_tree_depth, model.warmup)
    rung 1: target acceptance 0.95
    rung 2: target acceptance 0.99
    rung 3: target acceptance 0.99, tree depth + 2, twice the warm-up

Rungs that would not change anything (the configured target acceptance is already 0.95 or
more) are skipped. Only divergence and R-hat failures climb: too few effective draws is a
matter of more draws, which the gate message says. Every rung's settings and diagnostics are
kept, so the trace and the run show what it took to converge.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from conversionflow_dagster.core.config import Gates
from conversionflow_dagster.core.model.diagnostics import convergence_report

if TYPE_CHECKING:  # the fit itself is passed in: this module does not need JAX
    from conversionflow_dagster.core.model.fitting import FitResult, SamplerSettings

LADDER_ATTR = "convergence_ladder"  # trace attribute holding the rungs, as JSON
CAREFUL_TARGET_ACCEPT = (0.95, 0.99)
EXTRA_TREE_DEPTH = 2
MAX_TREE_DEPTH = 15  # NumPyro's trees grow to 2**depth steps: 15 is already 32768


@dataclass(frozen=True)
class Rung:
    """One fit of the ladder: its settings, what the gates saw and what it cost."""

    rung: int
    target_accept: float
    max_tree_depth: int
    dense_mass: bool
    warmup: int
    divergences: int
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    passed: bool
    seconds: float

    def describe(self) -> str:
        verdict = "passed the gates" if self.passed else "failed the gates"
        return (
            f"rung {self.rung} (target_accept {self.target_accept}, max_tree_depth "
            f"{self.max_tree_depth}, warm-up {self.warmup}): {verdict} with "
            f"{self.divergences} divergence(s), max R-hat {self.max_r_hat:.3f}, min bulk ESS "
            f"{self.min_ess_bulk:.0f}, in {self.seconds:.0f} s"
        )


def rungs(first: SamplerSettings, warmup: int) -> list[tuple[SamplerSettings, int]]:
    """Sampler settings and warm-up of each rung, starting with the configured ones."""
    ladder = [(first, warmup)]
    for accept in CAREFUL_TARGET_ACCEPT:
        if accept > ladder[-1][0].target_accept:
            ladder.append((replace(ladder[-1][0], target_accept=accept), warmup))
    deeper = min(first.max_tree_depth + EXTRA_TREE_DEPTH, MAX_TREE_DEPTH)
    last = replace(ladder[-1][0], max_tree_depth=deeper)
    if last != ladder[-1][0]:
        ladder.append((last, 2 * warmup))
    return ladder


def fit_until_converged(
    fit: Callable[[SamplerSettings, int], FitResult],
    first: SamplerSettings,
    warmup: int,
    gates: Gates,
    *,
    climb: bool = True,
    on_rung: Callable[[Rung], None] | None = None,
) -> tuple[FitResult, list[Rung]]:
    """Fit with ``fit(settings, warmup)`` rung by rung until the gates pass or the ladder ends.

    Returns the last fit (its trace carries every rung in the ``convergence_ladder`` attribute)
    and the rungs. With ``climb`` False only the configured settings are tried.
    """
    tried: list[Rung] = []
    plan = rungs(first, warmup) if climb else [(first, warmup)]
    for index, (settings, rung_warmup) in enumerate(plan):
        started = time.perf_counter()
        result = fit(settings, rung_warmup)
        report = convergence_report(result.idata)
        failures = report.failures(gates)
        rung = Rung(
            rung=index,
            target_accept=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            dense_mass=settings.dense_mass,
            warmup=rung_warmup,
            divergences=report.divergences,
            max_r_hat=report.max_r_hat,
            min_ess_bulk=report.min_ess_bulk,
            min_ess_tail=report.min_ess_tail,
            passed=failures.passed,
            seconds=time.perf_counter() - started,
        )
        tried.append(rung)
        if on_rung:
            on_rung(rung)
        if failures.passed or not (failures.divergences or failures.r_hat):
            break
    result.idata.posterior.attrs[LADDER_ATTR] = json.dumps([asdict(r) for r in tried])
    return result, tried


def ladder_table(tried: list[Rung]) -> str:
    """The rungs as a Markdown table, for the run's metadata."""
    lines = [
        "| rung | target_accept | max_tree_depth | warm-up | divergences | max R-hat | "
        "min bulk ESS | gates | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.rung} | {r.target_accept} | {r.max_tree_depth} | {r.warmup} | {r.divergences} | "
        f"{r.max_r_hat:.3f} | {r.min_ess_bulk:.0f} | {'pass' if r.passed else 'fail'} | "
        f"{r.seconds:.0f} |"
        for r in tried
    ]
    return "\n".join(lines)


def sampling_sentence(attrs: Mapping[str, str]) -> str | None:
    """How a stored trace was sampled, for the report: the NUTS settings of its fit and the
    ladder behind it. None for a trace that does not record them."""
    if "sampler" not in attrs:
        return None
    used = json.loads(attrs["sampler"])
    mass = "dense" if used["dense_mass"] else "diagonal"
    text = (
        f"NUTS with target acceptance {used['target_accept']}, trees up to depth "
        f"{used['max_tree_depth']}, a {mass} mass matrix and {used['warmup']} warm-up "
        "iterations per chain"
    )
    tried = [Rung(**r) for r in json.loads(attrs.get(LADDER_ATTR, "[]"))]
    if len(tried) > 1:
        first = tried[0]
        text += (
            f"; the first fit (target acceptance {first.target_accept}) failed the convergence "
            f"gates with {first.divergences} divergence(s) and max R-hat {first.max_r_hat:.3f}, "
            f"so the convergence ladder refitted {len(tried) - 1} time(s)"
        )
    return text + "."
