"""The stage-1 marketing-mix model in NumPyro: weekly target from spend, trend, season, controls.

Everything is fitted on scaled data (target / ``Scales.target``, spend / ``Scales.spend``) so that
every parameter is of order one and the default priors mean the same thing for any business:

    mu_t = intercept + trend * t + fourier_t . seasonality + controls_t . control_coef
           + sum_c beta_c * s(adstock(u_c))_t

with the response formulas of docs/contracts.md. Geometry matters more than anything else here:
with ``beta`` as a sampled parameter, what the data pin down (the baseline level and how the
target moves with spend) are curved functions of ``beta``, the saturation and the intercept, and
NUTS needed deep trees, diverged and failed to converge at 520 weeks x 20 channels. The prior
is still stated on ``intercept`` and ``media_effect`` (average weekly contribution), but the
sampler moves in ``level`` and ``media_slope`` (see :func:`mmm`); measured at 156 x 7 this cut
the mean NUTS steps per draw from ~230 to ~19 with no divergences.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.distributions import constraints
from numpyro.distributions.transforms import (
    AffineTransform,
    ComposeTransform,
    ExpTransform,
    Transform,
    biject_to,
)
from numpyro.distributions.util import promote_shapes, validate_sample

from conversionflow_dagster.core.config import ModelSection
from conversionflow_dagster.core.errors import ConfigError
from conversionflow_dagster.core.model.calibration import LiftObservations
from conversionflow_dagster.core.model.priors import LIKELIHOODS, PRIORS, prior_problems
from conversionflow_dagster.core.model.transforms import (
    ADSTOCKS,
    SATURATIONS,
    transform_parameters,
)

# The Student-t noise has more degrees of freedom than this, so its variance (and the mean of
# predictive draws) is finite: ``nu_above_2`` is the rest.
MIN_STUDENT_T_DF = 2.0
# Softplus sharpness for the count rate: max(mu, 0) smoothed over ~1/20 of the target scale, so
# the rate equals target_scale * mu to within 5e-6 relative wherever mu > 0.5.
RATE_SHARPNESS = 20.0
# Weeks since a Monday epoch, so Fourier terms are tied to the calendar, not to the fit window.
_EPOCH = pd.Timestamp("1970-01-05")
INIT_VALUE = "init_value"  # key of a site's `infer` dict holding its starting value

# Prior families are fixed per site; their parameters (NumPyro names) can be overridden. The
# table, with each prior's meaning, is core/model/priors.py (docs/priors.md).
PRIOR_FAMILIES: dict[str, type[dist.Distribution]] = {
    name: getattr(dist, p.family) for name, p in PRIORS.items()
}
DEFAULT_PRIORS: dict[str, dict[str, float]] = {name: dict(p.default) for name, p in PRIORS.items()}


@dataclass(frozen=True)
class ModelSpec:
    """Structure and priors of the model; JSON round-trips so a trace explains itself."""

    likelihood: str = "poisson"
    adstock: str = "geometric"
    max_lag: int = 8
    normalize_adstock: bool = True
    saturation: str = "logistic"
    fourier_order: int = 2
    period_weeks: float = 52.18
    trend: bool = True
    priors: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.adstock not in ADSTOCKS:
            raise ConfigError(f"adstock must be one of {tuple(ADSTOCKS)}, got {self.adstock!r}")
        if self.saturation not in SATURATIONS:
            raise ConfigError(
                f"saturation must be one of {tuple(SATURATIONS)}, got {self.saturation!r}"
            )
        if self.max_lag < 1 or self.fourier_order < 0 or self.period_weeks <= 0:
            raise ConfigError("max_lag must be >= 1, fourier_order >= 0 and period_weeks > 0")
        problems = prior_problems(self.priors)
        if problems:
            raise ConfigError("; ".join(f"priors.{'.'.join(at)}: {msg}" for at, msg in problems))

    @property
    def saturation_params(self) -> tuple[str, ...]:
        """Per-channel saturation sites, as named in the parameter export."""
        return SATURATIONS[self.saturation].param_names

    @property
    def transform_params(self) -> tuple[str, ...]:
        """Per-channel adstock and saturation sites, in the order they are sampled."""
        return transform_parameters(self.adstock, self.saturation)

    @property
    def fourier_names(self) -> list[str]:
        """Names of the seasonality terms, in the order of :func:`fourier_features`."""
        return [f"{f}_{k}" for f in ("sin", "cos") for k in range(1, self.fourier_order + 1)]

    @property
    def channel_params(self) -> tuple[str, ...]:
        """Per-channel parameters of the parameter export, in the order they are written."""
        return ("beta", *self.transform_params)

    def prior(self, name: str) -> dict[str, float]:
        """Parameters of the prior of site ``name`` after overrides."""
        return {**DEFAULT_PRIORS[name], **self.priors.get(name, {})}

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "priors": {k: dict(v) for k, v in self.priors.items()}})

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        return cls(**json.loads(text))

    @classmethod
    def from_section(cls, section: ModelSection) -> ModelSpec:
        """The spec of the config's ``model`` section (after any run-config overrides)."""
        return cls(
            likelihood=section.likelihood,
            adstock=section.adstock,
            max_lag=section.adstock_max_lag,
            saturation=section.saturation,
            fourier_order=section.fourier_order,
            priors=section.priors,
        )


@dataclass(frozen=True)
class Scales:
    """Fixed divisors of the data; reuse an earlier fit's scales to keep parameters comparable."""

    target: float
    spend: dict[str, float]
    controls: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_data(
        cls,
        spend: np.ndarray,
        target: np.ndarray,
        controls: np.ndarray,
        channel_names: Sequence[str],
        control_names: Sequence[str],
    ) -> Scales:
        """Target: its mean. Spend: mean of the non-zero weeks. Controls: largest magnitude."""
        target_scale = float(np.mean(target))
        if not target_scale > 0:
            raise ValueError("the target has no positive mean; cannot scale it")
        nonzero = spend > 0  # (T, C)
        spend_scale = np.where(
            nonzero.any(axis=0), spend.sum(axis=0) / np.maximum(nonzero.sum(axis=0), 1), 1.0
        )
        control_scale = np.abs(controls).max(axis=0, initial=0.0)  # (K,)
        control_scale = np.where(control_scale > 0, control_scale, 1.0)
        return cls(
            target=target_scale,
            spend={c: float(s) for c, s in zip(channel_names, spend_scale, strict=True)},
            controls={c: float(s) for c, s in zip(control_names, control_scale, strict=True)},
        )

    def spend_vector(self, channel_names: Sequence[str]) -> np.ndarray:
        return _lookup(self.spend, channel_names, "spend")

    def control_vector(self, control_names: Sequence[str]) -> np.ndarray:
        return _lookup(self.controls, control_names, "control")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Scales:
        return cls(**json.loads(text))


def _lookup(table: Mapping[str, float], names: Sequence[str], kind: str) -> np.ndarray:
    missing = [n for n in names if n not in table]
    if missing:
        raise ConfigError(f"the given scales have no {kind} scale for {missing}")
    return np.array([table[n] for n in names], dtype=float)


class ModelInputs(NamedTuple):
    """Scaled design arrays (a pytree, so NUTS takes it as one traced argument)."""

    spend: jax.Array  # (T, C) spend / spend scale
    controls: jax.Array  # (T, K) controls / control scale
    trend: jax.Array  # (T,) time, centred on the fit window, one unit = the window's length
    fourier: jax.Array  # (T, 2F) yearly sin/cos terms of calendar time
    window: jax.Array  # (T,) weights of the fit-window weeks (sum 1, zero elsewhere)
    spend_share: jax.Array  # (C,) share of each channel in the window's total spend
    target_scale: jax.Array  # () target scale, for the count rate
    # Lift tests (see core/calibration.py), per test week; L = 0 without calibration.
    # numpy defaults: building a jax array at import would start JAX before it is configured.
    lift_channel: jax.Array = np.zeros((0,), np.int32)  # (L,) channel of each test
    lift_spend: jax.Array = np.zeros((0,), np.float32)  # (L,) spend before the change / scale
    lift_spend_change: jax.Array = np.zeros((0,), np.float32)  # (L,) extra spend / spend scale
    lift: jax.Array = np.zeros((0,), np.float32)  # (L,) measured lift / target scale
    lift_sd: jax.Array = np.zeros((0,), np.float32)  # (L,) its standard error / target scale


def prepare_inputs(
    spend: np.ndarray,
    controls: np.ndarray,
    week_start: pd.DatetimeIndex,
    spec: ModelSpec,
    scales: Scales,
    channel_names: Sequence[str],
    control_names: Sequence[str],
    fit_weeks: int | None = None,
    lift: LiftObservations | None = None,
) -> ModelInputs:
    """Scale raw arrays; the first ``fit_weeks`` weeks (default all) form the fit window.

    ``lift`` (raw units, see :func:`calibration.lift_observations`) adds lift-test
    observations; they belong to the fit window, so pass them only for the fitted weeks.
    """
    n_weeks = spend.shape[0]
    fit_weeks = n_weeks if fit_weeks is None else fit_weeks
    in_window = np.arange(n_weeks) < fit_weeks  # (T,)
    window_spend = spend[in_window].sum(axis=0)  # (C,)
    share = window_spend / window_spend.sum() if window_spend.sum() > 0 else window_spend
    weeks = (pd.DatetimeIndex(week_start) - _EPOCH) / pd.Timedelta(weeks=1)  # (T,)
    f32 = np.float32
    lift = lift if lift is not None else LiftObservations.empty()
    lift_spend_scale = scales.spend_vector(channel_names)[lift.channel_index]  # (L,)
    return ModelInputs(
        spend=jnp.asarray(spend / scales.spend_vector(channel_names), f32),
        controls=jnp.asarray(controls / scales.control_vector(control_names), f32),
        trend=jnp.asarray((np.arange(n_weeks) - (fit_weeks - 1) / 2) / fit_weeks, f32),
        fourier=jnp.asarray(fourier_features(np.asarray(weeks), spec), f32),
        window=jnp.asarray(in_window / fit_weeks, f32),
        spend_share=jnp.asarray(np.maximum(share, 1e-3), f32),
        target_scale=jnp.asarray(scales.target, f32),
        lift_channel=jnp.asarray(lift.channel_index, jnp.int32),
        lift_spend=jnp.asarray(lift.spend / lift_spend_scale, f32),
        lift_spend_change=jnp.asarray(lift.spend_change / lift_spend_scale, f32),
        lift=jnp.asarray(lift.lift / scales.target, f32),
        lift_sd=jnp.asarray(lift.lift_sd / scales.target, f32),
    )


def fourier_features(weeks: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """sin/cos of 2 pi k t / period for k = 1..order: (T,) -> (T, 2 * order)."""
    k = np.arange(1, spec.fourier_order + 1)  # (F,)
    angle = 2 * np.pi * weeks[:, None] * k[None, :] / spec.period_weeks  # (T, F)
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)


def adstock(u: jax.Array, params: Mapping[str, jax.Array], spec: ModelSpec) -> jax.Array:
    """Apply the configured adstock: (T, C) scaled spend, (..., C) parameters -> (..., T, C)."""
    form = ADSTOCKS[spec.adstock]
    values = (params[p] for p in form.param_names)
    return form.jax_curve(u, *values, spec.max_lag, spec.normalize_adstock)


def saturation(a: jax.Array, params: Mapping[str, jax.Array], spec: ModelSpec) -> jax.Array:
    """Apply the configured saturation; ``params`` holds the per-channel (..., C) arrays."""
    form = SATURATIONS[spec.saturation]
    return form.jax_curve(a, *(params[p][..., None, :] for p in form.param_names))


def media_response(u: jax.Array, params: Mapping[str, jax.Array], spec: ModelSpec) -> jax.Array:
    """s(adstock(u)): (T, C) scaled spend -> (..., T, C) response before ``beta``.

    ``params`` holds the per-channel (..., C) arrays of ``spec.transform_params``.
    """
    return saturation(adstock(u, params, spec), params, spec)


def lift_prediction(
    beta: jax.Array,
    params: Mapping[str, jax.Array],
    inputs: ModelInputs,
    spec: ModelSpec,
) -> jax.Array:
    """Predicted lift per week, beta_c (s_c(A (x + dx)) - s_c(A x)): (C,) params -> (L,).

    Steady state of the adstock: constant weekly spend x has adstock A x (for the geometric
    adstock, A = 1 when the weights are normalised and sum_l decay^l otherwise). The build-up
    in a test's first weeks and the carry-over after it are ignored, as in PyMC-Marketing's
    lift-test calibration.
    """
    ch = inputs.lift_channel  # (L,)
    per_test = {p: v[ch] for p, v in params.items()}  # (L,) each
    form = ADSTOCKS[spec.adstock]
    values = (per_test[p] for p in form.param_names)
    gain = form.jax_steady_state(*values, spec.max_lag, spec.normalize_adstock)  # (L,)

    def s(a):  # (L,) adstock -> (L,) saturation, each test with its channel's parameters
        return saturation(a[None, :], per_test, spec)[0]

    x, dx = inputs.lift_spend, inputs.lift_spend_change  # (L,)
    return beta[ch] * (s(gain * (x + dx)) - s(gain * x))


class HillHalfSaturation(constraints.Constraint):
    """``hill_k > 0``, moved by NUTS in ``z = (1 + n) log(mean_adstock / k)`` instead of log k.

    Where the Hill curve is steep (large n) the data pin log k to about 1/n of what they do
    where it is flat: a funnel in (log k, n) that diverged on channels with bursts of spend
    (issue 14); scaled by 1 + n it is a band. The set is that of ``constraints.positive``, only
    the bijection (and so its Jacobian) differs: the prior stays the Gamma on ``hill_k``.
    ``mmm`` replays the model to constrain draws (it has deterministic sites), so a support
    that depends on other sites is honoured there too.
    """

    def __init__(self, mean_adstock: jax.Array, n: jax.Array) -> None:
        self.mean_adstock, self.n = mean_adstock, n

    def __call__(self, x):
        return x > 0

    def feasible_like(self, prototype):
        return jnp.broadcast_to(self.mean_adstock, jnp.shape(prototype))

    def tree_flatten(self):
        return (self.mean_adstock, self.n), (("mean_adstock", "n"), {})


@biject_to.register(HillHalfSaturation)
def _hill_half_saturation_bijection(constraint: HillHalfSaturation) -> Transform:
    """z -> mean_adstock * exp(-z / (1 + n)); z = 0 is half saturation at the mean adstock."""
    return ComposeTransform(
        [
            AffineTransform(0.0, -1.0 / (1.0 + constraint.n)),
            ExpTransform(),
            AffineTransform(0.0, constraint.mean_adstock),
        ]
    )


def _sample_saturation(spec: ModelSpec, mean_adstock: jax.Array) -> dict[str, jax.Array]:
    """The per-channel saturation sites (C,) with their priors; Hill's ``hill_n`` comes first,
    as ``hill_k``'s sampler coordinate (:class:`HillHalfSaturation`) is scaled by it."""
    if spec.saturation != "hill":
        return {p: numpyro.sample(p, prior_distribution(spec, p)) for p in spec.saturation_params}
    n = numpyro.sample("hill_n", prior_distribution(spec, "hill_n"))
    k_prior = prior_distribution(spec, "hill_k")
    k_prior.support = HillHalfSaturation(mean_adstock, n)  # the same set, another bijection
    return {"hill_k": numpyro.sample("hill_k", k_prior), "hill_n": n}


def positive_rate(mu: jax.Array) -> jax.Array:
    """Smooth max(mu, 0) for the count rate (keeps gradients, unlike clipping)."""
    return jax.nn.softplus(RATE_SHARPNESS * mu) / RATE_SHARPNESS


class HurdlePoisson(dist.Distribution):
    """Zero vs non-zero from a Bernoulli, positives from a zero-truncated Poisson(rate).

    ``P(y > 0) = 1 - exp(-exp(shift) * rate)``, so ``shift = 0`` is exactly a Poisson and a
    negative shift adds zeros beyond what the rate implies (zero-inflated weekly series).
    """

    arg_constraints = {"rate": constraints.positive, "shift": constraints.real}  # noqa: RUF012
    support = constraints.nonnegative_integer

    def __init__(self, rate, shift, *, validate_args=None):
        self.rate, self.shift = promote_shapes(rate, shift)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(rate), jnp.shape(shift))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        # Zero-truncated Poisson, exactly: the first arrival time T of a Poisson process on
        # [0, 1] given one arrival, plus Poisson(rate * (1 - T)) arrivals after it.
        shape = sample_shape + self.batch_shape
        k_hurdle, k_first, k_rest = jax.random.split(key, 3)
        rate = jnp.broadcast_to(self.rate, shape)
        p_positive = -jnp.expm1(-jnp.exp(self.shift) * self.rate)
        positive = jax.random.bernoulli(k_hurdle, p_positive, shape)
        v = jax.random.uniform(k_first, shape)
        first = -jnp.log1p(v * jnp.expm1(-rate)) / rate
        count = 1 + jax.random.poisson(k_rest, rate * (1.0 - first), shape)
        return jnp.where(positive, count, 0)

    @validate_sample
    def log_prob(self, value):
        hurdle_rate = jnp.exp(self.shift) * self.rate
        log_zero = -hurdle_rate
        log_positive = (
            jnp.log(-jnp.expm1(-hurdle_rate))
            + value * jnp.log(self.rate)
            - self.rate
            - jax.scipy.special.gammaln(value + 1.0)
            - jnp.log(-jnp.expm1(-self.rate))
        )
        return jnp.where(value == 0, log_zero, log_positive)


def prior_distribution(spec: ModelSpec, name: str, **scale_by: jax.Array) -> dist.Distribution:
    """The prior of site ``name`` (config overrides applied), parameters multiplied by
    ``scale_by`` (the media effect's rate by 1 / spend share)."""
    params = spec.prior(name)
    return PRIOR_FAMILIES[name](**{k: v * scale_by.get(k, 1.0) for k, v in params.items()})


def observation(
    spec: ModelSpec, mu: jax.Array, target_scale: jax.Array, markets: int | None = None
) -> dist.Distribution:
    """Distribution of the target in original units given the scaled mean ``mu`` (T,).

    With ``markets`` (the pooled model), ``mu`` is (M, T), ``target_scale`` (M, 1), and each
    market has its own noise parameter (M,).
    """

    def noise(name: str) -> jax.Array:
        if markets is None:
            return numpyro.sample(name, prior_distribution(spec, name))
        return numpyro.sample(name, prior_distribution(spec, name).expand([markets]))[
            :, None
        ]  # (M, 1)

    if spec.likelihood == "normal":
        return dist.Normal(target_scale * mu, target_scale * noise("sigma"))
    if spec.likelihood == "student_t":  # 2 + nu_above_2 degrees of freedom: a finite variance
        df = MIN_STUDENT_T_DF + noise("nu_above_2")
        return dist.StudentT(df, target_scale * mu, target_scale * noise("sigma"))
    rate = target_scale * positive_rate(mu)  # (T,) or (M, T)
    if spec.likelihood == "poisson":
        return dist.Poisson(rate)
    if spec.likelihood == "negbinomial":
        return dist.NegativeBinomial2(rate, noise("dispersion") ** -2)
    return HurdlePoisson(rate, noise("hurdle_shift"))


def init_to_model_value(site=None):
    """Prior means, except the flat-measure coordinates, which start where ``mmm`` says.

    The level starts at the scaled target's mean and each slope at a tenth of its channel's
    spend share. Those starting values travel in the sites' ``infer`` entry, computed from the
    model's (traced) inputs, so no data is baked into the compiled program as a constant: a
    refit on new data of the same shape reuses the persistent compilation cache.

    Means are closed forms. A median of prior draws would compile a Gamma sampler (a rejection
    loop) and a key split per site: 3 of a cold fit's 7 seconds of compiling. Every chain
    starts at the same point and parts from the others at its first momentum draw; the prior
    medians of 15 draws spread them by only about 0.3 prior standard deviations anyway.
    """
    if site is None:  # NumPyro's protocol: a strategy called without a site returns itself
        return partial(init_to_model_value)
    if site["type"] != "sample" or site["is_observed"]:
        return None
    if INIT_VALUE in site["infer"]:
        return site["infer"][INIT_VALUE]
    shape = site["kwargs"].get("sample_shape", ()) + site["fn"].shape()
    return jnp.broadcast_to(site["fn"].mean, shape)


init_strategy = partial(init_to_model_value)  # NumPyro inspects strategies as partials


def mmm(inputs: ModelInputs, spec: ModelSpec, y: jax.Array | None = None) -> None:
    """The generative model; ``y`` (T,) is the target in original units, None to predict.

    The prior is on ``intercept`` and ``media_effect`` (average weekly contribution of each
    channel), but NUTS moves in the coordinates the data identify almost independently:
    ``level = intercept + sum(media_effect)`` and ``media_slope = beta * mean_t(a s'(a))``, the
    change of the average contribution per relative change of spend. Both get flat measures
    and the generative prior is added back with the Jacobian of the change of variables, so
    the posterior is exactly that of the generative model. For a saturation whose registry
    entry says ``sampled_scale="level"`` (Hill), ``media_slope = beta * mean_t(s(a))``, the
    average contribution itself: what a flighted channel's on/off weeks identify; and Hill's
    ``hill_k`` moves in ``(1 + n) log(mean adstock / k)`` (:class:`HillHalfSaturation`).
    """
    n_weeks, n_channels = inputs.spend.shape
    with numpyro.plate("channel", n_channels):
        transform = {  # (C,) each
            p: numpyro.sample(p, prior_distribution(spec, p))
            for p in ADSTOCKS[spec.adstock].param_names
        }
        adstocked = adstock(inputs.spend, transform, spec)  # (T, C)
        transform |= _sample_saturation(spec, inputs.window @ adstocked)
        slope = numpyro.sample(
            "media_slope",
            dist.ImproperUniform(constraints.positive, (n_channels,), ()),
            infer={INIT_VALUE: 0.1 * inputs.spend_share},
        )  # (C,)
    level = numpyro.sample(
        "level", dist.ImproperUniform(constraints.real, (), ()), infer={INIT_VALUE: jnp.ones(())}
    )

    if SATURATIONS[spec.saturation].sampled_scale == "level":
        response = saturation(adstocked, transform, spec)  # (T, C)
        slope_per_beta = inputs.window @ response  # (C,)
    else:  # s(a) and a * s'(a), both (T, C)
        response, marginal = jax.jvp(
            lambda a: saturation(a, transform, spec), (adstocked,), (adstocked,)
        )
        slope_per_beta = inputs.window @ marginal
    beta = numpyro.deterministic("beta", slope / jnp.maximum(slope_per_beta, 1e-6))
    effect = numpyro.deterministic("media_effect", beta * (inputs.window @ response))  # (C,)
    intercept = numpyro.deterministic("intercept", level - effect.sum())
    effect_prior = prior_distribution(spec, "media_effect", rate=1.0 / inputs.spend_share)
    numpyro.factor(
        "prior_intercept_effect",
        prior_distribution(spec, "intercept").log_prob(intercept)
        + effect_prior.log_prob(effect).sum()
        + jnp.log(effect / slope).sum(),  # log |d(intercept, effect) / d(level, slope)|
    )

    mu = intercept + response @ beta  # (T,)
    if spec.trend:
        mu = mu + numpyro.sample("trend", prior_distribution(spec, "trend")) * inputs.trend
    if spec.fourier_order:
        with numpyro.plate("fourier", 2 * spec.fourier_order):
            seasonality = numpyro.sample(
                "seasonality", prior_distribution(spec, "seasonality")
            )  # (2F,)
        mu = mu + inputs.fourier @ seasonality
    if inputs.controls.shape[1]:
        with numpyro.plate("control", inputs.controls.shape[1]):
            control_coef = numpyro.sample(
                "control_coef", prior_distribution(spec, "control_coef")
            )  # (K,)
        mu = mu + inputs.controls @ control_coef

    if inputs.lift.shape[0]:  # static: calibration by lift tests, when there are any
        with numpyro.plate("lift_tests", inputs.lift.shape[0]):
            predicted = lift_prediction(beta, transform, inputs, spec)  # (L,)
            numpyro.sample("lift_test", dist.Normal(predicted, inputs.lift_sd), obs=inputs.lift)

    likelihood = observation(spec, mu, inputs.target_scale)
    with numpyro.plate("week", n_weeks):
        numpyro.sample("y", likelihood, obs=y)
