"""Assemble the report's inputs from the pipeline's artefacts (allocation, export, trace, panel).

The report module only renders; this module decides what each number means: the current
outcome is the target observed over the last planning horizon of the fit window, the response
curves come from the exported draws (what the optimiser saw), and contributions and the
posterior predictive come from the trace, on a seeded subset of draws to bound memory.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from conversionflow_dagster.core.allocation.response import ResponseModel
from conversionflow_dagster.core.ingest.panel import WeeklyPanel
from conversionflow_dagster.core.model.fitting import channel_contributions, crps, fit_metrics
from conversionflow_dagster.core.model.ladder import sampling_sentence
from conversionflow_dagster.core.parameter_export import ParameterExport
from conversionflow_dagster.core.report.data import DataKind, ReportData
from conversionflow_dagster.core.stats import hdi

PLOT_DRAWS = 500  # posterior draws behind the contribution and predictive plots
CURVE_POINTS = 60
STABILITY_PARAMETERS = ("adstock_decay", "beta")


def _interval(draws: np.ndarray) -> tuple[float, float, float]:
    low, high = hdi(draws)
    return float(draws.mean()), low, high


def main_scenario(allocation: Mapping[str, Any]) -> Mapping[str, Any]:
    """The scenario the allocation document names as its main plan."""
    return allocation["scenarios"][allocation["main_scenario"]]


def allocation_frame(
    scenario: Mapping[str, Any], actual_spend: Mapping[str, float]
) -> pd.DataFrame:
    """The report's allocation columns from one scenario of the allocation document.

    The document's ``current_spend`` is the current mix scaled to the scenario's budget;
    ``actual_spend`` (channel -> what it spends now over the horizon) is shown beside it.
    """
    channels = pd.DataFrame(scenario["channels"])
    current_total = channels["current_spend"].sum()
    return pd.DataFrame(
        {
            "channel": channels["channel"],
            "actual_current_spend": channels["channel"].astype(str).map(actual_spend),
            "current_spend": channels["current_spend"],
            "optimised_spend": channels["optimised_spend"],
            "current_share": channels["current_spend"] / current_total if current_total else 0.0,
            "optimised_share": channels["share"],
            "lower_bound": channels["lower"],
            "upper_bound": channels["upper"],
            "bound_hit": channels["bound_hit"],
            "locked": channels["locked"].astype(bool),
            "current_response_mean": channels["current_response"],
            "optimised_response_mean": channels["optimised_response"],
            "optimised_response_hdi_low": channels["optimised_response_hdi_low"],
            "optimised_response_hdi_high": channels["optimised_response_hdi_high"],
        }
    )


def scenario_frame(allocation: Mapping[str, Any]) -> pd.DataFrame:
    table = pd.DataFrame(allocation["table"])
    return pd.DataFrame(
        {
            "budget": table["budget"],
            "optimised_response_mean": table["optimised_response"],
            "optimised_response_hdi_low": table["optimised_hdi_low"],
            "optimised_response_hdi_high": table["optimised_hdi_high"],
            "uplift_mean": table["uplift_mean"],
            "p_uplift_positive": table["p_uplift_positive"],
            "marginal_return": table["marginal_return"],
            "main": table["main"].astype(bool),
        }
    )


def response_curves(
    export: ParameterExport, weekly_spend: np.ndarray, points: int = CURVE_POINTS
) -> dict[str, pd.DataFrame]:
    """Weekly response against weekly spend per channel, from the exported draws."""
    model = ResponseModel.from_export(export)
    top = np.maximum(2.0 * weekly_spend, 1.0)  # (C,)
    grid = np.linspace(0.0, 1.0, points)[:, None] * top  # (G, C)
    response = model.response(grid)  # (G, D, C)
    curves = {}
    for j, name in enumerate(export.channel_names):
        rows = [_interval(response[g, :, j]) for g in range(points)]
        curves[name] = pd.DataFrame(rows, columns=["mean", "hdi_low", "hdi_high"]).assign(
            spend=grid[:, j]
        )[["spend", "mean", "hdi_low", "hdi_high"]]
    return curves


def _predictive_frame(weeks, observed, predicted, holdout: bool) -> pd.DataFrame:
    flat = predicted.reshape(-1, predicted.shape[-1])  # (S, T)
    rows = [_interval(flat[:, t]) for t in range(flat.shape[1])]
    frame = pd.DataFrame(
        rows,
        columns=["mean", "hdi_low", "hdi_high"],
        index=pd.DatetimeIndex(weeks, name="week_start"),
    )
    frame.insert(0, "observed", observed)
    frame["holdout"] = holdout
    return frame


def posterior_predictive(idata: az.InferenceData, panel: WeeklyPanel, target: str) -> pd.DataFrame:
    """Observed vs predicted per week, hold-out weeks (if any) flagged."""
    weeks = idata.observed_data["week"].values
    fitted = _predictive_frame(
        weeks, idata.observed_data["y"].values, idata.posterior_predictive["y"].values, False
    )
    if "predictions" not in idata.groups():
        return fitted
    holdout_weeks = idata.predictions["holdout_week"].values
    observed = panel.frame.loc[pd.DatetimeIndex(holdout_weeks), target].to_numpy()
    held = _predictive_frame(holdout_weeks, observed, idata.predictions["y"].values, True)
    return pd.concat([fitted, held])


def contributions_frame(idata: az.InferenceData, seed: int) -> pd.DataFrame:
    """Posterior-mean weekly contribution per channel, and the baseline (the rest of the fit)."""
    channels = list(idata.posterior["channel"].values)
    spend = idata.constant_data["spend"].values  # (T, C)
    total = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(total, size=min(PLOT_DRAWS, total), replace=False))
    media = channel_contributions(idata, spend, picked).mean(axis=0)  # (T, C)
    predicted = idata.posterior_predictive["y"].values.reshape(total, -1).mean(axis=0)  # (T,)
    frame = pd.DataFrame(
        media,
        columns=channels,
        index=pd.DatetimeIndex(idata.observed_data["week"].values, name="week_start"),
    )
    frame["baseline"] = np.maximum(predicted - media.sum(axis=1), 0.0)
    return frame


def diagnostics(
    idata: az.InferenceData, export: ParameterExport, panel: WeeklyPanel, target: str
) -> dict[str, float | bool | None]:
    """Convergence (from the export), ELPD-LOO, in-sample and hold-out fit."""
    loo = az.loo(idata)
    observed = idata.observed_data["y"].values
    fitted = fit_metrics(observed, idata.posterior_predictive["y"].values)
    out: dict[str, float | bool | None] = {
        **{
            k: export.diagnostics[k]
            for k in ("max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences", "passed")
        },
        "elpd_loo": float(loo.elpd_loo),
        "elpd_loo_se": float(loo.se),
        "r2": fitted["r2"],
        "mape": fitted["mape"],
        "holdout_crps": None,
        "holdout_mape": None,
    }
    if "predictions" in idata.groups():
        weeks = pd.DatetimeIndex(idata.predictions["holdout_week"].values)
        held_obs = panel.frame.loc[weeks, target].to_numpy()
        predicted = idata.predictions["y"].values
        out["holdout_crps"] = crps(held_obs, predicted)
        out["holdout_mape"] = fit_metrics(held_obs, predicted)["mape"]
    return out


def stability_frame(exports: Mapping[str, ParameterExport]) -> pd.DataFrame | None:
    """Parameter means and HDIs per as-of month, when several monthly refits exist."""
    if len(exports) < 2:
        return None
    rows = []
    for month, export in sorted(exports.items()):
        for channel in export.channels:
            for name in STABILITY_PARAMETERS:
                p = channel.parameters[name]
                rows.append((month, channel.name, name, p["mean"], p["hdi_3%"], p["hdi_97%"]))
            r = channel.roas
            rows.append((month, channel.name, "roas", r["mean"], r["hdi_3%"], r["hdi_97%"]))
    return pd.DataFrame(
        rows, columns=["as_of_month", "channel", "parameter", "mean", "hdi_low", "hdi_high"]
    )


def build_report_data(
    *,
    project: str,
    allocation: Mapping[str, Any],
    export: ParameterExport,
    idata: az.InferenceData,
    panel: WeeklyPanel,
    target: str,
    attributable_share: float,
    monthly_exports: Mapping[str, ParameterExport] | None = None,
    currency: str = "",
    seed: int = 0,
    assumptions: Sequence[str] = (),
    lift_tests: pd.DataFrame | None = None,
    customer_value: pd.DataFrame | None = None,
    customer_value_horizon_days: int | None = None,
    data_kind: DataKind = "journey",
    min_uplift_probability: float = 0.9,
) -> ReportData:
    """The report's data; ``lift_tests`` (from ``analyse_lift_tests``) and ``customer_value``
    (per paid channel, over ``customer_value_horizon_days``) are shown as given when present.
    When the fit was calibrated, each lift test is marked with whether the fit used it.
    """
    if lift_tests is not None and "lift_tests" in idata.posterior.attrs:
        used = json.loads(idata.posterior.attrs["lift_tests"])["used"]
        lift_tests = lift_tests.assign(
            calibrated=lift_tests["test_id"].isin([t["test_id"] for t in used])
        )
    scenario = main_scenario(allocation)
    horizon = int(allocation["horizon_weeks"])
    uplift = np.asarray(scenario["uplift_draws"], dtype=float)
    fitted_weeks = pd.DatetimeIndex(idata.observed_data["week"].values)
    current_outcome = float(panel.frame.loc[fitted_weeks, target].iloc[-horizon:].sum())
    actual = export.current_weekly_spend * horizon
    frame = allocation_frame(scenario, dict(zip(export.channel_names, actual, strict=True)))
    roas = pd.DataFrame(
        [(c.name, c.roas["mean"], c.roas["hdi_3%"], c.roas["hdi_97%"]) for c in export.channels],
        columns=["channel", "mean", "hdi_low", "hdi_high"],
    )
    window = export.data_window
    return ReportData(
        project=project,
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        window_start=str(window["start"]),
        window_end=str(window["end"]),
        n_weeks=int(window["n_weeks"]),
        target=target,
        attributable_share=attributable_share,
        horizon_weeks=horizon,
        allocation=frame,
        current_outcome_draws=np.full(uplift.shape, current_outcome),
        uplift_draws=uplift,
        scenarios=scenario_frame(allocation),
        diagnostics=diagnostics(idata, export, panel, target),
        response_curves=response_curves(export, export.current_weekly_spend),
        contributions=contributions_frame(idata, seed),
        ppc=posterior_predictive(idata, panel, target),
        roas=roas,
        stability=stability_frame(monthly_exports or {}),
        lift_tests=lift_tests,
        customer_value=customer_value,
        customer_value_horizon_days=customer_value_horizon_days,
        data_kind=data_kind,
        min_uplift_probability=min_uplift_probability,
        objective=str(allocation["objective"]),
        sampling=sampling_sentence(idata.posterior.attrs),
        priors=json.loads(idata.posterior.attrs["priors"])
        if "priors" in idata.posterior.attrs
        else None,
        assumptions=[
            f"The current outcome is the {target} observed over the last {horizon} weeks of the "
            "fit window; improvements are relative to it.",
            *assumptions,
        ],
        source_files=list(panel.sources),
        currency=currency,
    )
