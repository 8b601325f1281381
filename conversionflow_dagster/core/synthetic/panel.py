"""Weekly panels simulated from known parameters, for the model tests and the benchmark.

Written with numpy only (a loop over lags, an explicit formula), independent of model.py, so
that recovering the truth is evidence the model is right rather than consistent with itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MEAN_SPEND = np.array([32000.0, 28000.0, 30000.0, 18000.0, 45000.0, 14000.0, 8000.0])


@dataclass
class Panel:
    """A simulated panel and the truth behind it (contributions in target units)."""

    spend: np.ndarray  # (T, C)
    target: np.ndarray  # (T,)
    controls: np.ndarray  # (T, K)
    channel_names: list[str]
    control_names: list[str]
    week_start: pd.DatetimeIndex
    decay: np.ndarray  # (C,)
    saturation: dict[str, np.ndarray]  # saturation_lam or hill_k/hill_n, each (C,)
    contributions: np.ndarray  # (T, C) expected weekly contribution
    mu: np.ndarray  # (T,) expected target


def adstock_loop(u: np.ndarray, decay: np.ndarray, max_lag: int, normalize: bool = True):
    """Reference geometric adstock, one week at a time."""
    out = np.zeros_like(u, dtype=float)
    for t in range(u.shape[0]):
        for lag in range(min(max_lag, t + 1)):
            out[t] += decay**lag * u[t - lag]
    if normalize:
        out /= (decay[None, :] ** np.arange(max_lag)[:, None]).sum(axis=0)
    return out


def wavy_spend(
    rng: np.random.Generator, t_years: np.ndarray, mean_spend: np.ndarray
) -> np.ndarray:
    """(T, C) spend: a yearly wave, lognormal noise; channel 4 (of each 7) is flighted."""
    n_weeks, n_channels = len(t_years), len(mean_spend)
    phase = rng.uniform(0, 2 * np.pi, n_channels)
    wave = 1 + 0.25 * np.sin(2 * np.pi * t_years[:, None] + phase)  # (T, C)
    spend = mean_spend * wave * rng.lognormal(0.0, 0.3, (n_weeks, n_channels))
    flighted = np.arange(n_channels) % len(MEAN_SPEND) == 4
    spend[:, flighted] *= (rng.random((n_weeks, flighted.sum())) < 0.6) / 0.6
    return spend


def saturated_adstock(
    spend: np.ndarray, decay: np.ndarray, sat: dict[str, np.ndarray], max_lag: int
) -> np.ndarray:
    """s(adstock(spend / spend_scale)), spend_scale the mean of a channel's non-zero weeks."""
    spend_scale = spend.sum(0) / np.maximum((spend > 0).sum(0), 1)
    a = adstock_loop(spend / spend_scale, decay, max_lag)
    if "saturation_lam" in sat:
        return (1 - np.exp(-sat["saturation_lam"] * a)) / (1 + np.exp(-sat["saturation_lam"] * a))
    return a ** sat["hill_n"] / (sat["hill_k"] ** sat["hill_n"] + a ** sat["hill_n"])


def holiday_weeks(weeks: pd.DatetimeIndex) -> np.ndarray:
    """Weeks starting in late December or Thanksgiving week."""
    return ((weeks.month == 12) & (weeks.day >= 17)) | (
        (weeks.month == 11) & (weeks.day >= 20) & (weeks.day <= 26)
    )


def simulate_panel(
    n_weeks: int,
    n_channels: int,
    seed: int = 0,
    *,
    likelihood: str = "poisson",
    saturation: str = "logistic",
    baseline: float = 320.0,
    max_lag: int = 8,
    steady_channels: tuple[int, ...] = (),
) -> Panel:
    """Spend with waves, noise and a flighted (TV-like) channel; target from the contract model.

    ``steady_channels`` get a near-constant spend (their mean level, +-2% over the year), so the
    data barely identify their response curves; the random stream is the same either way.
    """
    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2021-01-04", periods=n_weeks, freq="7D")
    t_years = np.arange(n_weeks) / 52.18
    shrink = 1.0 / (1 + np.arange(n_channels) // len(MEAN_SPEND))
    mean_spend = MEAN_SPEND[np.arange(n_channels) % len(MEAN_SPEND)] * shrink  # (C,)
    spend = wavy_spend(rng, t_years, mean_spend)
    steady = list(steady_channels)
    spend[:, steady] = mean_spend[steady] * (1 + 0.02 * np.sin(2 * np.pi * t_years[:, None]))

    decay = rng.uniform(0.1, 0.7, n_channels)
    if saturation == "logistic":
        sat = {"saturation_lam": rng.uniform(0.9, 2.5, n_channels)}
    else:
        sat = {
            "hill_k": rng.uniform(0.6, 1.4, n_channels),
            "hill_n": rng.uniform(1.0, 2.5, n_channels),
        }
    s = saturated_adstock(spend, decay, sat, max_lag)
    level = baseline / 320.0
    beta = level * 0.005 * mean_spend * rng.uniform(0.6, 1.4, n_channels)  # at full saturation
    contributions = beta * s  # (T, C)

    holiday = holiday_weeks(weeks)
    promo = rng.random(n_weeks) < 0.08
    controls = np.column_stack([holiday, promo]).astype(float)  # (T, 2)
    season = 0.12 * (np.sin(2 * np.pi * t_years) + 0.5 * np.cos(4 * np.pi * t_years))
    base = baseline * (1 + 0.06 * t_years + season) + level * controls @ np.array([140.0, 90.0])
    mu = base + contributions.sum(axis=1)
    if likelihood == "poisson":
        target = rng.poisson(mu)
    elif likelihood == "negbinomial":
        target = rng.poisson(rng.gamma(30.0, mu / 30.0))
    elif likelihood == "normal":
        target = rng.normal(mu, 0.05 * mu)
    elif likelihood == "student_t":  # 1% noise, and 6% of weeks 20-50% up (unnamed events)
        shock = np.where(rng.random(n_weeks) < 0.06, rng.uniform(0.2, 0.5, n_weeks), 0.0)
        target = mu * (1 + rng.normal(0, 0.01, n_weeks) + shock)
    else:  # hurdle_poisson: extra zeros on top of a low Poisson rate
        target = np.where(rng.random(n_weeks) < 0.3, 0, rng.poisson(mu))
    return Panel(
        spend=spend,
        target=np.asarray(target, dtype=float),
        controls=controls,
        channel_names=[f"ch {i}" for i in range(n_channels)],
        control_names=["holiday", "promo"],
        week_start=weeks,
        decay=decay,
        saturation=sat,
        contributions=contributions,
        mu=mu,
    )


def model_inputs(panel: Panel, spec):
    """The scaled model inputs of ``panel``, with scales derived from it as a fit would."""
    from conversionflow_dagster.core.model.mmm import Scales, prepare_inputs

    scales = Scales.from_data(
        panel.spend, panel.target, panel.controls, panel.channel_names, panel.control_names
    )
    return prepare_inputs(
        panel.spend,
        panel.controls,
        panel.week_start,
        spec,
        scales,
        panel.channel_names,
        panel.control_names,
    )


def fit_simulated(panel: Panel, spec=None, **kwargs):
    """``fit_mmm`` on a simulated panel (the default model spec unless given)."""
    from conversionflow_dagster.core.model.fitting import fit_mmm
    from conversionflow_dagster.core.model.mmm import ModelSpec

    return fit_mmm(
        panel.spend,
        panel.target,
        panel.controls,
        panel.channel_names,
        panel.control_names,
        panel.week_start,
        spec or ModelSpec(),
        **kwargs,
    )
