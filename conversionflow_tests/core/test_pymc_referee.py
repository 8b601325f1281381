"""An independent PyMC implementation of the MMM must give the NumPyro model's log density.

The referee is written from docs/contracts.md in the model's *generative* coordinates
(``intercept``, ``media_effect`` = average weekly contribution), while NumPyro samples in
``level`` / ``media_slope`` with flat measures and adds the prior back with the Jacobian. So for
the same point the two must differ by exactly ``sum_c log(media_effect_c / media_slope_c)``,
which the test computes with plain numpy. ``media_slope`` is ``beta * mean_t(a s'(a))``, and for
the Hill curve ``beta * mean_t(s(a))`` (its average contribution, so that term is zero). Only
the data preparation (scaling, Fourier terms) is shared. Both sides work in float64 and in
constrained space without Jacobians.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from numpyro.infer.util import log_density

from conversionflow_dagster.core.model.mmm import LIKELIHOODS, ModelSpec, mmm
from conversionflow_dagster.core.synthetic.panel import adstock_loop, model_inputs, simulate_panel

MAX_LAG = 8


def lag_tensor(u: np.ndarray) -> np.ndarray:
    """(L, T, C): u shifted down by l weeks, zeros before the data."""
    out = np.zeros((MAX_LAG, *u.shape))
    for lag in range(MAX_LAG):
        out[lag, lag:] = u[: u.shape[0] - lag]
    return out


def saturation_np(a, sat):
    """s(a) and a * s'(a) from the contract formulas."""
    if "saturation_lam" in sat:
        lam = sat["saturation_lam"]
        e = np.exp(-lam * a)
        s = (1 - e) / (1 + e)
        return s, a * 2 * lam * e / (1 + e) ** 2
    k, n = sat["hill_k"], sat["hill_n"]
    s = a**n / (k**n + a**n)
    return s, n * s * (1 - s)


def referee_logp(spec, inputs, y, natural):
    """Joint log density of the generative model, written in PyMC."""
    u = np.asarray(inputs.spend, float)
    window = np.asarray(inputs.window, float)
    share = np.asarray(inputs.spend_share, float)
    ts = float(inputs.target_scale)
    n_channels = u.shape[1]
    p = spec.prior
    with pm.Model() as model:
        decay = pm.Beta(
            "adstock_decay",
            alpha=p("adstock_decay")["concentration1"],
            beta=p("adstock_decay")["concentration0"],
            shape=n_channels,
            default_transform=None,
        )
        weights = decay[None, :] ** np.arange(MAX_LAG)[:, None]
        weights = weights / weights.sum(axis=0)
        a = (lag_tensor(u) * weights[:, None, :]).sum(axis=0)  # (T, C)
        if spec.saturation == "logistic":
            lam_prior = p("saturation_lam")
            lam = pm.Gamma(
                "saturation_lam",
                alpha=lam_prior["concentration"],
                beta=lam_prior["rate"],
                shape=n_channels,
                default_transform=None,
            )
            s = (1 - pt.exp(-lam * a)) / (1 + pt.exp(-lam * a))
        else:
            k = pm.Gamma(
                "hill_k",
                alpha=p("hill_k")["concentration"],
                beta=p("hill_k")["rate"],
                shape=n_channels,
                default_transform=None,
            )
            n = pm.Gamma(
                "hill_n",
                alpha=p("hill_n")["concentration"],
                beta=p("hill_n")["rate"],
                shape=n_channels,
                default_transform=None,
            )
            s = a**n / (k**n + a**n)
        effect = pm.Gamma(
            "media_effect",
            alpha=p("media_effect")["concentration"],
            beta=p("media_effect")["rate"] / share,
            shape=n_channels,
            default_transform=None,
        )
        beta = effect / pt.dot(window, s)
        intercept = pm.Normal(
            "intercept", p("intercept")["loc"], p("intercept")["scale"], default_transform=None
        )
        trend = pm.Normal("trend", p("trend")["loc"], p("trend")["scale"], default_transform=None)
        season = pm.Normal(
            "seasonality",
            p("seasonality")["loc"],
            p("seasonality")["scale"],
            shape=2 * spec.fourier_order,
            default_transform=None,
        )
        coef = pm.Normal(
            "control_coef",
            p("control_coef")["loc"],
            p("control_coef")["scale"],
            shape=inputs.controls.shape[1],
            default_transform=None,
        )
        mu = (
            intercept
            + pt.dot(s, beta)
            + trend * np.asarray(inputs.trend, float)
            + pt.dot(np.asarray(inputs.fourier, float), season)
            + pt.dot(np.asarray(inputs.controls, float), coef)
        )
        rate = ts * pt.log1p(pt.exp(20.0 * mu)) / 20.0
        if spec.likelihood == "normal":
            sigma = pm.HalfNormal("sigma", p("sigma")["scale"], default_transform=None)
            pm.Normal("y", ts * mu, ts * sigma, observed=y)
        elif spec.likelihood == "student_t":
            sigma = pm.HalfNormal("sigma", p("sigma")["scale"], default_transform=None)
            nu = pm.Gamma(
                "nu_above_2",
                alpha=p("nu_above_2")["concentration"],
                beta=p("nu_above_2")["rate"],
                default_transform=None,
            )
            pm.StudentT("y", nu=2.0 + nu, mu=ts * mu, sigma=ts * sigma, observed=y)
        elif spec.likelihood == "poisson":
            pm.Poisson("y", rate, observed=y)
        elif spec.likelihood == "negbinomial":
            dispersion = pm.HalfNormal(
                "dispersion", p("dispersion")["scale"], default_transform=None
            )
            pm.NegativeBinomial("y", mu=rate, alpha=dispersion**-2, observed=y)
        else:
            shift = pm.Normal(
                "hurdle_shift",
                p("hurdle_shift")["loc"],
                p("hurdle_shift")["scale"],
                default_transform=None,
            )

            def hurdle_logp(value, rate, shift):
                p_zero = pt.exp(-pt.exp(shift) * rate)
                positive = (
                    pt.log1p(-p_zero)
                    + pm.logp(pm.Poisson.dist(rate), value)
                    - pt.log1p(-pt.exp(-rate))
                )
                return pt.switch(pt.eq(value, 0), pt.log(p_zero), positive)

            pm.CustomDist("y", rate, shift, logp=hurdle_logp, observed=y)
    point = {name: natural[name] for name in model.initial_point()}
    # FAST_COMPILE: the graph is evaluated once, a C build would only cost time.
    return float(model.compile_logp(jacobian=False, mode="FAST_COMPILE")(point))


@pytest.mark.parametrize("saturation", ["logistic", "hill"])
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_numpyro_and_pymc_agree_on_the_log_density(likelihood, saturation):
    panel = simulate_panel(
        40,
        3,
        seed=3,
        likelihood=likelihood,
        saturation=saturation,
        baseline=2.0 if likelihood == "hurdle_poisson" else 320.0,
    )
    if likelihood == "hurdle_poisson":
        assert 0 < (panel.target == 0).sum() < len(panel.target)
    spec = ModelSpec(likelihood=likelihood, saturation=saturation)
    inputs = model_inputs(panel, spec)
    rng = np.random.default_rng(4)
    sat = (
        {"saturation_lam": rng.uniform(0.8, 3.0, 3)}
        if saturation == "logistic"
        else {"hill_k": rng.uniform(0.5, 1.5, 3), "hill_n": rng.uniform(0.8, 2.5, 3)}
    )
    params = {
        "adstock_decay": rng.uniform(0.1, 0.8, 3),
        **sat,
        "media_slope": rng.uniform(0.02, 0.1, 3),
        "level": np.array(0.95),
        "trend": np.array(0.05),
        "seasonality": rng.normal(0, 0.05, 4),
        "control_coef": np.array([0.2, 0.1]),
        "sigma": np.array(0.08),
        "dispersion": np.array(0.15),
        "hurdle_shift": np.array(-0.4),
        "nu_above_2": np.array(3.5),
    }
    # The generative coordinates of the same point, with the contract formulas in numpy.
    u = np.asarray(inputs.spend, float)
    s, marginal = saturation_np(adstock_loop(u, params["adstock_decay"], MAX_LAG), sat)
    window = np.asarray(inputs.window, float)
    beta = params["media_slope"] / (window @ (s if saturation == "hill" else marginal))
    effect = beta * (window @ s)
    natural = {
        **{k: v for k, v in params.items() if k not in ("media_slope", "level")},
        "media_effect": effect,
        "intercept": params["level"] - effect.sum(),
    }
    expected = (
        referee_logp(spec, inputs, panel.target, natural)
        + np.log(effect / params["media_slope"]).sum()
    )

    with jax.enable_x64(True):
        inputs64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), inputs)
        got, trace = log_density(
            mmm, (inputs64,), {"spec": spec, "y": jnp.asarray(panel.target)}, params
        )
    assert set(trace) >= set(params) - {"sigma", "dispersion", "hurdle_shift", "nu_above_2"}
    np.testing.assert_allclose(trace["beta"]["value"], beta, rtol=1e-8)
    np.testing.assert_allclose(float(got), expected, rtol=1e-9, atol=1e-6)
