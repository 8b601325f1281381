"""Numbers of the attribution-scoped report: headline figures from posterior draws, and tables.

Every number the report shows is rounded once here (:func:`num`) and shown by one function
(:func:`display`), so the HTML, CSV and JSON outputs carry exactly the same figures. Fractions
(shares, improvements, probabilities) are stored as fractions and shown as percentages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from conversionflow_dagster.core.errors import ContractError
from conversionflow_dagster.core.experiments.customer_value import DAYS_PER_MONTH
from conversionflow_dagster.core.experiments.customer_value import (
    TABLE_COLUMNS as CUSTOMER_VALUE_COLUMNS,
)
from conversionflow_dagster.core.model.priors import PRIORS, parameter_text
from conversionflow_dagster.core.stats import hdi

Target = Literal["conversions", "revenue"]
DataKind = Literal["journey", "panel"]
DATA_NOUNS: dict[str, str] = {"journey": "journey data", "panel": "weekly panel"}
Kind = Literal[
    "money",
    "unit_money",
    "count",
    "percent",
    "percent_fine",
    "ratio",
    "pvalue",
    "fixed3",
    "fixed1",
    "integer",
]

ALLOCATION_COLUMNS = (
    "channel",
    "actual_current_spend",  # what the channel spends now over the horizon
    "current_spend",  # the current mix scaled to the plan's budget (what the plan is compared to)
    "optimised_spend",
    "current_share",
    "optimised_share",
    "lower_bound",
    "upper_bound",
    "bound_hit",
    "locked",
    "current_response_mean",
    "optimised_response_mean",
    "optimised_response_hdi_low",
    "optimised_response_hdi_high",
)
SCENARIO_COLUMNS = (
    "budget",
    "optimised_response_mean",
    "optimised_response_hdi_low",
    "optimised_response_hdi_high",
    "uplift_mean",
    "p_uplift_positive",
    "marginal_return",
    "main",  # True on the main plan's row only
)
INTERVAL_COLUMNS = ("mean", "hdi_low", "hdi_high")
ROAS_COLUMNS = ("channel", *INTERVAL_COLUMNS)
CURVE_COLUMNS = ("spend", *INTERVAL_COLUMNS)
PPC_COLUMNS = ("observed", *INTERVAL_COLUMNS)
STABILITY_COLUMNS = ("as_of_month", "channel", "parameter", *INTERVAL_COLUMNS)
LIFT_TEST_COLUMNS = (  # as analyse_lift_tests writes them; an optional bool "calibrated" is shown
    "test_id",
    "channel",
    "start",
    "end",
    "test_rate",
    "control_rate",
    "absolute_lift",
    "relative_lift",
    "chi_square",
    "p_value",
    "significant_90",
    "significant_95",
    "significant_99",
    "posterior_lift_mean",
    "posterior_lift_hdi_low",
    "posterior_lift_hdi_high",
    "p_test_better",
    "incremental_conversions",
    "spend_change",
)
SIGNIFICANCE_LEVELS = (99, 95, 90)  # highest first
CURRENT_MIX_LABEL = "Current mix at this budget"


@dataclass(frozen=True, kw_only=True, eq=False)
class ReportData:
    """Everything the report shows.

    Spend figures in ``allocation`` and ``scenarios`` are money over the horizon and response
    figures are target units over the horizon; ``response_curves`` are weekly. The modelled
    outcome covers only the attributable share of sales, which is why the share is required.
    ``allocation`` has the actual current spend and the current mix scaled to the plan's budget
    (they differ whenever the budget is not today's spend); ``objective`` is what the optimiser
    maximised.

    ``lift_tests`` (one row per campaign lift test) and ``customer_value`` (one row per paid
    channel, value over ``customer_value_horizon_days`` after acquisition) are optional; the
    report leaves their sections out when they are None.
    """

    project: str
    generated_at: str
    window_start: str
    window_end: str
    n_weeks: int
    target: Target
    attributable_share: float
    horizon_weeks: int
    allocation: pd.DataFrame
    current_outcome_draws: np.ndarray
    uplift_draws: np.ndarray
    scenarios: pd.DataFrame
    diagnostics: Mapping[str, float | bool | None]
    response_curves: Mapping[str, pd.DataFrame]
    contributions: pd.DataFrame
    ppc: pd.DataFrame
    roas: pd.DataFrame
    stability: pd.DataFrame | None = None
    lift_tests: pd.DataFrame | None = None
    customer_value: pd.DataFrame | None = None
    customer_value_horizon_days: int | None = None
    assumptions: Sequence[str] = ()
    source_files: Sequence[str] = ()
    currency: str = ""
    data_kind: DataKind = "journey"  # what the model saw: a journey log or a weekly panel
    min_uplift_probability: float = 0.9  # below this P(uplift > 0) a plan is not recommended
    objective: str = "mean"  # the allocation's objective (optimisation.objective)
    # The priors the fit used (the trace's ``priors`` attribute: site -> distribution,
    # parameters, source); None for a trace written before it was recorded.
    priors: Mapping[str, Mapping[str, Any]] | None = None
    # How the trace was sampled (NUTS settings, convergence ladder); None when not recorded.
    sampling: str | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def budget(self) -> float:
        """The plan's budget: what the optimised allocation spends over the horizon."""
        return float(self.allocation["optimised_spend"].sum())

    @property
    def current_budget(self) -> float:
        """What the channels actually spend now over the horizon."""
        return float(self.allocation["actual_current_spend"].sum())

    @property
    def scenario_budgets(self) -> tuple[float, ...]:
        """The budgets of the scenario table, in its order."""
        return tuple(float(b) for b in self.scenarios["budget"])

    @property
    def p_uplift_positive(self) -> float:
        """Share of posterior draws in which the plan beats the current mix."""
        return float(np.mean(np.asarray(self.uplift_draws) > 0))

    @property
    def recommended(self) -> bool:
        return self.p_uplift_positive >= self.min_uplift_probability


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ContractError(f"report data: {name} lacks columns {missing}")


def _validate(data: ReportData) -> None:
    """Refuse inputs the headline cannot be computed from, naming the field."""
    if data.target not in ("conversions", "revenue"):
        raise ContractError(
            f"report data: target must be conversions or revenue, not {data.target!r}"
        )
    if not 0 < data.attributable_share <= 1:
        raise ContractError(
            f"report data: attributable_share must be in (0, 1], got {data.attributable_share}"
        )
    if data.horizon_weeks < 1:
        raise ContractError(f"report data: horizon_weeks must be >= 1, got {data.horizon_weeks}")
    current = np.asarray(data.current_outcome_draws, dtype=float)
    uplift = np.asarray(data.uplift_draws, dtype=float)
    if current.ndim != 1 or current.shape != uplift.shape or current.size == 0:
        raise ContractError(
            "report data: current_outcome_draws and uplift_draws must be 1-D arrays of equal, "
            f"non-zero length; got shapes {current.shape} and {uplift.shape}"
        )
    if not (np.all(np.isfinite(current)) and np.all(np.isfinite(uplift))):
        raise ContractError("report data: outcome and uplift draws must be finite")
    if np.any(current <= 0):
        raise ContractError("report data: current_outcome_draws must be positive in every draw")
    if "passed" not in data.diagnostics:
        raise ContractError("report data: diagnostics lacks the 'passed' flag")
    _require(data.allocation, ALLOCATION_COLUMNS, "allocation")
    _require(data.scenarios, SCENARIO_COLUMNS, "scenarios")
    _require(data.roas, ROAS_COLUMNS, "roas")
    _require(data.ppc, PPC_COLUMNS, "ppc")
    for channel, curve in data.response_curves.items():
        _require(curve, CURVE_COLUMNS, f"response curve of {channel!r}")
    if data.stability is not None:
        _require(data.stability, STABILITY_COLUMNS, "stability")
    if data.lift_tests is not None:
        _require(data.lift_tests, LIFT_TEST_COLUMNS, "lift_tests")
    if data.customer_value is not None:
        _require(data.customer_value, CUSTOMER_VALUE_COLUMNS, "customer_value")
    horizon = data.customer_value_horizon_days
    if horizon is not None and not horizon >= 1:
        raise ContractError(f"report data: customer_value_horizon_days must be >= 1, got {horizon}")


# --- headline figures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """Posterior mean, 94% HDI and probability of being positive of one quantity."""

    mean: float
    hdi_low: float
    hdi_high: float
    p_positive: float


def summarise(draws: np.ndarray) -> Estimate:
    """Mean, HDI and P(> 0) of a vector of draws."""
    draws = np.asarray(draws, dtype=float)
    low, high = hdi(draws)
    return Estimate(float(draws.mean()), low, high, float(np.mean(draws > 0)))


@dataclass(frozen=True)
class Headline:
    """The headline: the modelled improvement, and the same improvement scoped to total sales."""

    current_outcome: Estimate
    absolute_uplift: Estimate
    raw_improvement: Estimate
    business_claim: Estimate


def headline_figures(
    current_outcome_draws: np.ndarray, uplift_draws: np.ndarray, attributable_share: float
) -> Headline:
    """Relative uplift per draw on the modelled outcome, and that uplift times the share.

    The model only sees the attributable share of sales, so the claim on total sales is the
    modelled relative change scaled by the share (the rest of sales is assumed unchanged). A
    positive factor scales mean and HDI alike and leaves P(> 0) as it is.
    """
    current = np.asarray(current_outcome_draws, dtype=float)
    uplift = np.asarray(uplift_draws, dtype=float)
    raw = summarise(uplift / current)
    business = Estimate(
        raw.mean * attributable_share,
        raw.hdi_low * attributable_share,
        raw.hdi_high * attributable_share,
        raw.p_positive,
    )
    return Headline(summarise(current), summarise(uplift), raw, business)


# --- rounding and display -----------------------------------------------------------------

_DECIMALS: dict[str, int] = {
    "money": 0,
    "unit_money": 2,
    "count": 1,
    "percent": 3,
    "percent_fine": 4,
    "fixed3": 3,
    "fixed1": 1,
    "integer": 0,
}
MISSING = "—"


@dataclass(frozen=True)
class Num:
    """A number rounded for the report, and how to show it."""

    value: float | int | None
    kind: Kind
    signed: bool = False


def _decimals(x: float, kind: Kind) -> int:
    """Decimal places of ``kind``; ``ratio`` and ``pvalue`` keep three significant figures,
    and counts of a hundred or more are whole (a tenth of a conversion in millions is noise)."""
    if kind in ("ratio", "pvalue"):
        return 2 - math.floor(math.log10(abs(x))) if x else 0
    if kind == "count" and abs(x) >= 100:
        return 0
    if kind == "money" and abs(x) < 100:  # a budget of 4.37 (spend in thousands) keeps cents
        return 2
    return _DECIMALS[kind]


def num(x: float | None, kind: Kind, *, signed: bool = False) -> Num:
    """Round ``x`` by the rule of ``kind``; missing or non-finite values become None."""
    if x is None or not math.isfinite(float(x)):
        return Num(None, kind, signed)
    x = float(x)
    if kind == "integer":
        return Num(round(x), kind, signed)
    return Num(round(x, _decimals(x, kind)) + 0.0, kind, signed)  # + 0.0 drops a -0.0


def display(n: Num, currency: str = "") -> str:
    """The text the HTML shows for ``n``: separators, sign, % or currency, never new digits."""
    if n.value is None:
        return MISSING
    sign = "-" if n.value < 0 else "+" if n.signed and n.value > 0 else ""
    size = abs(n.value)
    if n.kind in ("percent", "percent_fine"):
        return f"{sign}{size * 100:,.{_DECIMALS[n.kind] - 2}f}%"
    if n.kind in ("money", "unit_money"):
        return f"{sign}{currency}{size:,.{_decimals(size, n.kind)}f}"
    if n.kind == "pvalue" and 0 < size < 0.001:  # 1.23e-05: as many digits as were kept
        return f"{sign}{size:.2e}"
    return f"{sign}{size:,.{max(_decimals(size, n.kind), 0)}f}"


def cell_text(cell: Num | str | bool | None, currency: str = "") -> str:
    """The text a table cell shows (numbers by :func:`display`, flags as yes or no)."""
    if isinstance(cell, Num):
        return display(cell, currency)
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    return "" if cell is None else str(cell)


def units_kind(target: Target) -> Kind:
    """Revenue is money; conversions are counts."""
    return "money" if target == "revenue" else "count"


# --- tables -------------------------------------------------------------------------------

Cell = Num | str | bool | None


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    dates: bool = False  # a date range: the HTML keeps each date on one line


@dataclass(frozen=True)
class Table:
    """A report table: the HTML shows it, CSV and JSON store its cell values."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[dict[str, Cell], ...]
    row_keys: tuple[str, ...] | None = None

    def row(self, key: str) -> dict[str, Cell]:
        """The row with ``key`` (tables with row keys only)."""
        return self.rows[(self.row_keys or ()).index(key)]


def plain(cell: Cell) -> str | float | int | bool | None:
    """The stored value of a cell (CSV and JSON)."""
    return cell.value if isinstance(cell, Num) else cell


def _columns(*specs: tuple[str, str] | tuple[str, str, bool]) -> tuple[Column, ...]:
    return tuple(Column(*spec) for spec in specs)


def headline_table(headline: Headline, target: Target) -> Table:
    """The four headline quantities with their intervals, one row each."""
    units = units_kind(target)
    specs = (
        ("raw_improvement", "Improvement on modelled sales", headline.raw_improvement, "percent"),
        (
            "business_claim",
            "Change in total sales (scoped)",
            headline.business_claim,
            "percent_fine",
        ),
        (
            "absolute_uplift",
            f"Uplift in {target} over the horizon",
            headline.absolute_uplift,
            units,
        ),
        (
            "current_outcome",
            f"{target.capitalize()} in the last horizon of data (the base of the % figures)",
            headline.current_outcome,
            units,
        ),
    )
    rows = []
    for key, label, estimate, kind in specs:
        signed = key != "current_outcome"
        spread = estimate.hdi_low != estimate.hdi_high  # an observed total has no interval
        rows.append(
            {
                "figure": label,
                "mean": num(estimate.mean, kind, signed=signed),
                "hdi_low": num(estimate.hdi_low if spread else None, kind, signed=signed),
                "hdi_high": num(estimate.hdi_high if spread else None, kind, signed=signed),
                "p_positive": num(estimate.p_positive if signed else None, "percent"),
            }
        )
    return Table(
        "headline",
        "Headline figures",
        _columns(
            ("figure", "Figure"),
            ("mean", "Mean"),
            ("hdi_low", "94% HDI low"),
            ("hdi_high", "94% HDI high"),
            ("p_positive", "P(> 0)"),
        ),
        tuple(rows),
        tuple(key for key, *_ in specs),
    )


def constraint_text(bound_hit: str, locked: bool) -> str:
    """Why a channel's optimised spend is where it is, when a constraint decided it."""
    if locked:
        return "locked"
    return {"lower": "lower bound", "upper": "upper bound"}.get(str(bound_hit), "")


def allocation_table(allocation: pd.DataFrame, target: Target) -> Table:
    """Current against optimised plan per channel, over the horizon.

    The plan is compared with the current mix scaled to its budget (same total, so the change
    is a re-allocation); the actual current spend is shown beside it, as a budget that differs
    from today's spend moves every channel.
    """
    units = units_kind(target)
    rows = []
    for r in allocation.itertuples(index=False):
        change = r.optimised_spend - r.current_spend
        change_pct = change / r.current_spend if r.current_spend > 0 else None
        rows.append(
            {
                "channel": str(r.channel),
                "actual_current_spend": num(r.actual_current_spend, "money"),
                "current_spend": num(r.current_spend, "money"),
                "optimised_spend": num(r.optimised_spend, "money"),
                "change": num(change, "money", signed=True),
                "change_pct": num(change_pct, "percent", signed=True),
                "current_share": num(r.current_share, "percent"),
                "optimised_share": num(r.optimised_share, "percent"),
                "current_response": num(r.current_response_mean, units),
                "optimised_response": num(r.optimised_response_mean, units),
                "optimised_response_hdi_low": num(r.optimised_response_hdi_low, units),
                "optimised_response_hdi_high": num(r.optimised_response_hdi_high, units),
                "constraint": constraint_text(r.bound_hit, bool(r.locked)),
            }
        )
    return Table(
        "allocation",
        "Budget allocation over the horizon",
        _columns(
            ("channel", "Channel"),
            ("actual_current_spend", "Current spend"),
            ("current_spend", CURRENT_MIX_LABEL),
            ("optimised_spend", "Optimised spend"),
            ("change", "Change"),
            ("change_pct", "Change %"),
            ("current_share", "Share now"),
            ("optimised_share", "Share opt."),
            ("current_response", f"{target.capitalize()} now"),
            ("optimised_response", f"{target.capitalize()} opt."),
            ("optimised_response_hdi_low", "94% HDI low"),
            ("optimised_response_hdi_high", "94% HDI high"),
            ("constraint", "Constraint"),
        ),
        tuple(rows),
    )


def best_scenarios(uplift_mean: pd.Series) -> np.ndarray:
    """True where re-allocating gains most over the current mix: one row per distinct optimum
    (rows whose expected uplift ties the largest to 1e-9, relative, are each marked)."""
    values = uplift_mean.to_numpy(dtype=float)
    top = np.nanmax(values)
    return np.abs(values - top) <= 1e-9 * max(abs(top), 1.0)


def scenario_table(scenarios: pd.DataFrame, target: Target) -> Table:
    """The optimised outcome at each alternative total budget."""
    units = units_kind(target)
    best = best_scenarios(scenarios["uplift_mean"])
    rows = tuple(
        {
            "budget": num(r.budget, "money"),
            "optimised_response_mean": num(r.optimised_response_mean, units),
            "optimised_response_hdi_low": num(r.optimised_response_hdi_low, units),
            "optimised_response_hdi_high": num(r.optimised_response_hdi_high, units),
            "uplift_mean": num(r.uplift_mean, units, signed=True),
            "p_uplift_positive": num(r.p_uplift_positive, "percent"),
            "marginal_return": num(r.marginal_return, "ratio"),
            "main": "main plan" if r.main else "",
            "best": bool(is_best),
        }
        for r, is_best in zip(scenarios.itertuples(index=False), best, strict=True)
    )
    return Table(
        "scenarios",
        "Budget scenarios",
        _columns(
            ("budget", "Total budget"),
            ("optimised_response_mean", f"Expected {target}"),
            ("optimised_response_hdi_low", "94% HDI low"),
            ("optimised_response_hdi_high", "94% HDI high"),
            ("uplift_mean", "Uplift vs current plan"),
            ("p_uplift_positive", "P(uplift > 0)"),
            ("marginal_return", "Marginal return"),
            ("main", "Plan"),
            ("best", "Best"),
        ),
        rows,
    )


def _diagnostic_specs(target: Target) -> tuple[tuple[str, str, Kind, str], ...]:
    return (
        (
            "max_r_hat",
            "R-hat (max)",
            "fixed3",
            "Chains agree when close to 1.00 (default gate 1.01)",
        ),
        ("min_ess_bulk", "ESS bulk (min)", "integer", "Independent draws behind the means"),
        ("min_ess_tail", "ESS tail (min)", "integer", "Independent draws behind interval ends"),
        ("divergences", "Divergent transitions", "integer", "Should be 0; any questions the fit"),
        ("elpd_loo", "ELPD-LOO", "fixed1", "Leave-one-out predictive fit; higher is better"),
        ("elpd_loo_se", "ELPD-LOO standard error", "fixed1", "Uncertainty of ELPD-LOO"),
        ("r2", "In-sample R²", "fixed3", "Share of weekly variation the model explains"),
        ("mape", "In-sample MAPE", "percent", "Mean absolute percentage error, fitted weeks"),
        ("holdout_crps", "Hold-out CRPS", "ratio", f"Forecast error in {target}; lower is better"),
        (
            "holdout_mape",
            "Hold-out MAPE",
            "percent",
            "Mean absolute percentage error, unseen weeks",
        ),
    )


def diagnostics_table(diagnostics: Mapping[str, float | bool | None], target: Target) -> Table:
    """Convergence and fit checks, one row each; absent checks show as missing."""
    specs = _diagnostic_specs(target)
    rows = tuple(
        {"check": label, "value": num(diagnostics.get(key), kind), "guide": guide}
        for key, label, kind, guide in specs
    )
    return Table(
        "diagnostics",
        "Model diagnostics",
        _columns(("check", "Check"), ("value", "Value"), ("guide", "How to read it")),
        rows,
        tuple(key for key, *_ in specs),
    )


def priors_table(priors: Mapping[str, Mapping[str, Any]]) -> Table:
    """The priors behind the posterior, one row per site: what a reader needs to judge how much
    the figures lean on assumptions rather than data (docs/priors.md explains each)."""
    rows = tuple(
        {
            "prior": name,
            "distribution": str(prior["distribution"]),
            "parameters": parameter_text(prior["parameters"]),
            "source": str(prior["source"]),
            "meaning": PRIORS[name].meaning if name in PRIORS else "",
        }
        for name, prior in priors.items()
    )
    return Table(
        "priors",
        "Priors",
        _columns(
            ("prior", "Prior"),
            ("distribution", "Distribution"),
            ("parameters", "Parameters"),
            ("source", "Set by"),
            ("meaning", "Meaning on the scaled data"),
        ),
        rows,
        tuple(priors),
    )


def roas_table(roas: pd.DataFrame, target: Target) -> Table:
    """Return on ad spend per channel (target units per unit of money)."""
    rows = tuple(
        {
            "channel": str(r.channel),
            "mean": num(r.mean, "ratio"),
            "hdi_low": num(r.hdi_low, "ratio"),
            "hdi_high": num(r.hdi_high, "ratio"),
        }
        for r in roas.itertuples(index=False)
    )
    unit = "Revenue" if target == "revenue" else "Conversions"
    return Table(
        "roas",
        "Return on ad spend",
        _columns(
            ("channel", "Channel"),
            ("mean", f"{unit} per unit of spend"),
            ("hdi_low", "94% HDI low"),
            ("hdi_high", "94% HDI high"),
        ),
        rows,
    )


def _date_text(value: object) -> str:
    return MISSING if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def significance_text(row: object) -> str:
    """The highest confidence level at which a lift test is significant, or 'not significant'."""
    for level in SIGNIFICANCE_LEVELS:
        if bool(getattr(row, f"significant_{level}")):
            return f"{level}%"
    return "not significant"


def _optional_bool(value: object) -> bool | None:
    return None if pd.isna(value) else bool(value)


def lift_test_table(lift_tests: pd.DataFrame) -> Table:
    """One row per campaign lift test: rates, chi-square significance and the Bayesian lift."""
    calibrated = "calibrated" in lift_tests.columns
    rows = []
    for r in lift_tests.itertuples(index=False):
        row: dict[str, Cell] = {
            "test": str(r.test_id),
            "channel": str(r.channel),
            "period": f"{_date_text(r.start)} to {_date_text(r.end)}",
            "test_rate": num(r.test_rate, "percent_fine"),
            "control_rate": num(r.control_rate, "percent_fine"),
            "relative_lift": num(r.relative_lift, "percent", signed=True),
            "p_value": num(r.p_value, "pvalue"),
            "significant_at": significance_text(r),
            "posterior_lift_mean": num(r.posterior_lift_mean, "percent", signed=True),
            "posterior_lift_hdi_low": num(r.posterior_lift_hdi_low, "percent", signed=True),
            "posterior_lift_hdi_high": num(r.posterior_lift_hdi_high, "percent", signed=True),
            "p_test_better": num(r.p_test_better, "percent"),
            "incremental_conversions": num(r.incremental_conversions, "count", signed=True),
        }
        if calibrated:
            row["calibrated"] = _optional_bool(r.calibrated)
        rows.append(row)
    columns = [
        ("test", "Test"),
        ("channel", "Channel"),
        ("period", "Period", True),
        ("test_rate", "Test rate"),
        ("control_rate", "Control rate"),
        ("relative_lift", "Relative lift"),
        ("p_value", "Chi-square p-value"),
        ("significant_at", "Significant at"),
        ("posterior_lift_mean", "Posterior lift"),
        ("posterior_lift_hdi_low", "94% HDI low"),
        ("posterior_lift_hdi_high", "94% HDI high"),
        ("p_test_better", "P(test > control)"),
        ("incremental_conversions", "Incremental conversions"),
    ]
    if calibrated:
        columns.append(("calibrated", "Used in fit"))
    return Table("lift_tests", "Campaign lift tests", _columns(*columns), tuple(rows))


def months_text(days: int) -> str:
    """A horizon in days as months, to a tenth: 365 -> '12', 180 -> '5.9'."""
    return f"{round(days / DAYS_PER_MONTH, 1):g}"


def _finite(x: object) -> bool:
    return x is not None and not pd.isna(x) and math.isfinite(float(x))


def payback_cell(months: float, horizon_days: int | None, cac: float = 1.0) -> Cell:
    """Months to pay back the CAC; without a number, not within the horizon (or missing when
    there is no CAC to pay back: no spend or no customers)."""
    if _finite(months):
        return num(months, "fixed1")
    if not _finite(cac):
        return None
    if horizon_days is None:
        return "not within the horizon"
    return f"not within {months_text(horizon_days)} months"


def customer_value_table(customer_value: pd.DataFrame, horizon_days: int | None) -> Table:
    """Per paid channel: LTV, CAC and their ratio with intervals, quality band and payback."""
    rows = tuple(
        {
            "channel": str(r.channel),
            "customers": num(r.customers, "integer"),
            "spend": num(r.spend, "money"),
            "ltv_mean": num(r.ltv_mean, "unit_money"),
            "ltv_low": num(r.ltv_low, "unit_money"),
            "ltv_high": num(r.ltv_high, "unit_money"),
            "cac": num(r.cac, "unit_money"),
            "cac_low": num(r.cac_low, "unit_money"),
            "cac_high": num(r.cac_high, "unit_money"),
            "ltv_cac": num(r.ltv_cac, "ratio"),
            "ltv_cac_low": num(r.ltv_cac_low, "ratio"),
            "ltv_cac_high": num(r.ltv_cac_high, "ratio"),
            "quality_band": None if pd.isna(r.quality_band) else str(r.quality_band),
            "payback_months": payback_cell(r.payback_months, horizon_days, r.cac),
        }
        for r in customer_value.itertuples(index=False)
    )
    return Table(
        "customer_value",
        "Customer value (LTV:CAC)",
        _columns(
            ("channel", "Channel"),
            ("customers", "Customers"),
            ("spend", "Spend"),
            ("ltv_mean", "LTV"),
            ("ltv_low", "LTV low"),
            ("ltv_high", "LTV high"),
            ("cac", "CAC"),
            ("cac_low", "CAC low"),
            ("cac_high", "CAC high"),
            ("ltv_cac", "LTV:CAC"),
            ("ltv_cac_low", "LTV:CAC low"),
            ("ltv_cac_high", "LTV:CAC high"),
            ("quality_band", "Quality band"),
            ("payback_months", "Payback (months)"),
        ),
        rows,
    )


@dataclass(frozen=True)
class ReportTables:
    """All tables of one report; the optional ones are None when their data is absent."""

    headline: Table
    allocation: Table
    scenarios: Table
    diagnostics: Table
    roas: Table
    lift_tests: Table | None = None
    customer_value: Table | None = None
    priors: Table | None = None

    @property
    def all(self) -> tuple[Table, ...]:
        optional = (self.lift_tests, self.customer_value, self.priors)
        return (
            self.headline,
            self.allocation,
            self.scenarios,
            self.diagnostics,
            self.roas,
            *(table for table in optional if table is not None),
        )


def build_tables(data: ReportData) -> ReportTables:
    """Every table of the report from its data."""
    headline = headline_figures(
        data.current_outcome_draws, data.uplift_draws, data.attributable_share
    )
    return ReportTables(
        headline=headline_table(headline, data.target),
        allocation=allocation_table(data.allocation, data.target),
        scenarios=scenario_table(data.scenarios, data.target),
        diagnostics=diagnostics_table(data.diagnostics, data.target),
        roas=roas_table(data.roas, data.target),
        lift_tests=None if data.lift_tests is None else lift_test_table(data.lift_tests),
        customer_value=(
            None
            if data.customer_value is None
            else customer_value_table(data.customer_value, data.customer_value_horizon_days)
        ),
        priors=None if data.priors is None else priors_table(data.priors),
    )


# --- running text -------------------------------------------------------------------------


def _money(x: float, currency: str) -> str:
    return display(num(x, "money"), currency)


def _name_list(changes: pd.Series, currency: str, limit: int = 3) -> str:
    """'a (+€1,000), b (+€500) and 2 more', largest moves first."""
    ordered = changes.reindex(changes.abs().sort_values(ascending=False).index)
    parts = [
        f"{name} ({display(num(value, 'money', signed=True), currency)})"
        for name, value in ordered.iloc[:limit].items()
    ]
    if len(ordered) > limit:
        parts.append(f"{len(ordered) - limit} more")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _shift_sentence(change: pd.Series, budget: float, horizon_weeks: int, currency: str) -> str:
    """Where the money goes: 'Move X (y% of the budget) from a, b to c'."""
    gains, cuts = change[change >= 0.5], change[change <= -0.5]
    moved = max(float(gains.sum()), -float(cuts.sum()))
    if moved < 0.005 * budget:
        return (
            "The current plan is already close to the optimum: less than 0.5% of the budget moves."
        )
    share = display(num(moved / budget, "percent"))
    amount = f"{_money(moved, currency)} ({share} of the {horizon_weeks}-week budget)"
    if cuts.empty:
        return f"Add {amount} to {_name_list(gains, currency)}."
    if gains.empty:
        return f"Cut {amount} from {_name_list(cuts, currency)}."
    return f"Move {amount} from {_name_list(cuts, currency)} to {_name_list(gains, currency)}."


def margin_sentence(data: ReportData) -> str:
    """For a revenue target whose plan's marginal return is below 1: the budget, not only its
    mix, is in question (the last unit of money spent brings back less than it costs). Empty
    otherwise, and for conversions, whose worth per unit the report does not know."""
    main = data.scenarios[data.scenarios["main"].astype(bool)]
    if data.target != "revenue" or main.empty:
        return ""
    margin = float(main["marginal_return"].iloc[0])
    if not np.isfinite(margin) or margin >= 1:
        return ""
    back = f"{data.currency}{display(num(margin, 'ratio'))}"
    last = f"{data.currency}1" if data.currency else "unit"
    return (
        f" At this budget the last {last} of spend brings back about {back} of revenue "
        "(the marginal return): less than it costs. The plan gets more revenue from the same "
        "money, but a smaller budget would likely save more than it loses; see the budget "
        "scenarios before settling the budget."
    )


def recommendation(data: ReportData) -> str:
    """The executive summary's recommendation: the shift, or why it is not recommended, and
    whether the budget's last unit pays back (:func:`margin_sentence`)."""
    text = recommendation_text(data.allocation, data.horizon_weeks, data.currency)
    text += margin_sentence(data)
    if data.recommended:
        return text
    p = display(num(data.p_uplift_positive, "percent"))
    needed = display(num(data.min_uplift_probability, "percent"))
    return (
        f"Not recommended \u2014 uncertain: the optimised plan beats the current one in only {p} "
        f"of posterior draws, below the {needed} this report requires "
        "(report.min_uplift_probability). Keep the current plan, or test the largest moves "
        f"first (a lift test) before acting. The model's best guess would be: {text}"
    )


def recommendation_text(allocation: pd.DataFrame, horizon_weeks: int, currency: str) -> str:
    """The recommended shift in a sentence or two, for the executive summary."""
    change = pd.Series(
        (allocation["optimised_spend"] - allocation["current_spend"]).to_numpy(),
        index=allocation["channel"].astype(str),
    )
    current_total = float(allocation["current_spend"].sum())
    optimised_total = float(allocation["optimised_spend"].sum())
    sentences = [_shift_sentence(change, current_total, horizon_weeks, currency)]
    if abs(optimised_total - current_total) >= 0.5:
        sentences.append(
            f"The optimised plan spends {_money(optimised_total, currency)} in total, against "
            f"{_money(current_total, currency)} in the current plan."
        )
    held = [
        f"{row.channel} ({constraint_text(row.bound_hit, bool(row.locked))})"
        for row in allocation.itertuples(index=False)
        if constraint_text(row.bound_hit, bool(row.locked))
    ]
    if held:
        sentences.append("Held by constraints: " + ", ".join(held) + ".")
    return " ".join(sentences)


def share_text(attributable_share: float) -> str:
    """The configured share as given (an input, so shown unrounded): 0.05 -> '5%'."""
    return f"{attributable_share * 100:.6g}%"


def scope_note(attributable_share: float, data_kind: DataKind = "journey") -> str:
    """How the business claim is scoped, next to the number."""
    noun = DATA_NOUNS[data_kind]
    if attributable_share >= 1:
        return f"of total sales: the {noun} sees all sales."
    share, rest = share_text(attributable_share), share_text(1 - attributable_share)
    return (
        f"of total sales: the modelled improvement applied to the {share} of sales the {noun} "
        f"sees, assuming that share responds as modelled and the other {rest} is unchanged."
    )


def share_statement(data: ReportData) -> str:
    """What the attributable share means for every projection (the report's scope statement)."""
    share = share_text(data.attributable_share)
    noun = DATA_NOUNS[data.data_kind]
    if data.attributable_share < 1:
        return (
            f"Attributable share: the {noun} sees about {share} of sales. Every projection "
            f"applies to that share only; the change in total sales is the modelled relative "
            f"change times {share}, and the rest of sales is assumed not to respond to the shift."
        )
    return (
        f"Attributable share: the {noun} is taken to hold all sales (100%), so projections "
        "apply to total sales; if it holds only part of them, set report.attributable_share."
    )


def scope_statements(data: ReportData) -> list[str]:
    """Plain-language limits of the figures, then the project's own assumptions."""
    noun = DATA_NOUNS[data.data_kind]
    calibrated = data.lift_tests is not None and bool(
        data.lift_tests.get("calibrated", pd.Series(dtype=bool)).any()
    )
    evidence = (
        "the past, and for the channels with a lift test used in the fit also from that "
        "randomised test. Anything that moved with spend but is not in the data (pricing, "
        "competitors, distribution) can still be mistaken for the effect of an untested channel."
        if calibrated
        else "the past, not from a controlled experiment. Anything that moved with spend but is "
        "not in the data (pricing, competitors, distribution) can be mistaken for a media effect."
    )
    statements = [
        "Observational data: effects are inferred from how spend and sales moved together in "
        + evidence,
        share_statement(data),
        "Steady-state response: the curves describe the lasting effect of holding a weekly "
        "spend level. Because of carry-over, a new plan takes several weeks to reach it, so the "
        "first weeks fall short of the projection.",
        f"Planning horizon: money and response figures are totals over {data.horizon_weeks} "
        f"weeks of constant weekly spend, learned from {data.n_weeks} weeks of data "
        f"({data.window_start} to {data.window_end}). Seasonality and trends after the data "
        "window are not projected.",
        f"What the model cannot see: sales outside the {noun}, creative and targeting "
        "quality, and spend levels far outside those observed, where the curves extrapolate.",
        "Uncertainty: ranges are 94% highest-density credible intervals of the posterior and "
        "P(> 0) is the share of posterior draws with a positive change; both assume the model "
        "is right.",
    ]
    if not data.recommended:
        statements.append(
            "Uncertain recommendation: the optimised plan beats the current one in "
            f"{display(num(data.p_uplift_positive, 'percent'))} of posterior draws, below the "
            f"{display(num(data.min_uplift_probability, 'percent'))} required, so the report "
            "does not recommend acting on it."
        )
    if not data.diagnostics.get("passed"):
        statements.append(
            "The model diagnostics did not pass: the figures are shown for inspection and should "
            "not drive decisions until the fit is repaired."
        )
    return statements + [str(a) for a in data.assumptions]
