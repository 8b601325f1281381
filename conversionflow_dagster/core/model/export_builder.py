"""Build the parameter export (docs/contracts.md) from a fitted trace: all stage 2 ever reads."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

import arviz as az
import numpy as np
import xarray as xr

from conversionflow_dagster.core.config import Gates
from conversionflow_dagster.core.model.diagnostics import convergence_report
from conversionflow_dagster.core.model.fitting import BATCH_DRAWS, channel_contributions
from conversionflow_dagster.core.model.mmm import ModelSpec, Scales
from conversionflow_dagster.core.stats import finite_or_none, hdi

SCHEMA_VERSION = 1


def build_parameter_export(
    idata: az.InferenceData,
    *,
    n_draws: int = 500,
    seed: int = 0,
    current_weekly_spend: Mapping[str, float],
    data_window: Mapping[str, object],
    gates: Gates,
) -> dict:
    """The export document: per-channel summaries, ROAS, diagnostics and thinned joint draws.

    ROAS per draw is the channel's average weekly contribution over the fitted weeks divided by
    its average weekly spend there. The thinned draws use the same posterior draw indices for
    every parameter, so stage 2 sees joint draws rather than independent marginals. ``gates``
    are the project's: the export's (and so the report's) "passed" is the blocking checks' verdict.
    """
    attrs = idata.posterior.attrs
    spec = ModelSpec.from_json(attrs["model_spec"])
    scales = Scales.from_json(attrs["scales"])
    channels = json.loads(attrs["channel_names"])
    missing = [c for c in channels if c not in current_weekly_spend]
    if missing:
        raise ValueError(f"current_weekly_spend has no value for channel(s) {missing}")

    names = spec.channel_params
    posterior = idata.posterior[list(names)]
    bounds = xr.apply_ufunc(  # (channel, 2) per parameter, over the pooled chains
        hdi,
        posterior.stack(sample=("chain", "draw")),
        input_core_dims=[["sample"]],
        output_core_dims=[["hdi"]],
    )
    summary = {
        "mean": posterior.mean(("chain", "draw")),
        "sd": posterior.std(("chain", "draw"), ddof=1),
        "hdi_3%": bounds.isel(hdi=0),
        "hdi_97%": bounds.isel(hdi=1),
        "r_hat": az.rhat(posterior),
        "ess_bulk": az.ess(posterior, method="bulk"),
        "ess_tail": az.ess(posterior, method="tail"),
    }
    roas = _roas_draws(idata)  # (draws, C)
    roas_hdi = hdi(roas.T)  # (C, 2); NaN (null in JSON) for a channel without spend

    report = convergence_report(idata)
    flat = posterior.stack(sample=("chain", "draw")).transpose("sample", ...)
    n_total = flat.sizes["sample"]
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n_total, size=min(n_draws, n_total), replace=False))

    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": {
            "target": attrs.get("target_name", "conversions"),
            "likelihood": spec.likelihood,
            "adstock": {
                "type": spec.adstock,
                "max_lag": spec.max_lag,
                "normalize": spec.normalize_adstock,
            },
            "saturation": {"type": spec.saturation},
        },
        "data_window": dict(data_window),
        "scales": {"target": scales.target, "spend": {c: scales.spend[c] for c in channels}},
        "channels": [
            {
                "name": channel,
                "current_weekly_spend": float(current_weekly_spend[channel]),
                "parameters": {
                    name: {
                        stat: float(table[name].sel(channel=channel))
                        for stat, table in summary.items()
                    }
                    for name in names
                },
                "roas": {
                    "mean": finite_or_none(roas[:, j].mean()),
                    "hdi_3%": finite_or_none(roas_hdi[j, 0]),
                    "hdi_97%": finite_or_none(roas_hdi[j, 1]),
                },
            }
            for j, channel in enumerate(channels)
        ],
        "diagnostics": {
            "max_r_hat": report.max_r_hat,
            "min_ess_bulk": report.min_ess_bulk,
            "min_ess_tail": report.min_ess_tail,
            "divergences": report.divergences,
            "passed": report.failures(gates).passed,
        },
        "draws": {
            "n": len(picked),
            **{name: _rows(flat[name], picked) for name in names},
        },
    }


def _roas_draws(idata: az.InferenceData) -> np.ndarray:
    """Average weekly contribution / average weekly spend over the fitted weeks, (draws, C)."""
    spend = idata.constant_data["spend"].values  # (T, C)
    n = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    mean_spend = spend.mean(axis=0)  # (C,)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.concatenate(
            [
                channel_contributions(idata, spend, np.arange(i, min(i + BATCH_DRAWS, n))).mean(
                    axis=1
                )
                / mean_spend
                for i in range(0, n, BATCH_DRAWS)
            ]
        )


def _rows(values: xr.DataArray, picked: np.ndarray) -> list[list[float]]:
    return values.values[picked].astype(float).tolist()
