"""Parameter exports built by hand, for the stage-2 tests and the allocation benchmark.

Summaries and ROAS are computed here directly from the draws and the contract formulas, so the
documents are consistent without using the code under test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

CURRENT_BUDGET = 2_500_000.0  # over 13 weeks, spread over the channels of realistic_document
HORIZON = 13


def summary(values: np.ndarray) -> dict[str, float]:
    """Posterior summary fields of the contract for one parameter's draws (D,)."""
    return {
        "mean": float(values.mean()),
        "sd": float(values.std()),
        "hdi_3%": float(np.quantile(values, 0.03)),
        "hdi_97%": float(np.quantile(values, 0.97)),
        "r_hat": 1.001,
        "ess_bulk": float(len(values)),
        "ess_tail": float(len(values)),
    }


def contract_response(
    draws: Mapping[str, np.ndarray],
    weekly_spend: np.ndarray,
    spend_scale: np.ndarray,
    target_scale: float,
    saturation: str,
    max_lag: int = 8,
    normalize: bool = True,
) -> np.ndarray:
    """Weekly response (D, C) for one (C,) spend, written literally from docs/contracts.md."""
    u = weekly_spend / spend_scale
    decay = draws["adstock_decay"]
    factor = 1.0 if normalize else sum(decay**lag for lag in range(max_lag))
    a = u * factor
    if saturation == "logistic":
        lam = draws["saturation_lam"]
        s = (1 - np.exp(-lam * a)) / (1 + np.exp(-lam * a))
    else:
        k, n = draws["hill_k"], draws["hill_n"]
        s = a**n / (k**n + a**n)
    return target_scale * draws["beta"] * s


def build_document(
    names: Sequence[str],
    current_weekly_spend: Sequence[float],
    draws: Mapping[str, np.ndarray],
    *,
    saturation: str = "logistic",
    spend_scale: Sequence[float] | None = None,
    target_scale: float = 800.0,
    normalize: bool = True,
    max_lag: int = 8,
) -> dict:
    """A complete, valid export document from per-draw (D, C) parameter arrays."""
    current = np.asarray(current_weekly_spend, dtype=float)
    scale = np.asarray(
        spend_scale if spend_scale is not None else np.where(current > 0, current, 1000.0)
    )
    draws = {k: np.asarray(v, dtype=float) for k, v in draws.items()}
    response = contract_response(
        draws, current, scale, target_scale, saturation, max_lag, normalize
    )  # (D, C)
    channels = []
    for j, name in enumerate(names):
        roas = response[:, j] / current[j] if current[j] > 0 else None
        channels.append(
            {
                "name": name,
                "current_weekly_spend": float(current[j]),
                "parameters": {p: summary(v[:, j]) for p, v in draws.items()},
                "roas": {
                    "mean": None if roas is None else float(roas.mean()),
                    "hdi_3%": None if roas is None else float(np.quantile(roas, 0.03)),
                    "hdi_97%": None if roas is None else float(np.quantile(roas, 0.97)),
                },
            }
        )
    return {
        "schema_version": 1,
        "created_at": "2026-11-22T20:00:00+00:00",
        "model": {
            "target": "conversions",
            "likelihood": "poisson",
            "adstock": {"type": "geometric", "max_lag": max_lag, "normalize": normalize},
            "saturation": {"type": saturation},
        },
        "data_window": {"start": "2023-01-02", "end": "2025-12-22", "n_weeks": 156},
        "scales": {
            "target": target_scale,
            "spend": dict(zip(names, map(float, scale), strict=True)),
        },
        "channels": channels,
        "diagnostics": {
            "max_r_hat": 1.004,
            "min_ess_bulk": 1480.0,
            "min_ess_tail": 1320.0,
            "divergences": 0,
            "passed": True,
        },
        "draws": {"n": len(draws["beta"]), **{k: v.tolist() for k, v in draws.items()}},
    }


def realistic_document(
    n_channels: int = 7, n_draws: int = 500, seed: int = 0, saturation: str = "logistic"
) -> dict:
    """Channels whose current weekly spend adds up to CURRENT_BUDGET over HORIZON weeks, with
    posterior spreads typical of a converged three-year fit."""
    rng = np.random.default_rng(seed)
    names = [f"channel_{i:02d}" for i in range(n_channels)]
    mix = rng.dirichlet(np.full(n_channels, 2.0))
    current = CURRENT_BUDGET / HORIZON * mix
    scale = current * rng.uniform(0.8, 1.25, n_channels)

    def around(centre: np.ndarray, spread: float) -> np.ndarray:  # (C,) -> (D, C), lognormal
        return centre * np.exp(rng.normal(0.0, spread, (n_draws, n_channels)))

    draws = {
        "beta": around(rng.uniform(0.03, 0.25, n_channels), 0.15),
        "adstock_decay": np.clip(
            rng.uniform(0.1, 0.7, n_channels) + rng.normal(0, 0.05, (n_draws, n_channels)),
            0.0,
            0.95,
        ),
    }
    if saturation == "logistic":
        draws["saturation_lam"] = around(rng.uniform(0.5, 3.0, n_channels), 0.2)
    else:
        draws["hill_k"] = around(rng.uniform(0.5, 1.5, n_channels), 0.2)
        draws["hill_n"] = around(rng.uniform(1.0, 2.5, n_channels), 0.1)
    return build_document(names, current, draws, saturation=saturation, spend_scale=scale)
