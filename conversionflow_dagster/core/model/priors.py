"""The model's priors in one table: site, NumPyro family, default parameters and their meaning.

The model (``mmm``), the config check (``config.ModelSection``), the trace attributes and
docs/priors.md all follow :data:`PRIORS`, so a prior is named, documented and refused in one
place; the adstock and saturation priors come from the transforms' registry. Like that registry
this module imports no JAX: loading a config must stay cheap.

Every prior is stated on the scaled data: the target divided by its mean over the fit window
(an average week is 1), spend divided by the channel's mean non-zero weekly spend, and each
control divided by its largest magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conversionflow_dagster.core.model.transforms import ADSTOCKS, SATURATIONS

if TYPE_CHECKING:
    from conversionflow_dagster.core.model.mmm import ModelSpec


@dataclass(frozen=True)
class Prior:
    """The prior of one sample site: its family is fixed, its parameters can be overridden."""

    name: str  # site in the model, key under model.priors in the config
    family: str  # class in numpyro.distributions
    default: Mapping[str, float]  # default parameters (NumPyro names)
    meaning: str  # what the site means on the scaled data
    used: str  # which models sample the site (model section keys)


REAL_PARAMETERS = frozenset({"loc"})  # any finite number; every other parameter must be > 0
# The observation models: the config, the CLI, the run config and the model read this one list.
LIKELIHOODS = ("poisson", "negbinomial", "normal", "student_t", "hurdle_poisson")
CONTINUOUS_LIKELIHOODS = ("normal", "student_t")  # the others model whole-number counts
# The noise sites sampled only under some likelihoods.
LIKELIHOOD_PRIORS = {
    "normal": ("sigma",),
    "student_t": ("sigma", "nu_above_2"),
    "negbinomial": ("dispersion",),
    "hurdle_poisson": ("hurdle_shift",),
}

_TRANSFORM_PRIORS = (
    *(
        Prior(p.name, p.family, p.prior, p.meaning, f"adstock: {kind}")
        for kind, form in ADSTOCKS.items()
        for p in form.params
    ),
    *(
        Prior(p.name, p.family, p.prior, p.meaning, f"saturation: {kind}")
        for kind, form in SATURATIONS.items()
        for p in form.params
    ),
)

PRIORS: dict[str, Prior] = {
    p.name: p
    for p in (
        Prior(
            "intercept",
            "Normal",
            {"loc": 0.5, "scale": 0.5},
            "baseline: the weekly target without media, trend, season or controls, in average "
            "weeks (0.5 = half of an average week)",
            "every model",
        ),
        Prior(
            "trend",
            "Normal",
            {"loc": 0.0, "scale": 0.5},
            "change of the baseline from the start to the end of the fit window, in average weeks",
            "every model",
        ),
        Prior(
            "seasonality",
            "Normal",
            {"loc": 0.0, "scale": 0.2},
            "amplitude of each yearly sine and cosine term, in average weeks",
            "fourier_order > 0",
        ),
        Prior(
            "control_coef",
            "Normal",
            {"loc": 0.0, "scale": 0.5},
            "effect of a control at its largest observed value, in average weeks",
            "data with controls",
        ),
        Prior(
            "media_effect",
            "Gamma",
            {"concentration": 2.0, "rate": 5.0},
            "a channel's average weekly contribution, in average weeks; the rate is divided by "
            "the channel's share of spend, so the prior mean is 0.4 x that share (all channels "
            "together: 40% of the target)",
            "every model",
        ),
        *_TRANSFORM_PRIORS,
        Prior(
            "market_sd",
            "HalfNormal",
            {"scale": 0.3},
            "with model.markets: hierarchical, how far markets stray from the population "
            "value of each pooled parameter (media effect per share of spend, adstock and "
            "saturation), on the log scale (logit for adstock_decay): 0.3 is about +-30%",
            "model.markets: hierarchical",
        ),
        Prior(
            "sigma",
            "HalfNormal",
            {"scale": 0.2},
            "noise: standard deviation of a week around the model, in average weeks (for the "
            "Student-t, its scale)",
            "likelihood: normal, student_t",
        ),
        Prior(
            "nu_above_2",
            "Gamma",
            {"concentration": 2.0, "rate": 0.1},
            "tail weight: the Student-t noise has 2 + nu_above_2 degrees of freedom; near 0 a "
            "few weeks far off the model (a holiday or promotion the data do not name) barely "
            "move the fit, above 30 the noise is practically Normal",
            "likelihood: student_t",
        ),
        Prior(
            "dispersion",
            "HalfNormal",
            {"scale": 0.2},
            "extra noise beyond Poisson, 1 / sqrt(concentration): a week's spread grows by about "
            "this share of its mean (0 is a Poisson)",
            "likelihood: negbinomial",
        ),
        Prior(
            "hurdle_shift",
            "Normal",
            {"loc": 0.0, "scale": 1.0},
            "log multiplier of the rate in P(week > 0): 0 is a Poisson, below 0 adds zero weeks",
            "likelihood: hurdle_poisson",
        ),
    )
}


def parameter_text(params: Mapping[str, float]) -> str:
    """``loc 0.5, scale 0.5``: how the docs, the report and the messages show parameters."""
    return ", ".join(f"{k} {v:g}" for k, v in params.items())


def prior_problems(priors: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """(where under ``priors``, message) for each override the model cannot use.

    Refused: an unknown site or parameter (the message lists the valid ones), a value that is
    not a finite number, and a scale, concentration or rate that is not above 0.
    """
    problems: list[tuple[tuple[str, ...], str]] = []
    for name, params in priors.items():
        prior = PRIORS.get(name)
        if prior is None:
            problems.append(((name,), f"unknown prior {name!r}; valid names: {', '.join(PRIORS)}"))
            continue
        valid = ", ".join(prior.default)
        if not isinstance(params, Mapping):
            problems.append(
                ((name,), f"expected {prior.family} parameters ({valid}), got {params!r}")
            )
            continue
        unknown = [p for p in params if p not in prior.default]
        if unknown:
            problems.append(
                (
                    (name,),
                    f"unknown parameter(s) {unknown} of the {prior.family} prior {name!r}; "
                    f"valid: {valid}",
                )
            )
        for param, value in params.items():
            if param not in prior.default:
                continue
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and math.isfinite(value)):
                problems.append(((name, param), f"expected a finite number, got {value!r}"))
            elif param not in REAL_PARAMETERS and value <= 0:
                problems.append(((name, param), f"{param} must be above 0, got {value!r}"))
    return problems


def prior_sites(spec: ModelSpec, has_controls: bool, pooled: bool = False) -> tuple[str, ...]:
    """The sites a model with ``spec`` samples, in :data:`PRIORS` order; ``pooled``: the
    hierarchical market model, whose media and transform priors are those of the population."""
    used = {"intercept", "media_effect", *spec.transform_params}
    used |= {"market_sd"} if pooled else set()
    used |= {"trend"} if spec.trend else set()
    used |= {"seasonality"} if spec.fourier_order else set()
    used |= {"control_coef"} if has_controls else set()
    used |= set(LIKELIHOOD_PRIORS.get(spec.likelihood, ()))
    return tuple(name for name in PRIORS if name in used)


def effective_priors(
    spec: ModelSpec, has_controls: bool, pooled: bool = False
) -> dict[str, dict[str, Any]]:
    """The priors a fit used: per sampled site its family, its parameters after the config's
    overrides, and whether the config set any of them (``source``: config or default)."""
    return {
        name: {
            "distribution": PRIORS[name].family,
            "parameters": spec.prior(name),
            "source": "config" if spec.priors.get(name) else "default",
        }
        for name in prior_sites(spec, has_controls, pooled)
    }
