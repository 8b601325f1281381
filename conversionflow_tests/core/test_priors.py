"""Priors a user can read and set: the registry, its documentation, the config check, the
priors a fit records, and the prior predictive check."""

import math
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conversionflow_dagster.core.config import parse_config
from conversionflow_dagster.core.errors import ConfigError
from conversionflow_dagster.core.model.mmm import DEFAULT_PRIORS, PRIOR_FAMILIES, ModelSpec
from conversionflow_dagster.core.model.prior_check import judge, prior_predictive
from conversionflow_dagster.core.model.priors import (
    PRIORS,
    effective_priors,
    parameter_text,
    prior_sites,
)
from conversionflow_dagster.core.model.transforms import PARAMETERS, SATURATIONS
from conversionflow_dagster.core.synthetic.panel import simulate_panel
from conversionflow_tests.conftest import REPO

DOC = REPO / "docs" / "priors.md"


def doc_rows() -> dict[str, list[str]]:
    """The reference table of docs/priors.md: name -> the row's cells."""
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"\| `(\w+)` \|(.*)\|$", line)
        if match:
            rows[match[1]] = [cell.strip() for cell in match[2].split("|")]
    return rows


def test_every_prior_is_documented_with_its_defaults_and_meaning():
    rows = doc_rows()
    assert list(rows) == list(PRIORS)  # no prior missing, none documented that does not exist
    for name, prior in PRIORS.items():
        family, params, default, used, meaning = rows[name]
        assert family == prior.family
        assert params == ", ".join(prior.default)
        assert default == parameter_text(prior.default)
        assert used == prior.used
        assert meaning == prior.meaning
    assert "](docs/priors.md)" in (REPO / "README.md").read_text()


def test_the_model_and_the_transforms_use_the_registry():
    assert {name: dict(p.default) for name, p in PRIORS.items()} == DEFAULT_PRIORS
    assert {n: f.__name__ for n, f in PRIOR_FAMILIES.items()} == {
        n: p.family for n, p in PRIORS.items()
    }
    for name, parameter in PARAMETERS.items():
        assert PRIORS[name].default == parameter.prior
        assert PRIORS[name].meaning == parameter.meaning


def test_loading_the_config_does_not_start_jax():
    code = "import sys, conversionflow_dagster.core.config; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def config_with(priors):
    document = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    document["model"]["priors"] = priors
    return parse_config(document, "configs/mine.yaml")


def test_valid_overrides_are_accepted_and_reach_the_model():
    config = config_with({"intercept": {"loc": 0.8}, "hill_k": {"rate": 2}})
    spec = ModelSpec.from_section(config.model)
    assert spec.prior("intercept") == {"loc": 0.8, "scale": 0.5}


@pytest.mark.parametrize(
    ("priors", "where", "expected"),
    [
        (
            {"interceptt": {"loc": 1}},
            "model.priors.interceptt",
            f"unknown prior 'interceptt'; valid names: {', '.join(PRIORS)}",
        ),
        (
            {"adstock_decay": {"alpha": 1}},
            "model.priors.adstock_decay",
            "unknown parameter(s) ['alpha'] of the Beta prior 'adstock_decay'; "
            "valid: concentration1, concentration0",
        ),
        ({"intercept": {"scale": 0}}, "model.priors.intercept.scale", "must be above 0, got 0"),
        ({"media_effect": {"rate": -2}}, "model.priors.media_effect.rate", "above 0, got -2"),
        ({"trend": {"loc": "big"}}, "model.priors.trend.loc", "a finite number, got 'big'"),
        ({"trend": {"loc": True}}, "model.priors.trend.loc", "a finite number, got True"),
        ({"sigma": {"scale": math.nan}}, "model.priors.sigma.scale", "a finite number, got nan"),
        ({"sigma": 0.3}, "model.priors.sigma", "expected HalfNormal parameters (scale), got 0.3"),
    ],
)
def test_config_refuses_priors_the_model_cannot_use(priors, where, expected):
    with pytest.raises(ConfigError) as refused:
        config_with(priors)
    message = str(refused.value)
    assert message.startswith("configs/mine.yaml: invalid configuration")
    assert f"  {where}: " in message and expected in message
    with pytest.raises(ConfigError, match=re.escape(expected)):  # the model refuses them too
        ModelSpec(priors=priors)


def test_the_effective_priors_are_the_sampled_sites_with_overrides():
    spec = ModelSpec(
        likelihood="negbinomial",
        saturation="hill",
        fourier_order=0,
        priors={"hill_n": {"rate": 2.0}, "sigma": {"scale": 1.0}},  # sigma: not sampled here
    )
    assert prior_sites(spec, has_controls=False) == (
        "intercept",
        "trend",
        "media_effect",
        "adstock_decay",
        "hill_k",
        "hill_n",
        "dispersion",
    )
    priors = effective_priors(spec, has_controls=True)
    assert "control_coef" in priors and "seasonality" not in priors and "sigma" not in priors
    assert priors["hill_n"] == {
        "distribution": "Gamma",
        "parameters": {"concentration": 6.0, "rate": 2.0},
        "source": "config",
    }
    assert priors["hill_k"]["source"] == "default"


def test_the_verdict_says_what_is_off_and_which_prior_to_change():
    rng = np.random.default_rng(0)
    observed = rng.normal(100, 10, 52)
    spec, absurd = ModelSpec(), ModelSpec(priors={"intercept": {"loc": 50.0}})

    fits = judge(observed, rng.normal(100, 30, (500, 52)), spec)
    assert fits.in_range and fits.inside > 0.9
    assert fits.verdict == "the defaults put the target's scale in range"

    high = judge(observed, rng.normal(5000, 300, (500, 52)), absurd)
    assert not high.in_range and high.below == 1.0
    assert high.verdict.startswith("the configured priors put the target too high: 100% of")
    assert "model.priors.intercept" in high.verdict

    low = judge(observed, rng.normal(1, 0.1, (500, 52)), spec)
    assert "too low" in low.verdict and "raise model.priors.intercept.loc" in low.verdict

    narrow = judge(observed, rng.normal(100, 1, (500, 52)), spec)
    assert "too narrow" in narrow.verdict and "model.priors.intercept.scale" in narrow.verdict
    assert narrow.observed == (observed.min(), np.median(observed), observed.max())


@pytest.mark.parametrize("saturation", SATURATIONS)
def test_prior_draws_follow_the_stated_priors(saturation):
    """The sampler's flat coordinates are set so that the model's intercept and media effects
    are draws of their documented priors."""
    panel = simulate_panel(52, 3, seed=4, saturation=saturation)
    spec = ModelSpec(saturation=saturation, priors={"intercept": {"loc": 1.5, "scale": 0.2}})
    draws = prior_predictive(
        panel.spend,
        panel.target,
        panel.controls,
        panel.channel_names,
        panel.control_names,
        panel.week_start,
        spec,
        draws=2000,
        seed=1,
    )
    assert draws["y"].shape == (2000, 52) and np.all(draws["y"] >= 0)
    assert draws["intercept"].mean() == pytest.approx(1.5, abs=0.02)
    assert draws["intercept"].std() == pytest.approx(0.2, rel=0.1)
    share = panel.spend.sum(axis=0) / panel.spend.sum()
    effect = draws["media_effect"]  # Gamma(2, 5 / share): mean 0.4 * share
    np.testing.assert_allclose(effect.mean(axis=0), 0.4 * share, rtol=0.1)
    level = np.median(draws["y"]) / panel.target.mean()  # intercept + media, average weeks
    assert level == pytest.approx(1.5 + 0.4, rel=0.1)
