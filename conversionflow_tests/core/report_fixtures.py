"""Realistic report inputs from a fixed seed: logistic response curves with posterior draws.

The numbers hang together like a real run (a plan's outcome is the sum of its channels'
responses, draw by draw), so the report can be read and checked, not just rendered. Lift tests
are read by the real analysis from realistic cohort counts, and customer value is built so that
CAC is spend over customers and LTV:CAC and payback follow from LTV and CAC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from conversionflow_dagster.core.experiments.lift_tests import analyse_lift_tests
from conversionflow_dagster.core.report.data import DAYS_PER_MONTH, ReportData, Target

CHANNELS = ("search", "social", "tv", "display", "affiliates", "email")
TARGET_SCALE = 812.4
CUSTOMER_VALUE_HORIZON_DAYS = 365
# (channel position, control rate, true relative lift, cohort size, used in the fit)
LIFT_TEST_SPECS = (
    (0, 0.031, 0.24, 24_000, True),
    (1, 0.022, 0.11, 9_000, True),
    (2, 0.045, 0.02, 3_200, False),
    (3, 0.018, -0.06, 5_000, True),
    (0, 0.029, 0.09, 12_000, False),
)


def _response(spend: np.ndarray, beta: np.ndarray, lam: np.ndarray, scale: np.ndarray):
    """Weekly response per draw and channel, (D, C), to weekly spend (C,) or (D, C)."""
    return TARGET_SCALE * beta * np.tanh(0.5 * lam * spend / scale)


def _interval(draws: np.ndarray, axis: int = 0) -> dict[str, np.ndarray]:
    low, high = np.quantile(draws, [0.03, 0.97], axis=axis)
    return {"mean": draws.mean(axis=axis), "hdi_low": low, "hdi_high": high}


def _optimised(weekly, beta, lam, scale, locked):
    """Budget moved towards higher marginal returns, within 0.5x..1.5x of current spend."""
    slope = (beta * lam / scale * (1 - np.tanh(0.5 * lam * weekly / scale) ** 2)).mean(axis=0)
    factor = np.clip((slope / slope.mean()) ** 0.8, 0.5, 1.5)
    factor[locked] = 1.0
    free = ~locked
    budget = weekly[free].sum()
    for _ in range(20):
        factor[free] *= budget / (weekly[free] * factor[free]).sum()
        factor = np.clip(factor, 0.5, 1.5)
    bound_hit = np.where(
        factor <= 0.5 + 1e-9, "lower", np.where(factor >= 1.5 - 1e-9, "upper", "none")
    )
    bound_hit[locked] = "none"
    return weekly * factor, bound_hit


def lift_test_frame(channels: tuple[str, ...], seed: int = 0) -> pd.DataFrame:
    """Campaign lift tests on the first channels, read by ``analyse_lift_tests``.

    Test ids carry the channel name, so a hostile channel name reaches both columns.
    """
    rng = np.random.default_rng([seed, 1])
    rows = []
    for i, (c, control_rate, lift, size, _) in enumerate(LIFT_TEST_SPECS):
        channel = channels[c % len(channels)]
        start = pd.Timestamp("2024-03-04") + pd.Timedelta(weeks=5 * i)
        control_size = int(size * rng.uniform(0.95, 1.05))
        rows.append(
            {
                "test_id": f"LT-{i + 1:02d} {channel}",
                "channel": channel,
                "start": start,
                "end": start + pd.Timedelta(days=27),
                "test_size": size,
                "test_conversions": rng.binomial(size, control_rate * (1 + lift)),
                "control_size": control_size,
                "control_conversions": rng.binomial(control_size, control_rate),
                "spend_change": round(float(rng.uniform(5_000, 20_000)), -2),
            }
        )
    analysed = analyse_lift_tests(pd.DataFrame(rows), seed=seed, n_draws=20_000)
    analysed["calibrated"] = [spec[-1] for spec in LIFT_TEST_SPECS]
    return analysed


def quality_band(ratio: float) -> str:
    return "below 1: loses money" if ratio < 1 else "1-3: marginal" if ratio < 3 else "3+: healthy"


def customer_value_frame(
    channels: tuple[str, ...],
    spend: np.ndarray,
    horizon_days: int = CUSTOMER_VALUE_HORIZON_DAYS,
    seed: int = 0,
) -> pd.DataFrame:
    """LTV, CAC and LTV:CAC per channel, spanning all three quality bands.

    Value accrues as 1 - exp(-t / tau) over the horizon (tau half the horizon), so payback is
    where the cumulative value reaches the CAC, and never within the horizon when LTV < CAC.
    """
    rng = np.random.default_rng([seed, 2])
    n = len(channels)
    customers = np.maximum(np.round(spend / rng.uniform(25, 140, n)), 1).astype(int)
    cac = spend / customers
    ratio = rng.permutation(np.linspace(0.7, 5.5, n))
    ltv = cac * ratio
    ltv_spread, cac_spread = rng.uniform(0.1, 0.25, n), rng.uniform(0.04, 0.1, n)
    ltv_low, ltv_high = ltv * (1 - ltv_spread), ltv * (1 + ltv_spread)
    cac_low, cac_high = cac * (1 - cac_spread), cac * (1 + cac_spread)
    horizon = horizon_days / DAYS_PER_MONTH
    tau = horizon / 2
    reached = 1 - np.exp(-horizon / tau)
    with np.errstate(invalid="ignore"):
        payback = -tau * np.log(1 - reached / ratio)
    return pd.DataFrame(
        {
            "channel": list(channels),
            "customers": customers,
            "ltv_mean": ltv,
            "ltv_low": ltv_low,
            "ltv_high": ltv_high,
            "spend": spend,
            "cac": cac,
            "cac_low": cac_low,
            "cac_high": cac_high,
            "ltv_cac": ratio,
            "ltv_cac_low": ltv_low / cac_high,
            "ltv_cac_high": ltv_high / cac_low,
            "payback_months": np.where(ratio >= 1, payback, np.nan),
            "quality_band": [quality_band(r) for r in ratio],
        }
    )


def build_report_data(
    seed: int = 0,
    channels: tuple[str, ...] = CHANNELS,
    attributable_share: float = 0.05,
    target: Target = "conversions",
    currency: str = "€",
    n_draws: int = 400,
    n_weeks: int = 52,
    horizon_weeks: int = 13,
    holdout_weeks: int = 8,
    stability_months: int = 3,
    source_files: tuple[str, ...] = ("journeys_2024.csv", "spend_2024.csv"),
    assumptions: tuple[str, ...] = (),
    passed: bool = True,
    lift_tests: bool = False,
    customer_value: bool = False,
    customer_value_horizon_days: int = CUSTOMER_VALUE_HORIZON_DAYS,
    priors: Mapping[str, Mapping[str, Any]] | None = None,
) -> ReportData:
    """A complete, internally consistent ReportData; lift tests and customer value on request.

    The optional frames draw from their own seeded streams, so asking for them leaves every
    other number as it was.
    """
    rng = np.random.default_rng(seed)
    n = len(channels)
    weekly = rng.uniform(6_000, 60_000, n).round(-2)
    scale = weekly * rng.uniform(0.8, 1.2, n)
    beta = rng.uniform(0.03, 0.12, n) * rng.lognormal(0, 0.12, (n_draws, n))
    lam = rng.uniform(0.8, 2.5, n) * rng.lognormal(0, 0.1, (n_draws, n))
    locked = np.zeros(n, dtype=bool)
    locked[-1] = n > 2
    optimised, bound_hit = _optimised(weekly, beta, lam, scale, locked)

    current_response = _response(weekly, beta, lam, scale) * horizon_weeks
    optimised_response = _response(optimised, beta, lam, scale) * horizon_weeks
    current_total = current_response.sum(axis=1)
    optimised_stats = _interval(optimised_response)
    allocation = pd.DataFrame(
        {
            "channel": list(channels),
            "actual_current_spend": weekly * horizon_weeks,
            "current_spend": weekly * horizon_weeks,
            "optimised_spend": optimised * horizon_weeks,
            "current_share": weekly / weekly.sum(),
            "optimised_share": optimised / optimised.sum(),
            "lower_bound": 0.5 * weekly * horizon_weeks,
            "upper_bound": 1.5 * weekly * horizon_weeks,
            "bound_hit": bound_hit,
            "locked": locked,
            "current_response_mean": current_response.mean(axis=0),
            "optimised_response_mean": optimised_stats["mean"],
            "optimised_response_hdi_low": optimised_stats["hdi_low"],
            "optimised_response_hdi_high": optimised_stats["hdi_high"],
        }
    )

    scenarios = []
    for factor in (0.8, 1.0, 1.1, 2.0):
        plan = optimised * factor
        outcome = _response(plan, beta, lam, scale).sum(axis=1) * horizon_weeks
        step = _response(plan * 1.01, beta, lam, scale).sum(axis=1) * horizon_weeks
        stats = _interval(outcome)
        scenarios.append(
            {
                "budget": plan.sum() * horizon_weeks,
                "optimised_response_mean": stats["mean"],
                "optimised_response_hdi_low": stats["hdi_low"],
                "optimised_response_hdi_high": stats["hdi_high"],
                "uplift_mean": (outcome - current_total).mean(),
                "p_uplift_positive": (outcome > current_total).mean(),
                "marginal_return": (step - outcome).mean() / (0.01 * plan.sum() * horizon_weeks),
            }
        )
    scenarios = pd.DataFrame(scenarios)
    scenarios["main"] = scenarios["budget"].round() == round(optimised.sum() * horizon_weeks)

    curves = {}
    for c, name in enumerate(channels):
        grid = np.linspace(0, 3 * weekly[c], 60)
        draws = _response(grid[:, None], beta[None, :, c], lam[None, :, c], scale[c])
        curves[name] = pd.DataFrame({"spend": grid, **_interval(draws, axis=1)})

    weeks = pd.date_range(dt.date(2024, 1, 1), periods=n_weeks, freq="W-MON", name="week_start")
    season = 1 + 0.25 * np.sin(2 * np.pi * np.arange(n_weeks) / 52)
    spend = weekly * rng.lognormal(0, 0.25, (n_weeks, n)) * season[:, None]
    contributions = pd.DataFrame(
        _response(spend, beta.mean(axis=0), lam.mean(axis=0), scale), index=weeks, columns=channels
    )
    contributions.insert(0, "baseline", 420 * season)
    mean = contributions.sum(axis=1).to_numpy()
    ppc = pd.DataFrame(
        {
            "observed": rng.poisson(mean).astype(float),
            "mean": mean,
            "hdi_low": mean - 1.9 * np.sqrt(mean) - 12,
            "hdi_high": mean + 1.9 * np.sqrt(mean) + 12,
            "holdout": np.arange(n_weeks) >= n_weeks - holdout_weeks,
        },
        index=weeks,
    )

    roas_draws = _response(weekly, beta, lam, scale) / weekly
    roas = pd.DataFrame({"channel": list(channels), **_interval(roas_draws)})

    months = pd.period_range("2024-10", periods=stability_months, freq="M").astype(str)
    truth = {
        "beta": beta.mean(axis=0),
        "adstock_decay": rng.uniform(0.2, 0.7, n),
        "lam": lam.mean(axis=0),
    }
    stability = pd.DataFrame(
        [
            {
                "as_of_month": month,
                "channel": name,
                "parameter": parameter,
                "mean": (m := values[c] * (1 + 0.04 * rng.standard_normal())),
                "hdi_low": 0.8 * m,
                "hdi_high": 1.2 * m,
            }
            for month in months
            for parameter, values in truth.items()
            for c, name in enumerate(channels)
        ]
    )

    return ReportData(
        project="Sample project",
        generated_at="2025-01-06 09:00 UTC",
        window_start=str(weeks[0].date()),
        window_end=str(weeks[-1].date()),
        n_weeks=n_weeks,
        target=target,
        currency=currency,
        attributable_share=attributable_share,
        horizon_weeks=horizon_weeks,
        allocation=allocation,
        current_outcome_draws=current_total,
        uplift_draws=optimised_response.sum(axis=1) - current_total,
        scenarios=scenarios,
        diagnostics={
            "max_r_hat": 1.0041,
            "min_ess_bulk": 1480.4,
            "min_ess_tail": 1322.0,
            "divergences": 0,
            "elpd_loo": -1234.56,
            "elpd_loo_se": 12.34,
            "r2": 0.9123,
            "mape": 0.0642,
            "holdout_crps": 18.37,
            "holdout_mape": 0.0815,
            "passed": passed,
        },
        response_curves=curves,
        contributions=contributions,
        ppc=ppc,
        roas=roas,
        stability=stability,
        lift_tests=lift_test_frame(channels, seed) if lift_tests else None,
        customer_value=(
            customer_value_frame(channels, weekly * n_weeks, customer_value_horizon_days, seed)
            if customer_value
            else None
        ),
        priors=priors,
        customer_value_horizon_days=customer_value_horizon_days if customer_value else None,
        assumptions=assumptions,
        source_files=source_files,
    )
