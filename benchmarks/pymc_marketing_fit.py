"""Fit PyMC-Marketing's MMM on a panel written by a benchmark and print timings as JSON.

Runs with the interpreter of the separate PyMC-Marketing virtual environment, never with the
project's, and imports nothing from the project:

    benchmarks/.pymc-marketing-venv/bin/python benchmarks/pymc_marketing_fit.py panel.csv \
        --channels "ch 0" "ch 1" --controls holiday promo --seed 0

The model is PyMC-Marketing's own, with its default priors and Normal likelihood on the
max-scaled target: geometric adstock (l_max=8), logistic (or ``--saturation hill``) saturation,
yearly Fourier seasonality of order 2 and the panel's controls (max-scaled, as its channels
are), with ``--trend`` also a linear trend (its example notebooks' ``t`` control). Sampling uses
NumPyro's NUTS with one host device per chain, as the project's fit does.

With ``--holdout-weeks N`` it fits all weeks but the last N and writes its posterior predictive
draws of those N weeks, in target units, to ``--predictions`` (a .npy array, samples x weeks),
so bench_accuracy.py scores both libraries' forecasts with the same functions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time

STARTED = time.perf_counter()
DEVICE_FLAG = "--xla_force_host_platform_device_count"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("panel", help="CSV with date, channel, control and target columns")
    parser.add_argument("--channels", nargs="+", required=True)
    parser.add_argument("--controls", nargs="+", required=True)
    parser.add_argument("--date-column", default="date")
    parser.add_argument("--target-column", default="y")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--l-max", type=int, default=8)
    parser.add_argument("--fourier-order", type=int, default=2)
    parser.add_argument("--saturation", choices=["logistic", "hill"], default="logistic")
    parser.add_argument("--holdout-weeks", type=int, default=0, help="last weeks not fitted")
    parser.add_argument(
        "--trend", action="store_true", help="add a linear trend control, as its examples do"
    )
    parser.add_argument("--predictions", help=".npy file for the hold-out predictive draws")
    args = parser.parse_args()
    if args.holdout_weeks and not args.predictions:
        parser.error("--holdout-weeks needs --predictions")

    # JAX reads the device count when its backend starts: set it before anything imports jax.
    flags = re.sub(rf"{DEVICE_FLAG}=\S+", "", os.environ.get("XLA_FLAGS", "")).split()
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{DEVICE_FLAG}={args.chains}"])

    import arviz as az
    import numpy as np
    import pandas as pd
    import pymc_marketing
    from pymc_marketing.mmm import GeometricAdstock, HillSaturation, LogisticSaturation
    from pymc_marketing.mmm.multidimensional import MMM

    imported = time.perf_counter()
    data = pd.read_csv(args.panel, parse_dates=[args.date_column])
    n_fit = len(data) - args.holdout_weeks
    controls = [*args.controls, *(["trend"] if args.trend else [])]
    data["trend"] = np.arange(len(data), dtype=float)
    # PyMC-Marketing scales channels and target by their maximum but leaves controls as they
    # are, under Normal(0, 2) priors: scale them the same way (a series in the millions, such
    # as Robyn's competitor sales, otherwise wrecks the forecast)
    peak = data[controls].iloc[:n_fit].abs().max().replace(0, 1)
    data[controls] = data[controls] / peak
    fitted, held_out = data.iloc[:n_fit], data.iloc[n_fit:]
    columns = [args.date_column, *args.channels, *controls]
    X = fitted[columns]
    y = fitted[args.target_column].rename(args.target_column)
    saturation = {"logistic": LogisticSaturation, "hill": HillSaturation}[args.saturation]
    mmm = MMM(
        date_column=args.date_column,
        channel_columns=args.channels,
        control_columns=controls,
        target_column=args.target_column,
        adstock=GeometricAdstock(l_max=args.l_max),
        saturation=saturation(),
        yearly_seasonality=args.fourier_order,
    )
    fit_started = time.perf_counter()
    idata = mmm.fit(
        X,
        y,
        progressbar=False,
        random_seed=args.seed,
        nuts_sampler="numpyro",
        chains=args.chains,
        tune=args.warmup,
        draws=args.draws,
    )
    fit_s = time.perf_counter() - fit_started
    if args.holdout_weeks:
        # the last l_max fitted weeks carry the adstock into the forecast
        draws = mmm.sample_posterior_predictive(
            held_out[columns],
            extend_idata=False,
            include_last_observations=True,
            random_seed=args.seed,
            progressbar=False,
        )
        scale = idata.constant_data["target_scale"].item()  # the likelihood is on y / scale
        np.save(args.predictions, draws["y"].transpose("sample", "date").values * scale)

    # Sampled parameters only: the posterior also holds per-week deterministics.
    names = [rv.name for rv in mmm.model.free_RVs]
    posterior = idata.posterior[names]
    min_ess = min(float(v.min()) for v in az.ess(posterior, method="bulk").data_vars.values())
    min_ess_tail = min(float(v.min()) for v in az.ess(posterior, method="tail").data_vars.values())
    max_r_hat = max(float(v.max()) for v in az.rhat(posterior).data_vars.values())
    sampling_s = float(idata.posterior.attrs.get("sampling_time", float("nan")))
    n_steps = idata.sample_stats.get("n_steps")
    result = {
        "library": "pymc-marketing",
        "version": pymc_marketing.__version__,
        "seed": args.seed,
        "saturation": args.saturation,
        "holdout_weeks": args.holdout_weeks,
        "trend": args.trend,
        "parameters": names,
        "import_s": imported - STARTED,
        "fit_s": fit_s,
        "sampling_s": sampling_s,  # NumPyro MCMC.run, including its JIT compile
        "wall_s": time.perf_counter() - STARTED,
        "min_ess_bulk": min_ess,
        "min_ess_tail": min_ess_tail,
        "ess_per_fit_s": min_ess / fit_s,
        "ess_per_sampling_s": min_ess / sampling_s,
        "max_r_hat": max_r_hat,
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "mean_steps": float(np.mean(n_steps)) if n_steps is not None else float("nan"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
