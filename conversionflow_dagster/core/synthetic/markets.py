"""Markets simulated from one hierarchical process, so a pooled fit has a known truth.

Written with numpy only (reusing panel.py's spend, adstock and saturation) and independent of
the model code, so recovering the truth is evidence that the pooled model is right.

The process, per channel c and market m:

1. Population medians: adstock decay ~ U(0.15, 0.6); saturation lam ~ U(0.9, 2.5) (logistic)
   or k ~ U(0.6, 1.4) and n ~ U(1.0, 2.5) (Hill); effect_per_share ~ U(0.2, 0.6).
2. Market deviations: logit(decay) + N(0, 0.3), log(lam | k | n) + N(0, 0.2) and
   log(effect_per_share) + N(0, 0.3).
3. Size: baseline weekly target log-uniform over 40..4000, one draw per equal slice of the log
   range so the baselines always span most of it. Names run from "M00", the largest mean expected
   target, to the smallest. Mean spend is proportional to the baseline (similar money per
   conversion), tilted per channel by lognormal(0, 0.25), with ``simulate_panel``'s waves,
   noise and flighting.
4. Base: baseline x (1 + trend x years + amplitude x sin(2 pi years + phase)) plus holiday and
   promo effects, each a market-specific multiple of the baseline.
5. Media: contribution = beta x s(adstock(spend / spend_scale)) as in ``simulate_panel``, with
   beta solved exactly so that mean contribution / mean expected target equals
   effect_per_share x the channel's share of the market's spend. With r = that product,
   R = sum(r) and B the mean base, the media total is R B / (1 - R), hence
   beta = r B / ((1 - R) mean(s)).
6. Target: Poisson(mu) counts or Normal(mu, 0.05 mu).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from conversionflow_dagster.core.synthetic.panel import (
    MEAN_SPEND,
    Panel,
    holiday_weeks,
    saturated_adstock,
    wavy_spend,
)

# configs/meridian_geo.yaml reads these columns, so it reads a markets_frame with only its
# path and market list changed; the simulated holiday and promo flags stand in for them.
CONTROL_COLUMNS = {
    "holiday": "competitor_activity_score_control",
    "promo": "sentiment_score_control",
}
COST_PER_IMPRESSION = 0.011  # Meridian's geo data: impressions ~ 90 per unit of spend


@dataclass
class SimulatedMarkets:
    """Panels of markets drawn around population medians (the truth a pooled fit targets)."""

    panels: dict[str, Panel]  # market -> panel and its own truth (same weeks and names)
    population: dict[str, np.ndarray]  # (C,) medians: adstock_decay, saturation keys, effect
    market_sd: dict[str, float]  # sd of market deviations (logit scale for decay, else log)
    effect_per_share: dict[str, np.ndarray]  # market -> (C,) its realised effect_per_share


def simulate_markets(
    n_markets: int = 8,
    n_weeks: int = 156,
    n_channels: int = 5,
    seed: int = 0,
    *,
    saturation: str = "logistic",
    likelihood: str = "poisson",
    max_lag: int = 8,
) -> SimulatedMarkets:
    """Markets of very different sizes whose media parameters share population medians."""
    if saturation not in ("logistic", "hill") or likelihood not in ("poisson", "normal"):
        raise ValueError(
            f"saturation {saturation!r} / likelihood {likelihood!r}: expected logistic or hill, "
            "and poisson or normal"
        )
    rng = np.random.default_rng(seed)
    C = n_channels
    decay_pop = rng.uniform(0.15, 0.6, C)
    if saturation == "logistic":
        sat_pop = {"saturation_lam": rng.uniform(0.9, 2.5, C)}
    else:
        sat_pop = {"hill_k": rng.uniform(0.6, 1.4, C), "hill_n": rng.uniform(1.0, 2.5, C)}
    effect_pop = rng.uniform(0.2, 0.6, C)
    sd = {"adstock_decay": 0.3, **dict.fromkeys(sat_pop, 0.2), "effect_per_share": 0.3}
    slices = (np.arange(n_markets) + rng.random(n_markets)) / n_markets
    baselines = 40.0 * 100.0**slices

    weeks = pd.date_range("2021-01-04", periods=n_weeks, freq="7D")
    t_years = np.arange(n_weeks) / 52.18
    holiday = holiday_weeks(weeks)
    drawn = []
    for baseline in baselines:
        logit = np.log(decay_pop / (1 - decay_pop)) + rng.normal(0, sd["adstock_decay"], C)
        decay = 1 / (1 + np.exp(-logit))
        sat = {k: v * np.exp(rng.normal(0, sd[k], C)) for k, v in sat_pop.items()}
        effect = effect_pop * np.exp(rng.normal(0, sd["effect_per_share"], C))

        mean_spend = MEAN_SPEND[np.arange(C) % len(MEAN_SPEND)] * baseline / 320.0
        spend = wavy_spend(rng, t_years, mean_spend * rng.lognormal(0.0, 0.25, C))
        s = saturated_adstock(spend, decay, sat, max_lag)

        promo = rng.random(n_weeks) < 0.08
        controls = np.column_stack([holiday, promo]).astype(float)
        trend = rng.uniform(-0.03, 0.08)
        season = rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * t_years + rng.uniform(0, 2 * np.pi))
        lift = baseline * np.array([rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.4)])
        base = baseline * (1 + trend * t_years + season) + controls @ lift

        r = effect * spend.sum(0) / spend.sum()
        if r.sum() >= 1:
            raise ValueError(f"media would exceed a market's whole target ({r.sum():.2f})")
        beta = r * base.mean() / ((1 - r.sum()) * s.mean(0))
        contributions = beta * s
        mu = base + contributions.sum(axis=1)
        target = rng.poisson(mu) if likelihood == "poisson" else rng.normal(mu, 0.05 * mu)

        panel = Panel(
            spend=spend,
            target=np.asarray(target, dtype=float),
            controls=controls,
            channel_names=[f"Channel{i}" for i in range(C)],
            control_names=["holiday", "promo"],
            week_start=weeks,
            decay=decay,
            saturation=sat,
            contributions=contributions,
            mu=mu,
        )
        drawn.append((panel, effect))
    drawn.sort(key=lambda pair: -pair[0].mu.mean())
    named = {f"M{m:02d}": pair for m, pair in enumerate(drawn)}
    return SimulatedMarkets(
        panels={name: panel for name, (panel, _) in named.items()},
        population={"adstock_decay": decay_pop, **sat_pop, "effect_per_share": effect_pop},
        market_sd=sd,
        effect_per_share={name: effect for name, (_, effect) in named.items()},
    )


def markets_frame(markets: SimulatedMarkets) -> pd.DataFrame:
    """One row per market and week, laid out like data/public/meridian/geo_media.csv."""
    frames = []
    for name, panel in markets.panels.items():
        columns: dict[str, object] = {"geo": name, "time": panel.week_start.strftime("%Y-%m-%d")}
        for i, channel in enumerate(panel.channel_names):
            columns[f"{channel}_impression"] = panel.spend[:, i] / COST_PER_IMPRESSION
        for k, control in enumerate(panel.control_names):
            columns[CONTROL_COLUMNS[control]] = panel.controls[:, k]
        for i, channel in enumerate(panel.channel_names):
            columns[f"{channel}_spend"] = panel.spend[:, i]
        columns["conversions"] = panel.target
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)


def contribution_shares(panel: Panel) -> np.ndarray:
    """(C,) each channel's share of the panel's total expected media contribution."""
    totals = panel.contributions.sum(axis=0)
    return totals / totals.sum()
