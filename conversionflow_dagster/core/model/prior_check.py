"""Prior predictive check: do the priors put the target's scale where the data is, before a fit?

Draws of the target are simulated from the priors alone, over the weeks a fit would see, and set
beside the observed target. The model samples in flat coordinates (``level`` and
``media_slope``, see :func:`mmm.mmm`) whose prior is added as a density, so NumPyro cannot draw
them directly: the model is run once with a unit slope to learn each draw's media effect per unit
of slope, and then with the slope and level that give ``intercept`` and ``media_effect`` drawn
from their priors. Both runs are the model itself (``Predictive`` on ``mmm``), so the check sees
exactly the model a fit would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer import Predictive

from conversionflow_dagster.core.config import ModelSection, ProjectConfig
from conversionflow_dagster.core.errors import ConversionflowError
from conversionflow_dagster.core.ingest.panel import WeeklyPanel, panel_window
from conversionflow_dagster.core.model.mmm import (
    ModelInputs,
    ModelSpec,
    Scales,
    mmm,
    prepare_inputs,
    prior_distribution,
)
from conversionflow_dagster.core.model.priors import prior_sites

PRIOR_DRAWS = 500
MIN_INSIDE = 0.9  # share of observed weeks inside their prior 94% interval for "in range"
QUANTILES = (0.03, 0.5, 0.97)
# Sites that set the target's level and spread: where to look when the scale is off.
SCALE_SITES = ("intercept", "media_effect", "trend", "seasonality", "control_coef", "sigma")


def prior_predictive(
    spend: np.ndarray,
    target: np.ndarray,
    controls: np.ndarray,
    channel_names: Sequence[str],
    control_names: Sequence[str],
    week_start: pd.DatetimeIndex,
    spec: ModelSpec,
    *,
    draws: int = PRIOR_DRAWS,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Prior draws of ``y`` (draws, T) in target units, with the ``intercept`` (draws,) and
    ``media_effect`` (draws, C) behind them; scaled as a fit on these weeks would be."""
    scales = Scales.from_data(spend, target, controls, channel_names, control_names)
    inputs = prepare_inputs(spend, controls, week_start, spec, scales, channel_names, control_names)
    model = partial(mmm, spec=spec)
    latent_sites = [
        s for s in prior_sites(spec, bool(control_names)) if s not in ("intercept", "media_effect")
    ]

    @jax.jit
    def simulate(key: jax.Array, inputs: ModelInputs) -> dict[str, jax.Array]:
        k_latent, k_intercept, k_effect, k_predict = jax.random.split(key, 4)
        unit = {"level": jnp.zeros(draws), "media_slope": jnp.ones((draws, len(channel_names)))}
        first = Predictive(model, unit, return_sites=[*latent_sites, "media_effect"])
        latent = first(k_latent, inputs)
        effect_per_slope = latent.pop("media_effect")  # (draws, C)
        intercept = prior_distribution(spec, "intercept").sample(k_intercept, (draws,))
        effect_prior = prior_distribution(spec, "media_effect", rate=1.0 / inputs.spend_share)
        effect = effect_prior.sample(k_effect, (draws,))  # (draws, C)
        drawn = {
            **latent,
            "media_slope": effect / effect_per_slope,
            "level": intercept + effect.sum(axis=-1),
        }
        second = Predictive(model, drawn, return_sites=["y", "intercept", "media_effect"])
        return second(k_predict, inputs)

    out = simulate(jax.random.PRNGKey(seed), inputs)
    return {name: np.asarray(value) for name, value in out.items()}


@dataclass(frozen=True)
class PriorCheck:
    """Observed target against its prior predictive, and the verdict."""

    observed: tuple[float, float, float]  # min, median, max of the observed weeks
    predicted: tuple[float, float, float]  # 3%, 50%, 97% of the prior draws, all weeks pooled
    inside: float  # share of observed weeks inside their week's prior 94% interval
    below: float  # share below it (the priors put the target too high)
    above: float  # share above it (too low)
    draws: int
    weeks: int
    in_range: bool
    verdict: str

    def table(self, target_name: str) -> list[str]:
        """The lines ``conversionflow validate --prior-check`` prints."""
        rows = (("observed", self.observed), ("prior predictive", self.predicted))
        return [
            f"prior predictive check of {target_name}: {self.draws} draws over {self.weeks} weeks",
            f"  {'':<18}{'min / 3%':>14}{'median / 50%':>14}{'max / 97%':>14}",
            *(f"  {name:<18}" + "".join(f"{_figure(v):>14}" for v in vals) for name, vals in rows),
            f"  observed weeks inside the prior 94% interval: {self.inside:.0%}",
        ]


def _figure(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def judge(observed: np.ndarray, predicted: np.ndarray, spec: ModelSpec) -> PriorCheck:
    """Compare observed weeks (T,) with prior draws (draws, T) and say what is off, if anything.

    The prior to change is the override of a site that sets the target's level or spread when
    the config has one (the defaults are made for the scaled data), else the intercept.
    """
    low, high = np.quantile(predicted, [QUANTILES[0], QUANTILES[-1]], axis=0)  # (T,) each
    below, above = float(np.mean(observed < low)), float(np.mean(observed > high))
    inside = 1.0 - below - above
    pooled = np.quantile(predicted, QUANTILES)
    ratio = f"prior median {pooled[1] / max(float(np.median(observed)), 1e-12):.3g} x the observed"
    who = "the configured priors" if spec.priors else "the defaults"
    overridden = [f"model.priors.{s}" for s in SCALE_SITES if s in spec.priors]
    in_range = inside >= MIN_INSIDE
    if in_range:
        verdict = f"{who} put the target's scale in range"
    else:
        if below > 2 * above:
            what = f"put the target too high: {below:.0%} of observed weeks lie below"
            fix = "lower model.priors.intercept.loc"
        elif above > 2 * below:
            what = f"put the target too low: {above:.0%} of observed weeks lie above"
            fix = "raise model.priors.intercept.loc"
        else:
            what = f"are too narrow: {below:.0%} of observed weeks lie below and {above:.0%} above"
            fix = "widen model.priors.intercept.scale"
        if overridden:
            fix = f"check the override(s) {', '.join(overridden)}"
        verdict = f"{who} {what} their prior 94% interval ({ratio} median); {fix}"
    return PriorCheck(
        observed=(float(observed.min()), float(np.median(observed)), float(observed.max())),
        predicted=(float(pooled[0]), float(pooled[1]), float(pooled[2])),
        inside=inside,
        below=below,
        above=above,
        draws=predicted.shape[0],
        weeks=predicted.shape[1],
        in_range=in_range,
        verdict=verdict,
    )


def check_panel(panel: WeeklyPanel, model: ModelSection, draws: int = PRIOR_DRAWS) -> PriorCheck:
    """The check on the weeks of a fit window (hold-out weeks left out, as the fit leaves them)."""
    if model.target not in panel.frame:
        raise ConversionflowError(
            f"model.target is {model.target!r} but the weekly panel has no such column"
        )
    n_fit = len(panel.frame) - model.holdout_weeks
    frame = panel.frame.iloc[:n_fit]
    spec = ModelSpec.from_section(model)
    observed = frame[model.target].to_numpy(float)
    predicted = prior_predictive(
        panel.spend().to_numpy(float)[:n_fit],
        observed,
        frame[list(panel.controls)].to_numpy(float),
        list(panel.channels),
        list(panel.controls),
        panel.weeks[:n_fit],
        spec,
        draws=draws,
        seed=model.seed,
    )["y"]
    return judge(observed, predicted, spec)


def prior_check_lines(
    panel: WeeklyPanel, config: ProjectConfig, name: str
) -> tuple[list[str], list[str]]:
    """(table lines, problems) of the check on the window a fit as of the last configured month
    would use: the verdict is a problem when the priors miss the target's scale."""
    month = config.month_range()[1]
    window = panel_window(panel, month, config.model.window_weeks)
    result = check_panel(window, config.model)
    first, *rest = result.table(config.model.target)
    lines = [f"{name}: {first}", *rest]
    if result.in_range:
        return [*lines, f"  verdict: {result.verdict}"], []
    return lines, [f"error: {name}: prior check: {result.verdict}"]
