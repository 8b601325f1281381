"""Fit the MMM with NUTS and package the result as a self-describing ArviZ trace.

The sampler is driven in fixed-size chunks of iterations (one compiled ``lax.scan`` over
``NUTS.sample``, mapped over chains) instead of one ``MCMC.run``: that gives progress reports
during warm-up and sampling, a clean compile time (``lower().compile()`` before any step) and
draws that do not depend on the chunking, since the sampler state carries its own RNG key.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer import NUTS, Predictive, log_likelihood

from conversionflow_dagster.core.atomic import atomic_path
from conversionflow_dagster.core.errors import ContractError
from conversionflow_dagster.core.model.calibration import lift_observations
from conversionflow_dagster.core.model.history import short_history, unspent_channels
from conversionflow_dagster.core.model.mmm import (
    ModelInputs,
    ModelSpec,
    Scales,
    init_strategy,
    media_response,
    mmm,
    prepare_inputs,
)
from conversionflow_dagster.core.model.priors import CONTINUOUS_LIKELIHOODS, effective_priors
from conversionflow_dagster.core.model.transforms import PARAMETERS

# (done, total, phase): phase is "compiling", "compiled", "warmup" or "sampling"
ProgressCallback = Callable[[int, int, str], None]
BATCH_DRAWS = 500  # draws per batch when predicting from the posterior
CHANNEL_SITES = ("beta", "media_effect", "media_slope", *PARAMETERS)
DERIVED_SITES = ("beta", "media_effect", "intercept")  # deterministic sites of the model
# Warm-up trees stop at this depth (64 leapfrog steps). Before the step size and mass matrix
# adapt, the first ~100 iterations would build trees of up to 2**max_tree_depth steps: 3 of a
# 156-week fit's 4.5 s of warm-up, for no worse adaptation (min ESS and R-hat unchanged over
# logistic and Hill panels). Only a warm-up of at least MIN_CAPPED_WARMUP iterations is capped:
# a short one is all unadapted start, and capped it left a 100-iteration fit short of ESS.
# Sampling keeps max_tree_depth; the ladder's careful rungs lift the cap.
WARMUP_TREE_DEPTH = 6
MIN_CAPPED_WARMUP = 500
_STATS = ("diverging", "energy", "lp", "n_steps", "acceptance_rate", "step_size", "tree_depth")


@dataclass(frozen=True)
class SamplerSettings:
    """How NUTS moves: config ``model.target_accept``, ``max_tree_depth`` and ``dense_mass``.

    A higher target acceptance takes smaller steps (fewer divergences, slower); a deeper tree
    allows longer trajectories; a dense mass matrix adapts to correlated parameters. Warm-up
    trees stop at ``warmup_tree_depth`` (never deeper than ``max_tree_depth``).
    """

    target_accept: float = 0.85
    max_tree_depth: int = 10
    dense_mass: bool = True
    warmup_tree_depth: int = WARMUP_TREE_DEPTH

    def describe(self, warmup: int) -> str:
        """The settings a fit with ``warmup`` warm-up steps used, as the trace's JSON attribute."""
        used = {**asdict(self), "warmup_tree_depth": self.tree_depths(warmup)[0]}
        return json.dumps({**used, "warmup": warmup})

    def tree_depths(self, warmup: int) -> tuple[int, int]:
        """NumPyro's (warm-up, sampling) tree depth limits for a warm-up of ``warmup`` steps."""
        if warmup < MIN_CAPPED_WARMUP:
            return self.max_tree_depth, self.max_tree_depth
        return min(self.warmup_tree_depth, self.max_tree_depth), self.max_tree_depth


@dataclass
class FitResult:
    """The trace plus what the fit cost and how well it predicts."""

    idata: az.InferenceData
    spec: ModelSpec
    scales: Scales
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    metrics: dict[str, float] = field(default_factory=dict)  # r2, mape, holdout_crps, ...


def fit_mmm(
    spend: np.ndarray,
    target: np.ndarray,
    controls: np.ndarray,
    channel_names: Sequence[str],
    control_names: Sequence[str],
    week_start: pd.DatetimeIndex,
    spec: ModelSpec,
    *,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    scales: Scales | None = None,
    progress_callback: ProgressCallback | None = None,
    holdout_weeks: int = 0,
    target_name: str = "conversions",
    sampler: SamplerSettings = SamplerSettings(),
    lift_tests: pd.DataFrame | None = None,
) -> FitResult:
    """Fit on the first T - holdout_weeks weeks; same inputs and seed give identical draws.

    ``lift_tests`` (as from :func:`lift_tests.read_lift_tests`) calibrate the response curves:
    the tests with a positive ``spend_change`` and a week in the fit window are observations
    of the model (see :mod:`calibration`); which were used or skipped is in the trace's
    ``lift_tests`` attribute.
    """
    started = time.perf_counter()
    spend, target = np.asarray(spend, float), np.asarray(target, float)
    controls = np.asarray(controls, float).reshape(len(target), len(control_names))
    n_weeks, n_fit = len(target), len(target) - holdout_weeks
    if spend.shape != (n_weeks, len(channel_names)) or len(week_start) != n_weeks:
        raise ValueError("spend must be (T, C) and week_start (T,) for a target of length T")
    if holdout_weeks < 0:
        raise ValueError(f"holdout_weeks={holdout_weeks}: expected 0 or more")
    problem = short_history(n_weeks, holdout_weeks) or unspent_channels(
        spend[:n_fit], channel_names, f"the {n_fit} fitted weeks"
    )
    if problem:
        raise ContractError(problem)
    require_counts(target, week_start, spec)
    scales = scales or Scales.from_data(
        spend[:n_fit], target[:n_fit], controls[:n_fit], channel_names, control_names
    )
    design = partial(
        prepare_inputs,
        spec=spec,
        scales=scales,
        channel_names=channel_names,
        control_names=control_names,
        fit_weeks=n_fit,
    )
    lift = (
        lift_observations(lift_tests, spend[:n_fit], week_start[:n_fit], channel_names)
        if lift_tests is not None
        else None
    )
    inputs = design(spend[:n_fit], controls[:n_fit], week_start[:n_fit], lift=lift)
    y = jnp.asarray(target[:n_fit], jnp.float32)
    model = partial(mmm, spec=spec)
    posterior, stats, timings = sample_posterior(
        model, inputs, y, sampler, chains, warmup, draws, seed, progress_callback
    )

    t0 = time.perf_counter() - timings.pop("constrain_s")
    full_inputs = design(spend, controls, week_start)
    predicted = predict_draws(
        model, posterior, full_inputs, jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    )
    loglik = pointwise_log_likelihood(model, posterior, inputs, y)
    idata = az.from_dict(
        posterior=posterior,
        sample_stats=stats,
        posterior_predictive={"y": predicted[..., :n_fit]},
        log_likelihood={"y": loglik},
        observed_data={"y": target[:n_fit]},
        constant_data={"spend": spend[:n_fit], "controls": controls[:n_fit]},
        predictions={"y": predicted[..., n_fit:]} if holdout_weeks else None,
        coords={
            "week": week_start[:n_fit],
            "holdout_week": week_start[n_fit:],
            "channel": list(channel_names),
            "control": list(control_names),
            "fourier": spec.fourier_names,
        },
        dims={
            **{name: ["channel"] for name in CHANNEL_SITES},
            "seasonality": ["fourier"],
            "control_coef": ["control"],
            "y": ["week"],
            "spend": ["week", "channel"],
            "controls": ["week", "control"],
        },
        pred_dims={"y": ["holdout_week"]},
    )
    idata.posterior.attrs.update(
        trace_attrs(spec, scales, channel_names, control_names, target_name)
    )
    idata.posterior.attrs["sampler"] = sampler.describe(warmup)
    if lift is not None:
        idata.posterior.attrs["lift_tests"] = json.dumps(lift.summary(channel_names))
    timings["postprocess_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    metrics = fit_metrics(target[:n_fit], predicted[..., :n_fit])
    if holdout_weeks:
        observed, forecast = target[n_fit:], predicted[..., n_fit:]
        metrics["holdout_crps"] = crps(observed, forecast)
        metrics["holdout_mape"] = fit_metrics(observed, forecast)["mape"]
    return FitResult(idata, spec, scales, timings, metrics)


def sample_posterior(
    model: Callable,
    inputs: ModelInputs,
    y: jax.Array,
    sampler: SamplerSettings,
    chains: int,
    warmup: int,
    draws: int,
    seed: int,
    progress_callback: ProgressCallback | None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]:
    """NUTS on ``model(inputs, y=y)``: the constrained posterior with its deterministic sites
    (chain, draw, ...), the sample stats and the timings (``constrain_s`` included)."""
    kernel = NUTS(
        model,
        init_strategy=init_strategy,
        dense_mass=sampler.dense_mass,
        target_accept_prob=sampler.target_accept,
        max_tree_depth=sampler.tree_depths(warmup),
    )
    draws_out, stats, timings = _run_nuts(
        kernel, inputs, y, chains, warmup, draws, seed, progress_callback
    )
    t0 = time.perf_counter()
    posterior = _constrain(kernel, draws_out, inputs, y)
    timings["constrain_s"] = time.perf_counter() - t0
    return posterior, stats, timings  # the unconstrained draws are dropped: held once


def require_counts(target: np.ndarray, week_start: pd.DatetimeIndex, spec: ModelSpec) -> None:
    """Count likelihoods need whole numbers; say which week is not, and what to do instead."""
    if spec.likelihood in CONTINUOUS_LIKELIHOODS:
        return
    fractional = np.flatnonzero(target % 1 != 0)
    if fractional.size:
        first = fractional[0]
        raise ContractError(
            f"likelihood {spec.likelihood!r} models counts, but the target is not a whole number "
            f"in {fractional.size} week(s), first the week of {week_start[first].date()} "
            f"({target[first]!r}); use likelihood 'student_t' or 'normal' for a continuous target"
        )


def trace_attrs(
    spec: ModelSpec,
    scales: Scales,
    channel_names: Sequence[str],
    control_names: Sequence[str],
    target_name: str,
) -> dict[str, str]:
    """What a reader of the NetCDF file needs to rebuild the model, as JSON strings; ``priors``
    spells out the priors the fit used (defaults merged with the config's overrides)."""
    return {
        "model_spec": spec.to_json(),
        "priors": json.dumps(effective_priors(spec, has_controls=bool(control_names))),
        "scales": scales.to_json(),
        "channel_names": json.dumps(list(channel_names)),
        "control_names": json.dumps(list(control_names)),
        "target_name": target_name,
    }


def chunk_size(warmup: int, draws: int, reports: int = 10) -> int:
    """Largest step count dividing both phases with at least ``reports`` chunks per phase."""
    whole = math.gcd(warmup, draws)
    limit = max(1, min(n for n in (warmup, draws) if n > 0) // reports)
    return max(d for d in range(1, min(whole, limit) + 1) if whole % d == 0)


def _run_nuts(kernel, inputs, y, chains, warmup, draws, seed, progress_callback):
    """Warm up and sample in chunks; returns unconstrained draws, sample stats and timings.

    ``progress_callback`` hears "compiling" and "compiled" (0 of ``warmup``) around the
    compilation, which can take minutes on a cold cache, then each chunk of both phases."""
    if progress_callback:
        progress_callback(0, warmup, "compiling")
    t0 = time.perf_counter()

    # Traced per chain: a batched key would leave the kernel's sample function vmapped.
    def init(key, inputs, y):
        return kernel.init(key, warmup, None, (inputs,), {"y": y})

    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    state = jax.jit(jax.vmap(init, in_axes=(0, None, None)))(keys, inputs, y)
    n_steps = chunk_size(warmup, draws)

    def advance(state, inputs, y):  # one chain, n_steps NUTS iterations
        def step(state, _):
            state = kernel.sample(state, (inputs,), {"y": y})
            return state, (state.z, _step_stats(state))

        return jax.lax.scan(step, state, None, length=n_steps)

    parallel = chains > 1 and jax.local_device_count() >= chains
    mapped = (
        jax.pmap(advance, in_axes=(0, None, None))
        if parallel
        else jax.jit(jax.vmap(advance, in_axes=(0, None, None)))
    )
    t1 = time.perf_counter()
    compiled = mapped.lower(state, inputs, y).compile()
    t2 = time.perf_counter()
    timings = {"init_s": t1 - t0, "compile_s": t2 - t1}
    if progress_callback:
        progress_callback(0, warmup, "compiled")

    for done in range(n_steps, warmup + 1, n_steps):
        state, _ = compiled(state, inputs, y)
        jax.block_until_ready(state)
        if progress_callback:
            progress_callback(done, warmup, "warmup")
    t3 = time.perf_counter()
    chunks = []
    for done in range(n_steps, draws + 1, n_steps):
        state, collected = compiled(state, inputs, y)
        chunks.append(jax.device_get(collected))
        if progress_callback:
            progress_callback(done, draws, "sampling")
    timings |= {"warmup_s": t3 - t2, "sampling_s": time.perf_counter() - t3}
    z, stats = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *chunks)  # (chain, draw, ...)
    return z, stats, timings


def _step_stats(state) -> dict[str, jax.Array]:
    return {
        "diverging": state.diverging,
        "energy": state.energy,
        "lp": -state.potential_energy,
        "n_steps": state.num_steps,
        "acceptance_rate": state.accept_prob,
        "step_size": state.adapt_state.step_size,
        "tree_depth": jnp.floor(jnp.log2(state.num_steps)).astype(jnp.int32) + 1,
    }


def _batched(samples: dict[str, np.ndarray], fn: Callable):
    """Apply ``fn`` to flat batches of (chain, draw) samples; reassemble as (chain, draw, ...).

    Every batch has the same shape (the last is padded by repeating its final draw, and the
    padding dropped from the result), so a jitted ``fn`` compiles once. ``fn(batch, index)``
    may return an array or a dict of arrays (a pytree); the result has the same structure.
    """
    chains, n_draws = next(iter(samples.values())).shape[:2]
    total = chains * n_draws
    size = min(BATCH_DRAWS, total)
    flat = {k: v.reshape(total, *v.shape[2:]) for k, v in samples.items()}
    out = []
    for index, start in enumerate(range(0, total, size)):
        rows = np.minimum(np.arange(start, start + size), total - 1)  # (size,) padded
        batch = {k: v[rows] for k, v in flat.items()}
        kept = min(size, total - start)
        out.append(jax.tree.map(lambda r, n=kept: np.asarray(r)[:n], fn(batch, index)))
    result = jax.tree.map(lambda *parts: np.concatenate(parts), *out)
    return jax.tree.map(lambda r: r.reshape(chains, n_draws, *r.shape[1:]), result)


# The jitted functions below take data as arguments, never as closures: a closed-over array
# becomes a constant of the compiled program, and a refit on new data would then miss the
# persistent compilation cache.


def _constrain(kernel: NUTS, z: dict[str, np.ndarray], inputs: ModelInputs, y: jax.Array):
    """Unconstrained draws -> constrained sample sites plus the deterministic sites."""

    @jax.jit
    def constrain(batch, inputs, y):
        return jax.vmap(kernel.postprocess_fn((inputs,), {"y": y}))(batch)

    return _batched(z, lambda batch, _: constrain(batch, inputs, y))


def predict_draws(
    model, posterior, inputs: ModelInputs, key: jax.Array, derived: Sequence[str] = DERIVED_SITES
) -> np.ndarray:
    """Posterior predictive draws of the target (chain, draw, ...), in jitted batches of draws;
    ``derived`` names the model's deterministic sites, which are recomputed, not conditioned."""
    latent = {k: v for k, v in posterior.items() if k not in derived}

    @jax.jit
    def predict(samples, key, inputs):
        predictive = Predictive(model, posterior_samples=samples, return_sites=["y"])
        return predictive(key, inputs)["y"]

    return _batched(latent, lambda batch, i: predict(batch, jax.random.fold_in(key, i), inputs))


def pointwise_log_likelihood(model, posterior, inputs: ModelInputs, y: jax.Array) -> np.ndarray:
    """Pointwise log-likelihood of the observed weeks (chain, draw, T), for LOO."""

    @jax.jit
    def pointwise(samples, inputs, y):
        return log_likelihood(model, samples, inputs, y=y, parallel=True)["y"]

    return _batched(posterior, lambda batch, _: pointwise(batch, inputs, y))


def fit_metrics(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """R^2 and MAPE (over non-zero weeks) of the posterior predictive mean."""
    mean = predicted.reshape(-1, predicted.shape[-1]).mean(axis=0)  # (T,)
    resid = np.sum((observed - mean) ** 2)
    total = np.sum((observed - observed.mean()) ** 2)
    nonzero = observed != 0
    return {
        "r2": float(1 - resid / total) if total > 0 else float("nan"),
        "mape": float(np.mean(np.abs(observed - mean)[nonzero] / np.abs(observed[nonzero]))),
    }


def crps(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over weeks of the empirical CRPS, E|X - y| - E|X - X'| / 2, from predictive draws."""
    x = np.sort(predicted.reshape(-1, predicted.shape[-1]), axis=0)  # (S, T)
    m = x.shape[0]
    spread = (2 * np.arange(1, m + 1) - m - 1) @ x * 2 / m**2  # (T,) E|X - X'|
    return float(np.mean(np.abs(x - observed).mean(axis=0) - spread / 2))


def channel_contributions(
    idata: az.InferenceData, spend: np.ndarray, draw_indices: np.ndarray | None = None
) -> np.ndarray:
    """Weekly contribution of each channel in target units, (draws, T, C), for raw spend (T, C).

    Draws are the flattened (chain, draw) posterior, optionally a subset; computed in batches so
    only the result has to fit in memory.
    """
    attrs = idata.posterior.attrs
    spec, scales = ModelSpec.from_json(attrs["model_spec"]), Scales.from_json(attrs["scales"])
    u = jnp.asarray(spend / scales.spend_vector(json.loads(attrs["channel_names"])), jnp.float32)
    sites = spec.channel_params
    flat = {
        s: idata.posterior[s].stack(sample=("chain", "draw")).transpose("sample", ...).values
        for s in sites
    }
    if draw_indices is not None:
        flat = {s: v[draw_indices] for s, v in flat.items()}

    @jax.jit
    def contribution(params):  # (n, C) each -> (n, T, C)
        response = media_response(u, params, spec)
        return scales.target * params["beta"][:, None, :] * response

    n = len(flat["beta"])
    return np.concatenate(
        [
            np.asarray(contribution({s: v[i : i + BATCH_DRAWS] for s, v in flat.items()}))
            for i in range(0, n, BATCH_DRAWS)
        ]
    )


def save_trace(idata: az.InferenceData, path: str | Path) -> Path:
    """Write the trace as NetCDF (h5netcdf) atomically: readers never see a partial file."""
    with atomic_path(path) as tmp:
        idata.to_netcdf(str(tmp), engine="h5netcdf")
    return Path(path)


def load_trace(
    path: str | Path, view: Callable[[az.InferenceData], az.InferenceData] | None = None
) -> az.InferenceData:
    """Read a trace written by :func:`save_trace` fully into memory; with ``view`` (say, one
    market of a pooled trace) only what the view keeps, as the file is opened lazily."""
    idata = az.from_netcdf(str(path), engine="h5netcdf")
    if view is not None:
        idata = view(idata)
    for group in idata.groups():
        idata[group].load()
    return idata
