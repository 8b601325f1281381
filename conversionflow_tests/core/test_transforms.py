"""The transform registry: each form agrees with the others, and every stage uses its names.

Parameter values are drawn from each parameter's registered prior, so a new transform is
tested here without adding cases.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro import handlers

from conversionflow_dagster.core.config import ModelSection
from conversionflow_dagster.core.model.fitting import CHANNEL_SITES
from conversionflow_dagster.core.model.mmm import PRIOR_FAMILIES, ModelSpec, mmm
from conversionflow_dagster.core.model.transforms import (
    ADSTOCKS,
    PARAMETERS,
    SATURATIONS,
    Parameter,
)
from conversionflow_dagster.core.parameter_export import (
    ADSTOCK_TYPES,
    DRAW_PARAMETERS,
    PARAMETER_RANGES,
)
from conversionflow_dagster.core.synthetic.panel import model_inputs, simulate_panel

N_DRAWS = 25


def prior_draws(params: tuple[Parameter, ...], seed: int = 0) -> tuple[np.ndarray, ...]:
    """(N_DRAWS,) float64 values of each parameter, drawn from its default prior."""
    keys = jax.random.split(jax.random.PRNGKey(seed), len(params))
    return tuple(
        np.asarray(getattr(dist, p.family)(**p.prior).sample(key, (N_DRAWS,)), dtype=float)
        for p, key in zip(params, keys, strict=True)
    )


@pytest.mark.parametrize("name", SATURATIONS)
def test_numpy_curve_agrees_with_jax_curve(name):
    form = SATURATIONS[name]
    theta = prior_draws(form.params)
    a = np.concatenate([[0.0, 1e-3], np.linspace(0.05, 6.0, 60)])[:, None]  # (A, 1)
    with jax.enable_x64(True):
        jax_values = np.asarray(form.jax_curve(jnp.asarray(a), *map(jnp.asarray, theta)))
    numpy_values = form.numpy_curve(a, *theta)
    assert numpy_values.shape == (len(a), N_DRAWS)
    np.testing.assert_allclose(numpy_values, jax_values, rtol=1e-12, atol=1e-15)
    assert np.all(numpy_values[0] == 0.0)  # no spend, no response
    assert np.all((numpy_values >= 0) & (numpy_values < 1))


@pytest.mark.parametrize("name", SATURATIONS)
def test_slope_matches_a_finite_difference(name):
    form = SATURATIONS[name]
    theta = prior_draws(form.params, seed=1)
    a, h = np.linspace(0.05, 6.0, 60)[:, None], 1e-6
    numeric = (form.numpy_curve(a + h, *theta) - form.numpy_curve(a - h, *theta)) / (2 * h)
    np.testing.assert_allclose(form.numpy_slope(a, *theta), numeric, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("name", SATURATIONS)
def test_money_units_fold_the_scale_into_the_parameters(name):
    """s(m x; theta) = s(x; theta'), and the slope in money is m s'(m x; theta)."""
    form = SATURATIONS[name]
    theta = prior_draws(form.params, seed=2)
    scale = np.random.default_rng(3).uniform(1e-5, 1e-2, N_DRAWS)  # adstock per unit of money
    folded = form.to_money_units(scale, *theta)
    assert len(folded) == len(theta)
    x = np.linspace(0.0, 5e3, 40)[:, None]  # weekly spend in money
    np.testing.assert_allclose(
        form.numpy_curve(x, *folded), form.numpy_curve(scale * x, *theta), rtol=1e-12, atol=1e-15
    )
    x = x[1:]
    np.testing.assert_allclose(
        form.numpy_slope(x, *folded), scale * form.numpy_slope(scale * x, *theta), rtol=1e-10
    )


@pytest.mark.parametrize("name", ADSTOCKS)
@pytest.mark.parametrize("normalize", [True, False])
def test_steady_state_is_the_adstock_of_a_long_constant_spend(name, normalize):
    form = ADSTOCKS[name]
    theta = prior_draws(form.params, seed=4)
    max_lag, u = 8, 2.5
    with jax.enable_x64(True):
        spend = jnp.full((4 * max_lag, N_DRAWS), u)  # the draws stand in for channels
        adstocked = form.jax_curve(spend, *map(jnp.asarray, theta), max_lag, normalize)
        jax_factor = form.jax_steady_state(*map(jnp.asarray, theta), max_lag, normalize)
    numpy_factor = form.numpy_steady_state(*theta, max_lag, normalize)
    assert numpy_factor.shape == (N_DRAWS,)
    np.testing.assert_allclose(np.asarray(adstocked)[-1], u * numpy_factor, rtol=1e-12)
    np.testing.assert_allclose(jax_factor, numpy_factor, rtol=1e-12)


@pytest.mark.parametrize("parameter", PARAMETERS.values(), ids=list(PARAMETERS))
def test_each_parameter_is_documented_and_its_prior_respects_its_bounds(parameter):
    assert parameter.meaning.strip()
    lower, lower_inclusive, upper, upper_inclusive = parameter.bounds
    (values,) = prior_draws((parameter,), seed=5)
    assert np.all(values >= lower if lower_inclusive else values > lower)
    if upper is not None:
        assert np.all(values <= upper if upper_inclusive else values < upper)


def test_transform_names_are_unique_across_the_registry():
    names = [p.name for t in (*ADSTOCKS.values(), *SATURATIONS.values()) for p in t.params]
    assert len(names) == len(set(names)) == len(PARAMETERS)
    assert all(key == form.name for key, form in (*ADSTOCKS.items(), *SATURATIONS.items()))


@pytest.mark.parametrize("name", SATURATIONS)
def test_model_export_and_config_use_the_registry_names(name):
    spec = ModelSpec(saturation=name)
    registry = ADSTOCKS[spec.adstock].param_names + SATURATIONS[name].param_names
    assert spec.saturation_params == SATURATIONS[name].param_names
    assert spec.channel_params == DRAW_PARAMETERS[spec.adstock, name] == ("beta", *registry)
    assert ModelSection(saturation=name).saturation == name
    assert ModelSpec.from_section(ModelSection(saturation=name)).adstock == "geometric"
    assert set(registry) <= set(CHANNEL_SITES)  # the trace gives them a channel dimension

    # the model samples exactly these per-channel sites, with the registered priors
    panel = simulate_panel(20, 2, seed=0, saturation=name)
    flat = {"media_slope": jnp.full(2, 0.05), "level": jnp.array(1.0)}  # no sampler for these
    model = handlers.seed(handlers.substitute(mmm, data=flat), rng_seed=0)
    trace = handlers.trace(model).get_trace(model_inputs(panel, spec), spec)
    channel_sites = [
        site_name
        for site_name, site in trace.items()
        if site["type"] == "sample"
        and any(frame.name == "channel" for frame in site["cond_indep_stack"])
    ]
    # (Hill samples hill_n before hill_k: hill_k's sampler coordinate is scaled by n)
    assert sorted(channel_sites) == sorted([*registry, "media_slope"])
    for site_name in registry:
        prior = PARAMETERS[site_name]
        assert type(trace[site_name]["fn"].base_dist) is getattr(dist, prior.family)  # plate
        assert spec.prior(site_name) == dict(prior.prior)


def test_export_and_config_accept_exactly_the_registered_types():
    assert tuple(ADSTOCKS) == ADSTOCK_TYPES
    assert set(DRAW_PARAMETERS) == {(a, s) for a in ADSTOCKS for s in SATURATIONS}
    assert {n: PARAMETER_RANGES[n] for n in PARAMETERS} == {
        n: p.bounds for n, p in PARAMETERS.items()
    }
    assert {n: PRIOR_FAMILIES[n] for n in PARAMETERS} == {
        n: getattr(dist, p.family) for n, p in PARAMETERS.items()
    }
    with pytest.raises(ValueError, match="logistic"):
        ModelSection(saturation="exponential")
