"""The convergence ladder: refit with more careful sampler settings before giving up.

A fit that diverges or whose chains disagree usually converges with a smaller step size
(a higher target acceptance) or longer trajectories. Rather than hand a new user a failed gate,
the fit climbs a short ladder of ever more careful settings and the gates judge the last rung:

    rung 0: the configured settings (model.target_accept, model.max_tree_depth, model.warmup),
            warm-up trees capped at depth 6 (in a warm-up of 500 iterations or more)
    rung 1: target acceptance 0.95, warm-up trees as deep as the sampling ones
    rung 2: target acceptance 0.99
    rung 3: target acceptance 0.99, tree depth + 2, twice the warm-up

Rungs that would not change anything (the configured target acceptance is already 0.95 or
more) are skipped. Divergence and R-hat failures climb. A fit that fails only for too few
effective draws is refitted once, with the same settings and as many more draws as the
shortfall asks for (at most 4x): chains that mix slowly but correctly, such as a one-week event
dummy under Student-t noise, need draws, not smaller steps. Every rung's settings and
diagnostics are kept, so the trace and the run show what it took to converge.
"""

from __future__ import annotations

import json
import math
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
# An ESS-only failure is refitted with draws x (shortfall x this margin), at most MAX_MORE_DRAWS
# times the draws: ESS grows about in proportion to draws, and beyond 4x the chains are more
# likely stuck than slow.
ESS_MARGIN = 1.25
MAX_MORE_DRAWS = 4


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
    draws: int = 0  # per chain; 0 in traces written before rungs recorded it
    warmup_tree_depth: int = 0  # 0 in traces written before warm-up trees were capped

    @property
    def tree_depth(self) -> str:
        return tree_depth_text(self.max_tree_depth, self.warmup_tree_depth)

    def describe(self) -> str:
        verdict = "passed the gates" if self.passed else "failed the gates"
        return (
            f"rung {self.rung} (target_accept {self.target_accept}, max_tree_depth "
            f"{self.tree_depth}, warm-up {self.warmup}, draws {self.draws}): {verdict} with "
            f"{self.divergences} divergence(s), max R-hat {self.max_r_hat:.3f}, min bulk ESS "
            f"{self.min_ess_bulk:.0f}, in {self.seconds:.0f} s"
        )


def tree_depth_text(max_tree_depth: int, warmup_tree_depth: int) -> str:
    """``max_tree_depth``, with the warm-up's cap where it was lower (0: not recorded)."""
    if 0 < warmup_tree_depth < max_tree_depth:
        return f"{max_tree_depth} ({warmup_tree_depth} in warm-up)"
    return str(max_tree_depth)


def rungs(first: SamplerSettings, warmup: int) -> list[tuple[SamplerSettings, int]]:
    """Sampler settings and warm-up of each rung, starting with the configured ones."""
    ladder = [(first, warmup)]
    for accept in CAREFUL_TARGET_ACCEPT:
        previous = ladder[-1][0]
        if accept > previous.target_accept:  # a careful rung warms up with full-depth trees
            careful = replace(
                previous, target_accept=accept, warmup_tree_depth=previous.max_tree_depth
            )
            ladder.append((careful, warmup))
    deeper = min(first.max_tree_depth + EXTRA_TREE_DEPTH, MAX_TREE_DEPTH)
    last = replace(ladder[-1][0], max_tree_depth=deeper, warmup_tree_depth=deeper)
    if last != ladder[-1][0]:
        ladder.append((last, 2 * warmup))
    return ladder


def more_draws(rung: Rung, gates: Gates) -> int | None:
    """Draws per chain for a refit of a rung that failed only on ESS, None if it would take more
    than ``MAX_MORE_DRAWS`` times its draws."""
    shortfall = max(
        gates.min_ess_bulk / max(rung.min_ess_bulk, 1.0),
        gates.min_ess_tail / max(rung.min_ess_tail, 1.0),
    )
    factor = max(2.0, ESS_MARGIN * shortfall)
    return math.ceil(factor * rung.draws) if factor <= MAX_MORE_DRAWS else None


def fit_until_converged(
    fit: Callable[[SamplerSettings, int, int], FitResult],
    first: SamplerSettings,
    warmup: int,
    draws: int,
    gates: Gates,
    *,
    climb: bool = True,
    on_rung: Callable[[Rung], None] | None = None,
) -> tuple[FitResult, list[Rung]]:
    """Fit with ``fit(settings, warmup, draws)`` rung by rung until the gates pass or the
    ladder ends; a fit short only of effective draws gets one refit with more draws.

    Returns the last fit (its trace carries every rung in the ``convergence_ladder`` attribute)
    and the rungs. With ``climb`` False only the configured settings are tried.
    """
    tried: list[Rung] = []
    plan = rungs(first, warmup) if climb else [(first, warmup)]
    plan = [(settings, rung_warmup, draws) for settings, rung_warmup in plan]
    while plan:
        settings, rung_warmup, rung_draws = plan.pop(0)
        started = time.perf_counter()
        result = fit(settings, rung_warmup, rung_draws)
        report = convergence_report(result.idata)
        failures = report.failures(gates)
        rung = Rung(
            rung=len(tried),
            target_accept=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            warmup_tree_depth=settings.tree_depths(rung_warmup)[0],
            dense_mass=settings.dense_mass,
            warmup=rung_warmup,
            divergences=report.divergences,
            max_r_hat=report.max_r_hat,
            min_ess_bulk=report.min_ess_bulk,
            min_ess_tail=report.min_ess_tail,
            passed=failures.passed,
            seconds=time.perf_counter() - started,
            draws=rung_draws,
        )
        tried.append(rung)
        if on_rung:
            on_rung(rung)
        if failures.passed:
            break
        if not (failures.divergences or failures.r_hat):  # short of effective draws only
            longer = more_draws(rung, gates) if climb and rung_draws == draws else None
            plan = [(settings, rung_warmup, longer)] if longer else []
    result.idata.posterior.attrs[LADDER_ATTR] = json.dumps([asdict(r) for r in tried])
    return result, tried


def ladder_table(tried: list[Rung]) -> str:
    """The rungs as a Markdown table, for the run's metadata."""
    lines = [
        "| rung | target_accept | max_tree_depth | warm-up | draws | divergences | max R-hat | "
        "min bulk ESS | min tail ESS | gates | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.rung} | {r.target_accept} | {r.tree_depth} | {r.warmup} | {r.draws} | "
        f"{r.divergences} | {r.max_r_hat:.3f} | {r.min_ess_bulk:.0f} | {r.min_ess_tail:.0f} | "
        f"{'pass' if r.passed else 'fail'} | {r.seconds:.0f} |"
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
    depth = tree_depth_text(used["max_tree_depth"], used.get("warmup_tree_depth", 0))
    text = (
        f"NUTS with target acceptance {used['target_accept']}, trees up to depth {depth}, a "
        f"{mass} mass matrix and {used['warmup']} warm-up iterations per chain"
    )
    tried = [Rung(**r) for r in json.loads(attrs.get(LADDER_ATTR, "[]"))]
    if len(tried) > 1:
        first, last = tried[0], tried[-1]
        text += (
            f"; the first fit (target acceptance {first.target_accept}) failed the convergence "
            f"gates with {first.divergences} divergence(s), max R-hat {first.max_r_hat:.3f} "
            f"and min tail ESS {first.min_ess_tail:.0f}, so the convergence ladder refitted "
            f"{len(tried) - 1} time(s)"
        )
        if first.draws and last.draws > first.draws:
            text += f", the last time with {last.draws} draws per chain"
    return text + "."
