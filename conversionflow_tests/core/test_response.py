"""Response formulas of docs/contracts.md: adstock steady state, saturation, plan response."""

import warnings

import numpy as np
import pytest

from conversionflow_dagster.core.allocation.response import ResponseModel, weekly_response
from conversionflow_dagster.core.model.transforms import (
    hill_saturation,
    hill_slope,
    logistic_saturation,
    logistic_slope,
    steady_state_adstock,
)
from conversionflow_dagster.core.parameter_export import validate_export
from conversionflow_dagster.core.synthetic.export import (
    build_document,
    contract_response,
    realistic_document,
)


def simulate_geometric_adstock(spend: np.ndarray, decay: float, max_lag: int, normalize: bool):
    """Week-by-week adstock of a spend series, with an explicit loop over weeks and lags."""
    weights = decay ** np.arange(max_lag)
    if normalize:
        weights = weights / weights.sum()
    out = np.zeros_like(spend)
    for t in range(len(spend)):
        for lag in range(max_lag):
            if t - lag >= 0:
                out[t] += weights[lag] * spend[t - lag]
    return out


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("max_lag", [1, 8, 13])
def test_steady_state_adstock_matches_a_long_constant_spend(normalize, max_lag):
    decays = np.array([0.0, 0.3, 0.62, 0.9])
    spend = np.full(120, 2.5)
    simulated = [simulate_geometric_adstock(spend, d, max_lag, normalize)[-1] for d in decays]
    factor = steady_state_adstock(decays, max_lag, normalize)
    np.testing.assert_allclose(2.5 * factor, simulated, rtol=1e-12)


def test_logistic_at_known_points():
    lam = 1.5
    a = np.array([0.0, 2 * np.log(3) / lam, 1e3])
    np.testing.assert_allclose(logistic_saturation(a, lam), [0.0, 0.8, 1.0], atol=1e-15)
    grid = np.linspace(0, 5, 11)
    literal = (1 - np.exp(-lam * grid)) / (1 + np.exp(-lam * grid))
    np.testing.assert_allclose(logistic_saturation(grid, lam), literal, rtol=1e-13)


def test_hill_at_known_points():
    k, n = 0.7, 2.0
    a = np.array([0.0, k, 2 * k, 1e9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero spend is a normal input, not a warning
        values = hill_saturation(a, k, n)
    np.testing.assert_allclose(values, [0.0, 0.5, 0.8, 1.0], atol=1e-15)
    grid = np.linspace(0.01, 5, 50)
    for shape in (0.5, 1.0, 3.0):
        literal = grid**shape / (k**shape + grid**shape)
        np.testing.assert_allclose(hill_saturation(grid, k, shape), literal, rtol=1e-13)


def test_slopes_match_finite_differences():
    a, h = np.linspace(0.05, 4, 40), 1e-6
    for curve, slope, params in [
        (logistic_saturation, logistic_slope, (1.3,)),
        (hill_saturation, hill_slope, (0.8, 0.6)),
        (hill_saturation, hill_slope, (0.8, 2.5)),
    ]:
        numeric = (curve(a + h, *params) - curve(a - h, *params)) / (2 * h)
        np.testing.assert_allclose(slope(a, *params), numeric, rtol=1e-6)
    # at zero spend: Hill with n = 1 starts with slope 1/k, with n > 1 flat, n < 1 steep
    np.testing.assert_allclose(hill_slope(np.array(0.0), 0.8, 1.0), 1 / 0.8, rtol=1e-9)
    assert hill_slope(np.array(0.0), 0.8, 2.0) < 1e-9
    assert hill_slope(np.array(0.0), 0.8, 0.5) > 1e3


@pytest.mark.parametrize("saturation", ["logistic", "hill"])
def test_weekly_response_follows_the_contract(saturation):
    document = realistic_document(n_channels=5, n_draws=40, saturation=saturation)
    export = validate_export(document)
    spend = np.array([[0.0, 1e4, 5e4, 2e5, 1e3], [3e4, 3e4, 3e4, 3e4, 3e4]])  # (P=2, C=5)
    got = weekly_response(export, spend)
    assert got.shape == (2, 40, 5)
    for p in range(2):
        expected = contract_response(
            export.draws, spend[p], export.spend_scale, export.scales.target, saturation
        )
        np.testing.assert_allclose(got[p], expected, rtol=1e-10, atol=1e-12)


def test_unnormalised_adstock_raises_the_response():
    rng = np.random.default_rng(1)
    draws = {
        "beta": rng.uniform(0.1, 0.3, (30, 2)),
        "adstock_decay": rng.uniform(0.2, 0.7, (30, 2)),
        "saturation_lam": rng.uniform(0.5, 2.0, (30, 2)),
    }
    names, current, scale = ["tv", "search"], [2e4, 1e4], [2.5e4, 1.2e4]
    raw = validate_export(
        build_document(names, current, draws, spend_scale=scale, normalize=False, max_lag=6)
    )
    spend = np.array([1.5e4, 8e3])
    expected = contract_response(draws, spend, np.array(scale), 800.0, "logistic", 6, False)
    np.testing.assert_allclose(weekly_response(raw, spend), expected, rtol=1e-10)
    normalised = validate_export(build_document(names, current, draws, spend_scale=scale))
    assert np.all(weekly_response(raw, spend) > weekly_response(normalised, spend))


def test_model_totals_marginals_and_float32_agree():
    export = validate_export(realistic_document(n_channels=6, n_draws=100, saturation="hill"))
    model = ResponseModel.from_export(export)
    spend = np.random.default_rng(0).uniform(0, 1e5, (8, 6))  # (P, C)
    response = model.response(spend)  # (P, D, C)
    np.testing.assert_allclose(model.draw_totals(spend), response.sum(-1), rtol=1e-12)
    np.testing.assert_allclose(
        model.astype(np.float32).draw_totals(spend), response.sum(-1), rtol=2e-5
    )
    h = 1e-2
    step = np.eye(6)[2] * h
    numeric = (model.response(spend + step) - model.response(spend - step))[..., 2] / (2 * h)
    np.testing.assert_allclose(model.marginal(spend)[..., 2], numeric, rtol=1e-5)


def test_weekly_response_rejects_bad_spend():
    export = validate_export(realistic_document(n_channels=3, n_draws=10))
    with pytest.raises(ValueError, match="finite amounts >= 0"):
        weekly_response(export, np.array([1.0, -2.0, 3.0]))
    with pytest.raises(ValueError, match="last axis of 3 channels"):
        weekly_response(export, np.ones(4))
