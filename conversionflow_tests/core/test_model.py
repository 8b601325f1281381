"""Model building blocks against explicit numpy formulas and the contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density

from conversionflow_dagster.core.errors import ConfigError
from conversionflow_dagster.core.model.mmm import (
    HurdlePoisson,
    ModelSpec,
    Scales,
    fourier_features,
    mmm,
)
from conversionflow_dagster.core.model.transforms import (
    geometric_adstock_jax,
    hill_saturation_jax,
    logistic_saturation_jax,
)
from conversionflow_dagster.core.synthetic.panel import adstock_loop, model_inputs, simulate_panel


@pytest.mark.parametrize("normalize", [True, False])
def test_vectorised_adstock_equals_loop(normalize):
    rng = np.random.default_rng(0)
    u = rng.gamma(2.0, 1.0, (40, 5)) * (rng.random((40, 5)) < 0.7)
    decay = np.array([0.0, 0.1, 0.4, 0.7, 0.95])
    got = geometric_adstock_jax(jnp.asarray(u), jnp.asarray(decay), 8, normalize)
    np.testing.assert_allclose(got, adstock_loop(u, decay, 8, normalize), rtol=1e-5, atol=1e-6)


def test_adstock_batches_over_draws():
    u = jnp.ones((20, 3))
    decay = jnp.array([[0.2, 0.5, 0.8], [0.1, 0.3, 0.6]])  # (draws, C)
    out = geometric_adstock_jax(u, decay, 4)
    assert out.shape == (2, 20, 3)
    np.testing.assert_allclose(out[1], geometric_adstock_jax(u, decay[1], 4), rtol=1e-6)


@pytest.mark.parametrize("decay", [0.3, 0.8])
def test_steady_state_matches_contract(decay):
    u = jnp.full((30, 1), 2.5)
    weights = decay ** np.arange(8)
    normalised = geometric_adstock_jax(u, jnp.array([decay]), 8, normalize=True)
    raw = geometric_adstock_jax(u, jnp.array([decay]), 8, normalize=False)
    np.testing.assert_allclose(normalised[-1, 0], 2.5, rtol=1e-6)  # a = u
    np.testing.assert_allclose(raw[-1, 0], 2.5 * weights.sum(), rtol=1e-6)  # a = u sum decay^l


def test_saturation_formulas_of_the_contract():
    a = jnp.array([0.0, 0.3, 1.0, 2.5])
    lam, k, n = 1.7, 0.8, 2.2
    logistic = (1 - np.exp(-lam * a)) / (1 + np.exp(-lam * a))
    np.testing.assert_allclose(logistic_saturation_jax(a, lam), logistic, rtol=1e-6, atol=1e-7)
    hill = np.asarray(a) ** n / (k**n + np.asarray(a) ** n)
    np.testing.assert_allclose(hill_saturation_jax(a, k, n), hill, rtol=1e-6)


def test_hill_gradient_is_finite_at_zero_adstock():
    grad = jax.grad(lambda n: hill_saturation_jax(jnp.array([0.0, 1.0]), 0.8, n).sum())(1.5)
    assert np.isfinite(grad)


def test_hill_is_finite_deep_in_a_carry_over_tail():
    """A small decay leaves adstock like decay^7 ~ 1e-30 in a flight's last weeks; in float32
    (k / a)^n overflows there and its gradient was NaN, which NUTS counted as divergences."""
    x = np.array([1e-30, 1e-12, 0.5, 50.0])
    a, k, n = jnp.asarray(x, jnp.float32), jnp.float32(0.8), jnp.float32(2.5)
    expected = x**2.5 / (0.8**2.5 + x**2.5)  # float64; 1.7e-75 is 0 in float32
    np.testing.assert_allclose(hill_saturation_jax(a, k, n), expected, rtol=1e-5, atol=1e-37)
    grads = jax.grad(lambda k, n: hill_saturation_jax(a, k, n).sum(), argnums=(0, 1))(k, n)
    assert np.isfinite(grads).all()


def test_fourier_features_follow_the_calendar():
    spec = ModelSpec(fourier_order=2, period_weeks=52.18)
    feats = fourier_features(np.array([0.0, 52.18, 13.045]), spec)
    assert feats.shape == (3, 4)
    np.testing.assert_allclose(feats[0], feats[1], atol=1e-9)  # one period later: same season
    np.testing.assert_allclose(feats[2, 0], 1.0, atol=1e-9)  # quarter period: sin = 1


def test_hurdle_poisson_is_a_distribution_and_nests_poisson():
    values = jnp.arange(60)
    d = HurdlePoisson(jnp.array(3.0), jnp.array(-0.7))
    np.testing.assert_allclose(jnp.exp(d.log_prob(values)).sum(), 1.0, rtol=1e-5)
    nested = HurdlePoisson(jnp.array(3.0), jnp.array(0.0)).log_prob(values)
    poisson = values * np.log(3.0) - 3.0 - jax.scipy.special.gammaln(values + 1.0)
    np.testing.assert_allclose(nested, poisson, rtol=1e-5, atol=1e-5)
    draws = np.asarray(d.sample(jax.random.PRNGKey(0), (20000,)))
    expected = jnp.exp(d.log_prob(values))
    np.testing.assert_allclose(draws.mean(), (values * expected).sum(), rtol=0.03)
    np.testing.assert_allclose((draws == 0).mean(), expected[0], atol=0.01)


def test_spec_validates_and_round_trips():
    spec = ModelSpec(
        likelihood="hurdle_poisson",
        saturation="hill",
        priors={"adstock_decay": {"concentration1": 1.0}},
    )
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert spec.prior("adstock_decay") == {"concentration1": 1.0, "concentration0": 2.0}
    assert spec.saturation_params == ("hill_k", "hill_n")
    with pytest.raises(ConfigError, match="likelihood"):
        ModelSpec(likelihood="gaussian")
    with pytest.raises(ConfigError, match="unknown prior 'decay'"):
        ModelSpec(priors={"decay": {"a": 1.0}})
    with pytest.raises(ConfigError, match="unknown parameter"):
        ModelSpec(priors={"adstock_decay": {"alpha": 1.0}})


def test_scales_from_data_and_reuse():
    panel = simulate_panel(60, 5, seed=1)
    scales = Scales.from_data(
        panel.spend, panel.target, panel.controls, panel.channel_names, panel.control_names
    )
    tv = panel.spend[:, 4]
    assert scales.spend["ch 4"] == pytest.approx(tv[tv > 0].mean())  # zero weeks excluded
    assert scales.target == pytest.approx(panel.target.mean())
    assert scales.controls == {"holiday": 1.0, "promo": 1.0}
    assert Scales.from_json(scales.to_json()) == scales
    with pytest.raises(ConfigError, match="no spend scale"):
        scales.spend_vector(["ch 0", "radio"])


def test_prior_override_changes_the_log_density():
    panel = simulate_panel(30, 2, seed=2)
    spec = ModelSpec()
    inputs = model_inputs(panel, spec)
    params = {
        "adstock_decay": jnp.array([0.3, 0.6]),
        "saturation_lam": jnp.array([1.5, 2.0]),
        "media_slope": jnp.array([0.05, 0.05]),
        "level": jnp.array(1.0),
        "trend": jnp.array(0.0),
        "seasonality": jnp.zeros(4),
        "control_coef": jnp.zeros(2),
    }
    y = jnp.asarray(panel.target)

    def logp(s):
        return log_density(mmm, (inputs,), {"spec": s, "y": y}, params)[0]

    tighter = ModelSpec(priors={"adstock_decay": {"concentration1": 20.0, "concentration0": 20.0}})
    assert np.isfinite(logp(spec))
    assert logp(tighter) != pytest.approx(logp(spec))
