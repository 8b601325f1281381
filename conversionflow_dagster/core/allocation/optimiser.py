"""Budget allocation over a planning horizon: a seeded genetic algorithm, refereed by SLSQP.

A plan spends ``share_c * budget`` on channel ``c`` over ``horizon_weeks`` at a constant weekly
rate; its response is the steady-state weekly response (response.py) times the number of weeks
(carry-over into and out of the horizon is ignored, as for every plan compared). The decision
variables are the budget shares, so the GA and the referee work on numbers of order one.

Bounds, in money over the horizon, per channel (later rules override earlier ones):

1. the band: ``(1 -/+ bounds_band) * reference``, where the reference is the channel's current
   share of spend times the budget. At the current budget this is its current spend; scaling
   with the budget keeps every scenario budget feasible under the default band.
2. zero-spend channels (current spend 0, so the band would pin them at 0) may receive
   ``[0, zero_spend_share * budget]``; ``zero_spend_share=0`` keeps them at zero.
3. explicit ``bounds`` (min, max) replace the band on the side given (the other side moves if
   it would cross it).
4. ``locked`` channels are held at their reference spend.

The GA's answer must reach the referee's objective value within ``tolerance`` (relative); if it
does not, it is polished with SLSQP, and if that still falls short the referee's plan is used.
The result records which one won and the gap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pygad
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from conversionflow_dagster.core.allocation.response import ResponseModel
from conversionflow_dagster.core.config import OptimisationSection
from conversionflow_dagster.core.errors import ConversionflowError
from conversionflow_dagster.core.parameter_export import ParameterExport
from conversionflow_dagster.core.stats import finite_or_none, hdi

OBJECTIVES = ("mean", "quantile", "mean_minus_k_sd")
ROUNDING = 1e-9  # relative to the budget: bounds may miss the budget by this much
AT_BOUND = 1e-6  # relative to the budget: closer than this to a bound counts as on it
# GA operators, in share units (tuned on 20-channel exports: median GA/referee gap ~1e-5).
# Parents win a tournament of three; blend crossover may step half the parents' distance beyond
# either parent (BLX-0.5); the mutation step shrinks geometrically from 20% to 0.02% of each
# channel's bound width, so early generations explore and late ones refine.
TOURNAMENT = 3
BLEND_OVERSHOOT = 0.5
MUTATION_RATE = 0.3
MUTATION_START, MUTATION_END = 0.2, 2e-4
SLSQP_OPTIONS = {"maxiter": 500, "ftol": 1e-12}
# The linear algebra here is tiny (C x C); BLAS worker threads only add synchronisation, which
# made SLSQP about 100 times slower on a busy two-core machine. Public entry points therefore
# run with single-threaded BLAS (threadpoolctl comes with pymc).
_SERIAL_BLAS = threadpool_limits.wrap(limits=1, user_api="blas")


class AllocationError(ConversionflowError, ValueError):
    """The allocation problem is malformed or has no feasible plan; the message says why."""


def _money(x: float) -> str:
    return f"{x:,.2f}".removesuffix(".00")


@dataclass(frozen=True)
class AllocationSpec:
    """One allocation problem. Amounts (budget, bounds) are money over the whole horizon."""

    budget: float
    horizon_weeks: int = 13
    bounds_band: float = 0.5
    bounds: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    locked: tuple[str, ...] = ()
    zero_spend_share: float = 0.05
    objective: str = "mean"  # "mean", "quantile" or "mean_minus_k_sd"
    quantile: float = 0.1  # for "quantile": maximise this lower quantile of the response
    risk_k: float = 1.0  # for "mean_minus_k_sd"
    population: int = 100  # the original tool's resource-constrained profile: 50
    generations: int = 200  # ... and 100
    seed: int = 0
    referee_starts: int = 3  # random feasible starts, besides the current plan and equal split
    tolerance: float = 1e-3  # the GA may trail the referee by this much (relative)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bounds", dict(self.bounds))
        object.__setattr__(self, "locked", tuple(self.locked))
        checks = [
            (_finite(self.budget) and self.budget > 0, "budget: expected an amount > 0"),
            (_integer(self.horizon_weeks, 1), "horizon_weeks: expected an integer >= 1"),
            (_finite(self.bounds_band) and self.bounds_band >= 0, "bounds_band: expected >= 0"),
            (
                _finite(self.zero_spend_share) and 0 <= self.zero_spend_share <= 1,
                "zero_spend_share: expected a share in [0, 1]",
            ),
            (self.objective in OBJECTIVES, f"objective: expected one of {', '.join(OBJECTIVES)}"),
            (_finite(self.quantile) and 0 < self.quantile < 1, "quantile: expected in (0, 1)"),
            (_finite(self.risk_k) and self.risk_k >= 0, "risk_k: expected >= 0"),
            (_integer(self.population, 4), "population: expected an integer >= 4"),
            (_integer(self.generations, 1), "generations: expected an integer >= 1"),
            (_integer(self.referee_starts, 0), "referee_starts: expected an integer >= 0"),
            (
                _integer(self.seed, 0) and self.seed < 2**32,
                "seed: expected an integer in [0, 2**32)",
            ),
            (_finite(self.tolerance) and self.tolerance >= 0, "tolerance: expected >= 0"),
        ]
        for ok, problem in checks:
            if not ok:
                field_name = problem.split(":")[0]
                raise AllocationError(f"{problem}, got {getattr(self, field_name)!r}")
        for name, pair in self.bounds.items():
            _check_explicit_bounds(name, pair)
            if name in self.locked:
                raise AllocationError(
                    f"channel {name!r} is both locked and given bounds; use one or the other"
                )

    @classmethod
    def from_section(cls, section: OptimisationSection, budget: float) -> AllocationSpec:
        """The spec of the config's ``optimisation`` section (after run-config overrides) for
        ``budget``, resolved from the data by :func:`scenario_plan` when the config has none."""
        return cls(
            budget=budget,
            horizon_weeks=section.horizon_weeks,
            bounds_band=section.bounds_band,
            bounds={name: (b.min, b.max) for name, b in section.bounds.items()},
            locked=tuple(section.locked),
            objective=section.objective,
            quantile=section.quantile,
            risk_k=section.risk_k,
            population=section.population,
            generations=section.generations,
            seed=section.seed,
        )


# Scenarios when the config names none: a spread around the main budget.
DEFAULT_SCENARIO_FACTORS = (0.8, 0.9, 1.0, 1.1, 1.25)


@dataclass(frozen=True)
class ScenarioPlan:
    """The budgets to allocate, ascending, and which of them is the main plan."""

    budgets: tuple[float, ...]
    main: int  # index into budgets

    @property
    def main_budget(self) -> float:
        return self.budgets[self.main]


def current_budget(export: ParameterExport, horizon_weeks: int) -> float:
    """What the current plan spends over the horizon: the exported current weekly spend."""
    return float(export.current_weekly_spend.sum()) * horizon_weeks


def scenario_plan(
    main_budget: float | None, scenarios: Sequence[float] | None, current_budget: float
) -> ScenarioPlan:
    """Main budget and scenarios from config, each defaulting to the data, not to a sample.

    ``main_budget`` None means the current spend over the horizon (``current_budget``);
    ``scenarios`` None means :data:`DEFAULT_SCENARIO_FACTORS` times the main budget. The main
    budget is always among the scenarios.
    """
    main = float(current_budget if main_budget is None else main_budget)
    if not (math.isfinite(main) and main > 0):
        raise AllocationError(
            "optimisation.budget is not set and the data show no current spend over the "
            "horizon: set optimisation.budget (money over optimisation.horizon_weeks)"
        )
    others = [main * f for f in DEFAULT_SCENARIO_FACTORS] if scenarios is None else scenarios
    budgets = sorted({float(b) for b in others} | {main})
    return ScenarioPlan(tuple(budgets), budgets.index(main))


def _finite(x: Any) -> bool:
    return isinstance(x, int | float | np.number) and not isinstance(x, bool) and math.isfinite(x)


def _integer(x: Any, minimum: int) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool) and x >= minimum


def _check_explicit_bounds(name: str, pair: Any) -> None:
    if not isinstance(pair, Sequence) or len(pair) != 2:
        raise AllocationError(f"bounds[{name!r}]: expected a (min, max) pair, got {pair!r}")
    for side, value in zip(("min", "max"), pair, strict=True):
        if value is not None and not (_finite(value) and value >= 0):
            raise AllocationError(
                f"bounds[{name!r}] {side}: expected an amount >= 0 or None, got {value!r}"
            )
    low, high = pair
    if low is not None and high is not None and low > high:
        raise AllocationError(f"bounds[{name!r}]: min {_money(low)} is above max {_money(high)}")


@dataclass(frozen=True)
class PlanBounds:
    """Per-channel limits at one budget (money over the horizon) and the rule behind each."""

    reference: np.ndarray  # (C,) current mix scaled to the budget
    lower: np.ndarray  # (C,)
    upper: np.ndarray  # (C,)
    locked: np.ndarray  # (C,) bool
    lower_rule: tuple[str, ...]
    upper_rule: tuple[str, ...]


def reference_plan(export: ParameterExport, budget: float) -> np.ndarray:
    """(C,) the current spend mix scaled to ``budget`` (all zeros if nothing is spent now)."""
    current = export.current_weekly_spend
    total = current.sum()
    return budget * current / total if total > 0 else np.zeros_like(current)


def plan_bounds(export: ParameterExport, spec: AllocationSpec) -> PlanBounds:
    """Apply the bounds rules of the module docstring; refuse unknown names and infeasibility."""
    names = export.channel_names
    for what, given in (("bounds", list(spec.bounds)), ("locked", list(spec.locked))):
        unknown = [n for n in given if n not in names]
        if unknown:
            raise AllocationError(
                f"{what}: unknown channel(s) {', '.join(map(repr, unknown))}; the export has "
                f"{', '.join(map(repr, names))}"
            )
    reference = reference_plan(export, spec.budget)
    band = spec.bounds_band
    lower = np.maximum(0.0, (1 - band) * reference)
    upper = (1 + band) * reference
    lower_rule = [f"band -{band:.0%}"] * len(names)
    upper_rule = [f"band +{band:.0%}"] * len(names)
    for i, name in enumerate(names):
        if reference[i] == 0:
            upper[i] = spec.zero_spend_share * spec.budget
            upper_rule[i] = f"zero-spend cap {spec.zero_spend_share:.0%} of budget"
        low, high = spec.bounds.get(name, (None, None))
        if low is not None:
            lower[i], lower_rule[i] = low, "explicit min"
            upper[i] = max(upper[i], low)
        if high is not None:
            upper[i], upper_rule[i] = high, "explicit max"
            lower[i] = min(lower[i], high)
        if name in spec.locked:
            lower[i] = upper[i] = reference[i]
            lower_rule[i] = upper_rule[i] = "locked"
    bounds = PlanBounds(
        reference,
        lower,
        upper,
        np.array([n in spec.locked for n in names]),
        tuple(lower_rule),
        tuple(upper_rule),
    )
    _check_feasible(names, bounds, spec.budget)
    return bounds


def _itemise(names: Sequence[str], values: np.ndarray, rules: Sequence[str]) -> str:
    return ", ".join(
        f"{name} {_money(v)} ({rule})" for name, v, rule in zip(names, values, rules, strict=True)
    )


def _check_feasible(names: Sequence[str], bounds: PlanBounds, budget: float) -> None:
    low, high = bounds.lower.sum(), bounds.upper.sum()
    if low > budget * (1 + ROUNDING):
        raise AllocationError(
            f"budget {_money(budget)} is below the sum of the channel lower bounds "
            f"{_money(low)}: {_itemise(names, bounds.lower, bounds.lower_rule)}; lower the "
            "minimums, unlock channels or raise the budget"
        )
    if high < budget * (1 - ROUNDING):
        raise AllocationError(
            f"budget {_money(budget)} is above the sum of the channel upper bounds "
            f"{_money(high)}: {_itemise(names, bounds.upper, bounds.upper_rule)}; raise the "
            "maximums, widen bounds_band or zero_spend_share, or lower the budget"
        )


def project_to_budget(
    x: np.ndarray, lower: np.ndarray, upper: np.ndarray, total: float
) -> np.ndarray:
    """Euclidean projection of (..., C) vectors onto {lower <= y <= upper, sum y = total}.

    The projection is ``clip(x - tau, lower, upper)`` for the scalar ``tau`` that meets the
    total. The sum is piecewise linear and non-increasing in ``tau`` with breakpoints at
    ``x - upper`` and ``x - lower``, so ``tau`` is found exactly by evaluating the sum at every
    breakpoint and interpolating on the segment that crosses the total: no iteration, and
    vectorised over any leading axes (a whole GA population at once). Assumes
    ``sum(lower) <= total <= sum(upper)``.
    """
    x = np.asarray(x, dtype=float)
    knots = np.sort(np.concatenate([x - upper, x - lower], axis=-1), axis=-1)  # (..., 2C)
    sums = np.clip(x[..., None, :] - knots[..., :, None], lower, upper).sum(-1)  # (..., 2C)
    k = np.clip((sums >= total).sum(-1, keepdims=True) - 1, 0, knots.shape[-1] - 2)
    t0, t1 = np.take_along_axis(knots, k, -1), np.take_along_axis(knots, k + 1, -1)
    s0, s1 = np.take_along_axis(sums, k, -1), np.take_along_axis(sums, k + 1, -1)
    drop = s0 - s1
    safe = np.where(drop > 0, drop, 1.0)
    tau = np.where(drop > 0, t0 + (s0 - total) * (t1 - t0) / safe, t0)
    return np.clip(x - tau, lower, upper)


@dataclass(frozen=True)
class Objective:
    """What is maximised, as a function of a plan's per-draw total response (..., D)."""

    kind: str = "mean"
    quantile: float = 0.1
    risk_k: float = 1.0

    def value(self, totals: np.ndarray) -> np.ndarray:
        if self.kind == "mean":
            return totals.mean(-1)
        if self.kind == "quantile":
            return np.quantile(totals, self.quantile, axis=-1)
        return totals.mean(-1) - self.risk_k * totals.std(-1)

    def weights(self, totals: np.ndarray) -> np.ndarray:
        """d value / d totals for one plan, (D,) -> (D,): the gradient is weights @ marginals."""
        n = totals.shape[-1]
        if self.kind == "mean":
            return np.full(n, 1.0 / n)
        if self.kind == "quantile":  # numpy's linear interpolation between two order statistics
            order = np.argsort(totals)
            position = self.quantile * (n - 1)
            below = int(np.floor(position))
            above = min(below + 1, n - 1)
            weights = np.zeros(n)
            weights[order[below]] += 1.0 - (position - below)
            weights[order[above]] += position - below
            return weights
        sd = totals.std()
        spread = (totals - totals.mean()) / (n * sd) if sd > 0 else np.zeros(n)
        return 1.0 / n - self.risk_k * spread


@dataclass(frozen=True)
class _Problem:
    """One budget in share space; evaluates plans in response units over the horizon."""

    model: ResponseModel  # float64: referee and reporting
    fast: ResponseModel  # float32: GA fitness
    objective: Objective
    budget: float
    horizon: int
    lower: np.ndarray  # (C,) shares
    upper: np.ndarray  # (C,) shares

    def weekly(self, shares: np.ndarray) -> np.ndarray:
        return shares * (self.budget / self.horizon)

    def value(self, shares: np.ndarray) -> float:
        return float(
            self.objective.value(self.horizon * self.model.draw_totals(self.weekly(shares)))
        )

    def fitness(self, shares: np.ndarray) -> np.ndarray:
        """(P, C) -> (P,), all candidates and draws at once, in float32."""
        totals = self.horizon * self.fast.draw_totals(self.weekly(shares))  # (P, D)
        return self.objective.value(totals).astype(float)

    def value_and_gradient(self, shares: np.ndarray) -> tuple[float, np.ndarray]:
        weekly = self.weekly(shares)
        totals = self.horizon * self.model.draw_totals(weekly)  # (D,)
        # d/d share_c of horizon * r(share * budget / horizon) = budget * r'
        gradient = self.budget * (self.objective.weights(totals) @ self.model.marginal(weekly))
        return float(self.objective.value(totals)), gradient

    def repair(self, shares: np.ndarray) -> np.ndarray:
        return project_to_budget(shares, self.lower, self.upper, 1.0)

    def horizon_response(self, shares: np.ndarray) -> np.ndarray:
        """(C,) shares -> (D, C) response per draw and channel over the horizon."""
        return self.horizon * self.model.response(self.weekly(shares))

    def expected_response(self, shares: np.ndarray) -> float:
        """Mean over draws of the total response over the horizon."""
        return float(self.horizon * self.model.draw_totals(self.weekly(shares)).mean())

    def marginal_return(self, shares: np.ndarray) -> float:
        """Expected extra response per extra unit of budget: the best expected marginal among
        channels that can still grow (at the optimum, the budget's Lagrange multiplier)."""
        per_channel = self.model.marginal(self.weekly(shares)).mean(axis=0)  # (C,)
        can_grow = shares < self.upper - AT_BOUND
        return float(per_channel[can_grow].max()) if can_grow.any() else math.nan


@dataclass(frozen=True)
class _Operators:
    """pygad callbacks: batch fitness and vectorised operators that keep plans feasible.

    Random numbers come from the GA's own generator, seeded by ``random_seed``, so a seed fixes
    the run. Mutation repairs its output, so every evaluated plan spends exactly the budget.
    """

    problem: _Problem
    generations: int

    def fitness(self, ga: pygad.GA, shares: np.ndarray, indices: Any) -> np.ndarray:
        return self.problem.fitness(np.asarray(shares, dtype=float))

    def select(
        self, fitness: np.ndarray, n_parents: int, ga: pygad.GA
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tournament selection, vectorised (pygad's own runs a Python loop per parent)."""
        rng = ga.numpy_random_generator
        entrants = rng.randint(len(fitness), size=(n_parents, TOURNAMENT))
        winners = np.asarray(fitness)[entrants].argmax(axis=1)
        chosen = entrants[np.arange(n_parents), winners]
        return np.array(ga.population[chosen], dtype=float), chosen

    def crossover(self, parents: np.ndarray, size: tuple[int, int], ga: pygad.GA) -> np.ndarray:
        rng = ga.numpy_random_generator
        first = parents[rng.randint(len(parents), size=size[0])]
        second = parents[rng.randint(len(parents), size=size[0])]
        blend = rng.uniform(-BLEND_OVERSHOOT, 1 + BLEND_OVERSHOOT, size=size)
        return np.asarray(first + blend * (second - first), dtype=float)

    def mutation(self, offspring: np.ndarray, ga: pygad.GA) -> np.ndarray:
        rng = ga.numpy_random_generator
        progress = ga.generations_completed / self.generations
        scale = MUTATION_START * (MUTATION_END / MUTATION_START) ** progress
        width = self.problem.upper - self.problem.lower
        hit = rng.random_sample(offspring.shape) < MUTATION_RATE
        step = hit * rng.standard_normal(offspring.shape) * (scale * width)
        return self.problem.repair(np.asarray(offspring, dtype=float) + step)


def _random_plans(problem: _Problem, n: int, rng: np.random.Generator) -> np.ndarray:
    return problem.repair(rng.uniform(problem.lower, problem.upper, (n, len(problem.lower))))


def _genetic_search(problem: _Problem, spec: AllocationSpec, starts: np.ndarray) -> np.ndarray:
    """Best plan of a seeded GA whose first population holds ``starts`` and random plans."""
    rng = np.random.default_rng(spec.seed)
    initial = np.vstack([starts, _random_plans(problem, spec.population - len(starts), rng)])
    operators = _Operators(problem, spec.generations)
    ga = pygad.GA(
        num_generations=spec.generations,
        num_parents_mating=spec.population // 2,
        initial_population=initial,
        fitness_func=operators.fitness,
        fitness_batch_size=spec.population,
        parent_selection_type=operators.select,
        crossover_type=operators.crossover,
        mutation_type=operators.mutation,
        keep_elitism=max(1, spec.population // 20),
        random_seed=spec.seed,
        suppress_warnings=True,
    )
    ga.run()
    best, _, _ = ga.best_solution(ga.last_generation_fitness)
    return problem.repair(np.asarray(best, dtype=float))


def _slsqp(problem: _Problem, start: np.ndarray) -> np.ndarray:
    """Local optimum from ``start`` (objective scaled to order one for SLSQP's tolerances)."""
    scale = abs(problem.value(start)) or 1.0

    def negated(shares: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = problem.value_and_gradient(shares)
        return -value / scale, -gradient / scale

    ones = np.ones_like(start)
    result = minimize(
        negated,
        start,
        jac=True,
        method="SLSQP",
        bounds=list(zip(problem.lower, problem.upper, strict=True)),
        constraints=[{"type": "eq", "fun": lambda s: s.sum() - 1.0, "jac": lambda s: ones}],
        options=SLSQP_OPTIONS,
    )
    return problem.repair(result.x)


def _referee(problem: _Problem, spec: AllocationSpec, starts: np.ndarray) -> np.ndarray:
    """Best SLSQP optimum over the given starts and ``referee_starts`` seeded random plans."""
    rng = np.random.default_rng([spec.seed, 1])  # independent of the GA's initial population
    candidates = [
        _slsqp(problem, s) for s in [*starts, *_random_plans(problem, spec.referee_starts, rng)]
    ]
    return max(candidates, key=problem.value)


@dataclass(frozen=True)
class AllocationResult:
    """An optimised plan at one budget, compared with the current mix at that budget.

    ``channels`` has one row per channel: ``current_spend`` (the current mix scaled to the
    budget; at the current budget, the current spend), ``optimised_spend``, ``share`` of the
    budget, ``lower``/``upper`` bounds, ``bound_hit`` ("lower", "upper" or "none"), ``locked``,
    the expected response over the horizon with its 94% HDI for both plans, and
    ``marginal_return`` (expected extra response per extra unit of money at the optimum). All
    amounts are over the horizon.
    """

    budget: float
    horizon_weeks: int
    objective: str
    channels: pd.DataFrame
    current_draws: np.ndarray  # (D,) total response of the current mix over the horizon
    optimised_draws: np.ndarray  # (D,)
    objective_value: float
    ga_value: float
    referee_value: float
    gap: float  # (referee - GA) / |referee|: > 0 means the GA trailed the referee
    winner: str  # "ga", "ga+polish" or "referee"
    marginal_return: float  # expected extra response per extra unit of budget
    runtime_s: float

    @property
    def uplift(self) -> np.ndarray:
        """(D,) optimised minus current total response, per draw."""
        return self.optimised_draws - self.current_draws

    @property
    def p_uplift_positive(self) -> float:
        return float(np.mean(self.uplift > 0))

    def totals(self) -> dict[str, Any]:
        """Headline figures (JSON-able)."""
        current, optimised, uplift = (
            hdi(self.current_draws),
            hdi(self.optimised_draws),
            hdi(self.uplift),
        )
        return {
            "budget": self.budget,
            "horizon_weeks": self.horizon_weeks,
            "objective": self.objective,
            "current_response": float(self.current_draws.mean()),
            "current_response_hdi": list(current),
            "optimised_response": float(self.optimised_draws.mean()),
            "optimised_response_hdi": list(optimised),
            "uplift_mean": float(self.uplift.mean()),
            "uplift_hdi": list(uplift),
            "p_uplift_positive": self.p_uplift_positive,
            "marginal_return": finite_or_none(self.marginal_return),
            "objective_value": self.objective_value,
            "ga_value": self.ga_value,
            "referee_value": self.referee_value,
            "gap": self.gap,
            "winner": self.winner,
            "runtime_s": self.runtime_s,
        }

    def to_document(self) -> dict[str, Any]:
        return {
            **self.totals(),
            "channels": _records(self.channels),
            "uplift_draws": self.uplift.tolist(),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _problem(
    export: ParameterExport, spec: AllocationSpec, model: ResponseModel, fast: ResponseModel
) -> tuple[_Problem, PlanBounds]:
    bounds = plan_bounds(export, spec)
    objective = Objective(spec.objective, spec.quantile, spec.risk_k)
    problem = _Problem(
        model,
        fast,
        objective,
        spec.budget,
        spec.horizon_weeks,
        bounds.lower / spec.budget,
        bounds.upper / spec.budget,
    )
    return problem, bounds


def _allocate(
    export: ParameterExport, spec: AllocationSpec, model: ResponseModel, fast: ResponseModel
) -> AllocationResult:
    started = time.perf_counter()
    problem, bounds = _problem(export, spec, model, fast)
    starts = problem.repair(
        np.vstack([bounds.reference / spec.budget, np.full(model.n_channels, 1 / model.n_channels)])
    )
    ga_plan = _genetic_search(problem, spec, starts)
    referee_plan = _referee(problem, spec, starts)
    ga_value, referee_value = problem.value(ga_plan), problem.value(referee_plan)
    plan, winner = ga_plan, "ga"
    if _shortfall(ga_value, referee_value) > spec.tolerance:
        polished = _slsqp(problem, ga_plan)
        if _shortfall(problem.value(polished), referee_value) <= spec.tolerance:
            plan, winner = polished, "ga+polish"
        else:
            plan, winner = referee_plan, "referee"
    return _result(export, spec, problem, bounds, plan, winner, ga_value, referee_value, started)


def _shortfall(value: float, reference: float) -> float:
    """Relative amount by which ``value`` trails ``reference`` (negative if it is ahead)."""
    return (reference - value) / (abs(reference) or 1.0)


def _result(
    export: ParameterExport,
    spec: AllocationSpec,
    problem: _Problem,
    bounds: PlanBounds,
    plan: np.ndarray,
    winner: str,
    ga_value: float,
    referee_value: float,
    started: float,
) -> AllocationResult:
    spend = plan * spec.budget
    current = problem.horizon_response(bounds.reference / spec.budget)  # (D, C)
    optimised = problem.horizon_response(plan)  # (D, C)
    slack = AT_BOUND * spec.budget
    at_lower = (spend <= bounds.lower + slack) & ~bounds.locked
    at_upper = (spend >= bounds.upper - slack) & ~bounds.locked
    current_hdi, optimised_hdi = hdi(current.T), hdi(optimised.T)  # (C, 2)
    channels = pd.DataFrame(
        {
            "channel": list(export.channel_names),
            "current_spend": bounds.reference,
            "optimised_spend": spend,
            "share": plan,
            "lower": bounds.lower,
            "upper": bounds.upper,
            "bound_hit": np.where(at_lower, "lower", np.where(at_upper, "upper", "none")),
            "locked": bounds.locked,
            "current_response": current.mean(0),
            "current_response_hdi_low": current_hdi[:, 0],
            "current_response_hdi_high": current_hdi[:, 1],
            "optimised_response": optimised.mean(0),
            "optimised_response_hdi_low": optimised_hdi[:, 0],
            "optimised_response_hdi_high": optimised_hdi[:, 1],
            "marginal_return": problem.model.marginal(problem.weekly(plan)).mean(0),
        }
    )
    return AllocationResult(
        budget=spec.budget,
        horizon_weeks=spec.horizon_weeks,
        objective=spec.objective,
        channels=channels,
        current_draws=current.sum(1),
        optimised_draws=optimised.sum(1),
        objective_value=problem.value(plan),
        ga_value=ga_value,
        referee_value=referee_value,
        gap=_shortfall(ga_value, referee_value),
        winner=winner,
        marginal_return=problem.marginal_return(plan),
        runtime_s=time.perf_counter() - started,
    )


def _models(export: ParameterExport) -> tuple[ResponseModel, ResponseModel]:
    model = ResponseModel.from_export(export)
    return model, model.astype(np.float32)


@_SERIAL_BLAS
def allocate(export: ParameterExport, spec: AllocationSpec) -> AllocationResult:
    """Optimise the split of ``spec.budget`` across channels; same inputs, same result."""
    return _allocate(export, spec, *_models(export))


@dataclass(frozen=True)
class ScenarioResult:
    """Several budgets: one allocation each, a comparison table and a response curve."""

    results: tuple[AllocationResult, ...]
    table: pd.DataFrame  # one row per requested budget; "main" flags the main plan's row
    curve: pd.DataFrame  # budget grid: optimised expected response and marginal return
    runtime_s: float
    main: int = 0  # index of the main plan in results and table

    @property
    def main_result(self) -> AllocationResult:
        return self.results[self.main]

    def to_document(self) -> dict[str, Any]:
        return {
            "main_scenario": self.main,
            "table": _records(self.table),
            "curve": _records(self.curve),
            "scenarios": [r.to_document() for r in self.results],
            "runtime_s": self.runtime_s,
        }


def _scenario_row(result: AllocationResult) -> dict[str, Any]:
    totals = result.totals()
    return {
        "budget": result.budget,
        "current_response": totals["current_response"],
        "optimised_response": totals["optimised_response"],
        "optimised_hdi_low": totals["optimised_response_hdi"][0],
        "optimised_hdi_high": totals["optimised_response_hdi"][1],
        "uplift_mean": totals["uplift_mean"],
        "uplift_hdi_low": totals["uplift_hdi"][0],
        "uplift_hdi_high": totals["uplift_hdi"][1],
        "p_uplift_positive": totals["p_uplift_positive"],
        "marginal_return": result.marginal_return,
        "winner": result.winner,
        "gap": result.gap,
        "runtime_s": result.runtime_s,
    }


def _response_curve(
    export: ParameterExport,
    spec: AllocationSpec,
    budgets: np.ndarray,
    model: ResponseModel,
    fast: ResponseModel,
) -> pd.DataFrame:
    rows, shares = [], None
    for budget in np.sort(np.asarray(budgets, dtype=float)):
        try:
            problem, bounds = _problem(export, replace(spec, budget=float(budget)), model, fast)
        except AllocationError:
            continue
        start = bounds.reference / budget if shares is None else shares
        shares = _slsqp(problem, problem.repair(start))
        rows.append(
            {
                "budget": float(budget),
                "current_response": problem.expected_response(bounds.reference / budget),
                "optimised_response": problem.expected_response(shares),
                "marginal_return": problem.marginal_return(shares),
            }
        )
    return pd.DataFrame(
        rows, columns=["budget", "current_response", "optimised_response", "marginal_return"]
    )


@_SERIAL_BLAS
def response_curve(
    export: ParameterExport, spec: AllocationSpec, budgets: Sequence[float]
) -> pd.DataFrame:
    """Optimised expected response and marginal return along a grid of budgets.

    Cheap by design: one SLSQP run per budget, warm-started from the previous budget's shares.
    Budgets that the explicit bounds make infeasible are left out.
    """
    return _response_curve(export, spec, np.asarray(budgets), *_models(export))


@_SERIAL_BLAS
def allocate_scenarios(
    export: ParameterExport,
    spec: AllocationSpec,
    budgets: Sequence[float],
    curve_points: int = 21,
    main: int = 0,
) -> ScenarioResult:
    """Allocate each budget (GA + referee) and trace the response curve from half the smallest
    to 1.5 times the largest budget; ``budgets[main]`` is the main plan."""
    if len(budgets) == 0:
        raise AllocationError("budgets: expected at least one scenario budget")
    if not 0 <= main < len(budgets):
        raise AllocationError(f"main: expected an index into the {len(budgets)} budgets")
    started = time.perf_counter()
    models = _models(export)
    results = tuple(_allocate(export, replace(spec, budget=float(b)), *models) for b in budgets)
    grid = np.linspace(0.5 * min(budgets), 1.5 * max(budgets), curve_points)
    return ScenarioResult(
        results=results,
        table=pd.DataFrame([_scenario_row(r) for r in results]).assign(
            main=[i == main for i in range(len(results))]
        ),
        curve=_response_curve(export, spec, grid, *models),
        runtime_s=time.perf_counter() - started,
        main=main,
    )
