"""Markets as one hierarchical model: channels behave alike everywhere, baselines are local.

Each market is the single-market model of :mod:`mmm` on its own scaled data (its target over
its own mean, its spend over its own spend scales), so a parameter means the same in a market
of 50 weekly sales and one of 5,000, and can be pooled. Every media parameter theta (the
media effect per share of spend, the adstock decay, the saturation parameters) is drawn as

    link(theta_mc) = link(theta_c) + sd_theta * z_mc,    z_mc ~ Normal(0, 1)

with link = logit for a share in (0, 1) and log for a positive number. The population value
theta_c keeps the single-market prior (docs/priors.md) and the spread sd_theta has the
``market_sd`` prior. The deviations are non-centred: a market whose data say little stays
near the population, and the sampler meets no funnel when markets agree. Baseline, trend,
seasonality, controls and noise are each market's own. One program covers every market, week
and channel, so 20 markets are one NUTS run (and a GPU gets enough work per step).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

from conversionflow_dagster.core.errors import ContractError
from conversionflow_dagster.core.model.fitting import (
    ProgressCallback,
    SamplerSettings,
    crps,
    fit_metrics,
    pointwise_log_likelihood,
    predict_draws,
    require_counts,
    sample_posterior,
    trace_attrs,
)
from conversionflow_dagster.core.model.history import short_history, unspent_channels
from conversionflow_dagster.core.model.mmm import (
    INIT_VALUE,
    ModelInputs,
    ModelSpec,
    Scales,
    media_response,
    observation,
    prepare_inputs,
    prior_distribution,
)
from conversionflow_dagster.core.model.priors import effective_priors
from conversionflow_dagster.core.model.transforms import PARAMETERS

MARKET = "market"
MEDIA_EFFECT = "media_effect"
MARKET_SCALES_ATTR = "market_scales"  # {market: Scales JSON} of a pooled trace
MARKETS_ATTR = "markets"  # the markets of a pooled trace, in trace order
POOLED_ATTR = "pooled_markets"  # on one market's view: the markets it was pooled with
# A diagonal mass matrix: with hundreds of parameters a dense one took 4x longer per fit for
# the same ESS per second (8 markets x 156 weeks x 5 channels).
POOLED_SAMPLER = SamplerSettings(dense_mass=False)


def population_site(name: str) -> str:
    return f"{name}_population"


def spread_site(name: str) -> str:
    return f"{name}_market_sd"


def deviation_site(name: str) -> str:
    return f"{name}_market_z"


@dataclass(frozen=True)
class MarketSeries:
    """One market's weekly data over the common weeks of a pooled fit."""

    spend: np.ndarray  # (T, C)
    target: np.ndarray  # (T,)
    controls: np.ndarray  # (T, K)


@dataclass
class MarketsFit:
    """The pooled trace (dims market x ...) plus what the fit cost and how well it predicts."""

    idata: az.InferenceData
    spec: ModelSpec
    scales: dict[str, Scales]
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    metrics: dict[str, float] = field(default_factory=dict)  # overall and per market


def pooled_parameters(spec: ModelSpec) -> tuple[str, ...]:
    """The per-channel parameters drawn from a population: media effect, adstock, saturation."""
    return (MEDIA_EFFECT, *spec.transform_params)


def _is_share(name: str) -> bool:
    """A parameter bounded to (0, 1) pools on the logit scale; every other one on the log."""
    return name != MEDIA_EFFECT and PARAMETERS[name].bounds[2] == 1.0


def _pooled(spec: ModelSpec, name: str, n_markets: int, n_channels: int) -> jax.Array:
    """theta_mc = link^-1(link(theta_c) + sd * z_mc), (M, C); the media effect's population
    value is per share of spend (its prior rate is not divided by the share here)."""
    median = numpyro.sample(
        population_site(name), prior_distribution(spec, name).expand([n_channels])
    )  # (C,)
    sd = numpyro.sample(spread_site(name), prior_distribution(spec, "market_sd"))
    z = numpyro.sample(deviation_site(name), dist.Normal(0.0, 1.0).expand([n_markets, n_channels]))
    if _is_share(name):
        return jax.nn.sigmoid(jax.scipy.special.logit(median) + sd * z)
    return median * jnp.exp(sd * z)


def hierarchical_mmm(inputs: ModelInputs, spec: ModelSpec, y: jax.Array | None = None) -> None:
    """The pooled model; every field of ``inputs`` has a leading market axis (M, ...), and ``y``
    (M, T) is the target in original units, None to predict.

    The media effect is the average weekly contribution in average weeks, as in :func:`mmm`;
    the level (baseline plus media) moves freely and the intercept prior is added back on
    ``intercept = level - sum(media_effect)`` (a shift, so no Jacobian).
    """
    n_markets, _, n_channels = inputs.spend.shape
    pooled = {name: _pooled(spec, name, n_markets, n_channels) for name in pooled_parameters(spec)}
    transform = {p: numpyro.deterministic(p, pooled[p]) for p in spec.transform_params}
    effect = numpyro.deterministic(MEDIA_EFFECT, pooled[MEDIA_EFFECT] * inputs.spend_share)
    response = jax.vmap(partial(media_response, spec=spec))(inputs.spend, transform)  # (M, T, C)
    mean_response = jnp.einsum("mt,mtc->mc", inputs.window, response)  # (M, C)
    beta = numpyro.deterministic("beta", effect / jnp.maximum(mean_response, 1e-6))  # (M, C)

    level = numpyro.sample(
        "level",
        dist.ImproperUniform(dist.constraints.real, (), (n_markets,)),
        infer={INIT_VALUE: jnp.ones(n_markets)},
    )
    intercept = numpyro.deterministic("intercept", level - effect.sum(-1))  # (M,)
    numpyro.factor("prior_intercept", prior_distribution(spec, "intercept").log_prob(intercept))

    mu = intercept[:, None] + jnp.einsum("mtc,mc->mt", response, beta)  # (M, T)
    if spec.trend:
        trend = numpyro.sample("trend", prior_distribution(spec, "trend").expand([n_markets]))
        mu = mu + trend[:, None] * inputs.trend
    if spec.fourier_order:
        seasonality = numpyro.sample(
            "seasonality",
            prior_distribution(spec, "seasonality").expand([n_markets, 2 * spec.fourier_order]),
        )
        mu = mu + jnp.einsum("mtf,mf->mt", inputs.fourier, seasonality)
    n_controls = inputs.controls.shape[-1]
    if n_controls:
        coef = numpyro.sample(
            "control_coef", prior_distribution(spec, "control_coef").expand([n_markets, n_controls])
        )
        mu = mu + jnp.einsum("mtk,mk->mt", inputs.controls, coef)

    likelihood = observation(spec, mu, inputs.target_scale[:, None], markets=n_markets)
    numpyro.sample("y", likelihood, obs=y)


def derived_sites(spec: ModelSpec) -> tuple[str, ...]:
    """Deterministic sites of the pooled model (recomputed when predicting)."""
    return ("beta", "intercept", *pooled_parameters(spec))


def fit_markets(
    markets: Mapping[str, MarketSeries],
    channel_names: Sequence[str],
    control_names: Sequence[str],
    week_start: pd.DatetimeIndex,
    spec: ModelSpec,
    *,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    holdout_weeks: int = 0,
    target_name: str = "conversions",
    sampler: SamplerSettings = POOLED_SAMPLER,
    progress_callback: ProgressCallback | None = None,
) -> MarketsFit:
    """Fit every market at once on the first T - holdout_weeks weeks; each market's scales come
    from its own fitted weeks. Same inputs and seed give identical draws."""
    started = time.perf_counter()
    names = list(markets)
    if not names:
        raise ContractError("a pooled fit needs at least one market")
    n_weeks = len(week_start)
    n_fit = n_weeks - holdout_weeks
    too_short = short_history(n_weeks, holdout_weeks)
    if too_short:
        raise ContractError(too_short)
    series = {}
    for market in names:
        data = markets[market]
        spend, target = np.asarray(data.spend, float), np.asarray(data.target, float)
        controls = np.asarray(data.controls, float)
        shapes = (spend.shape, target.shape, controls.shape)
        expected = ((n_weeks, len(channel_names)), (n_weeks,), (n_weeks, len(control_names)))
        if shapes != expected:
            raise ValueError(
                f"market {market!r}: spend, target and controls have shapes {shapes}; "
                f"expected {expected} for the {n_weeks} weeks"
            )
        require_counts(target, week_start, spec)
        series[market] = MarketSeries(spend, target, controls)
    # A market where a channel spends nothing borrows the channel from the others.
    unspent = unspent_channels(
        sum(np.abs(s.spend[:n_fit]) for s in series.values()),
        channel_names,
        f"the {n_fit} fitted weeks of any market",
    )
    if unspent:
        raise ContractError(unspent)
    scales = {
        m: Scales.from_data(
            s.spend[:n_fit], s.target[:n_fit], s.controls[:n_fit], channel_names, control_names
        )
        for m, s in series.items()
    }

    def design(weeks: int):  # every market's scaled inputs over its first ``weeks`` weeks
        per_market = [
            prepare_inputs(
                s.spend[:weeks],
                s.controls[:weeks],
                week_start[:weeks],
                spec,
                scales[m],
                channel_names,
                control_names,
                fit_weeks=n_fit,
            )
            for m, s in series.items()
        ]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *per_market)

    inputs = design(n_fit)
    target = np.stack([s.target for s in series.values()])  # (M, T)
    y = jnp.asarray(target[:, :n_fit], jnp.float32)
    model = partial(hierarchical_mmm, spec=spec)
    posterior, stats, timings = sample_posterior(
        model, inputs, y, sampler, chains, warmup, draws, seed, progress_callback
    )

    t0 = time.perf_counter() - timings.pop("constrain_s")
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    predicted = predict_draws(model, posterior, design(n_weeks), key, derived_sites(spec))
    loglik = pointwise_log_likelihood(model, posterior, inputs, y)  # (chain, draw, M, T)
    pooled = pooled_parameters(spec)
    idata = az.from_dict(  # every market-level variable on a ``market`` dim
        posterior=posterior,
        sample_stats=stats,
        posterior_predictive={"y": predicted[..., :n_fit]},
        log_likelihood={"y": loglik},
        observed_data={"y": target[:, :n_fit]},
        constant_data={
            "spend": np.stack([s.spend[:n_fit] for s in series.values()]),
            "controls": np.stack([s.controls[:n_fit] for s in series.values()]),
        },
        predictions={"y": predicted[..., n_fit:]} if holdout_weeks else None,
        coords={
            MARKET: names,
            "week": week_start[:n_fit],
            "holdout_week": week_start[n_fit:],
            "channel": list(channel_names),
            "control": list(control_names),
            "fourier": spec.fourier_names,
        },
        dims={
            **{name: [MARKET, "channel"] for name in (*pooled, "beta")},
            **{deviation_site(p): [MARKET, "channel"] for p in pooled},
            **{population_site(p): ["channel"] for p in pooled},
            **{name: [MARKET] for name in ("level", "intercept", "trend", "sigma")},
            **{name: [MARKET] for name in ("dispersion", "hurdle_shift", "nu_above_2")},
            "seasonality": [MARKET, "fourier"],
            "control_coef": [MARKET, "control"],
            "y": [MARKET, "week"],
            "spend": [MARKET, "week", "channel"],
            "controls": [MARKET, "week", "control"],
        },
        pred_dims={"y": [MARKET, "holdout_week"]},
    )
    attrs = trace_attrs(spec, scales[names[0]], channel_names, control_names, target_name)
    del attrs["scales"]  # one per market: MARKET_SCALES_ATTR
    attrs["priors"] = json.dumps(effective_priors(spec, bool(control_names), pooled=True))
    idata.posterior.attrs.update(attrs)
    idata.posterior.attrs[MARKETS_ATTR] = json.dumps(names)
    idata.posterior.attrs[MARKET_SCALES_ATTR] = json.dumps(
        {m: json.loads(s.to_json()) for m, s in scales.items()}
    )
    idata.posterior.attrs["sampler"] = sampler.describe(warmup)
    timings["postprocess_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    return MarketsFit(
        idata, spec, scales, timings, _metrics(target, predicted, names, n_fit, holdout_weeks)
    )


def _metrics(
    target: np.ndarray, predicted: np.ndarray, names: list[str], n_fit: int, holdout: int
) -> dict[str, float]:
    """R^2 and MAPE per market and their medians; with a hold-out, its CRPS and MAPE too.

    Markets differ in size, so the overall hold-out CRPS is the mean of each market's CRPS
    divided by its mean target (a relative CRPS): a big market does not drown the others.
    """
    metrics: dict[str, float] = {}
    per_market: dict[str, list[float]] = {}
    for i, market in enumerate(names):
        fitted = fit_metrics(target[i, :n_fit], predicted[:, :, i, :n_fit])
        values = {"r2": fitted["r2"], "mape": fitted["mape"]}
        if holdout:
            observed, forecast = target[i, n_fit:], predicted[:, :, i, n_fit:]
            values["holdout_crps"] = crps(observed, forecast)
            values["holdout_relative_crps"] = values["holdout_crps"] / target[i, :n_fit].mean()
            values["holdout_mape"] = fit_metrics(observed, forecast)["mape"]
        for name, value in values.items():
            metrics[f"{name}[{market}]"] = value
            per_market.setdefault(name, []).append(value)
    metrics |= {name: float(np.median(v)) for name, v in per_market.items() if "crps" not in name}
    if holdout:
        metrics["holdout_relative_crps"] = float(np.mean(per_market["holdout_relative_crps"]))
    return metrics


def market_trace(idata: az.InferenceData, market: str) -> az.InferenceData:
    """One market's view of a pooled trace, in the layout of a single-market fit.

    Everything downstream of the trace (the parameter export, the report, the contributions)
    reads it unchanged: variables lose their ``market`` dim, ``scales`` is the market's own,
    and the population variables stay (they are part of this market's posterior).
    """
    names = json.loads(idata.posterior.attrs[MARKETS_ATTR])
    if market not in names:
        raise ContractError(f"the pooled trace holds markets {names}, not {market!r}")
    view = idata.isel(**{MARKET: names.index(market)})
    for group in view.groups():
        if MARKET in view[group].coords:
            view[group] = view[group].drop_vars(MARKET)
    attrs = dict(idata.posterior.attrs)
    attrs["scales"] = json.dumps(json.loads(attrs.pop(MARKET_SCALES_ATTR))[market])
    attrs[POOLED_ATTR] = attrs.pop(MARKETS_ATTR)
    attrs[MARKET] = market
    view.posterior.attrs = attrs
    return view


def is_pooled(idata: az.InferenceData) -> bool:
    return MARKETS_ATTR in idata.posterior.attrs
