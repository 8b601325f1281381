"""Posterior summaries shared by every stage: the reported interval and JSON-safe numbers."""

from __future__ import annotations

import math

import numpy as np

# The mass of every interval the project reports: HDIs (exported as hdi_3% / hdi_97%) and the
# equal-tailed bootstrap intervals of customer value alike.
INTERVAL_PROB = 0.94


def hdi(draws: np.ndarray, prob: float = INTERVAL_PROB) -> tuple[float, float] | np.ndarray:
    """Narrowest interval holding ``prob`` of the draws, by ArviZ's definition (``arviz.hdi``).

    1-D draws give ``(low, high)`` as floats; ``(..., D)`` draws give ``(..., 2)``, one interval
    per row over the last axis. It is ArviZ's sorted-window algorithm done for every row in one
    sort, because the allocation asks for it per scenario and ArviZ loops over rows in Python.
    Note the axis: ArviZ reads a 2-D array as (chain, draw) and pools it; this never pools.
    """
    values = np.asarray(draws, dtype=float)
    ordered = np.sort(values, axis=-1)
    n = ordered.shape[-1]
    inside = math.floor(prob * n)  # the window spans inside + 1 draws, as in ArviZ
    widths = ordered[..., inside:] - ordered[..., : n - inside]
    start = np.argmin(widths, axis=-1)[..., None]
    low = np.take_along_axis(ordered, start, -1)
    high = np.take_along_axis(ordered, start + inside, -1)
    if values.ndim == 1:
        return float(low[0]), float(high[0])
    return np.concatenate([low, high], axis=-1)


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or None when it is NaN or infinite: JSON has no such numbers."""
    return float(value) if math.isfinite(value) else None
