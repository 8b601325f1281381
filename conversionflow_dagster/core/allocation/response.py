"""Steady-state weekly response of each channel to a constant weekly spend, per posterior draw.

Implements the response formulas of docs/contracts.md. A budget plan holds the weekly spend
constant, so geometric adstock reaches its steady state, ``a = u * factor`` with ``u = x / scale``.
Both saturation curves satisfy ``s(m * x; theta) = s(x; theta')`` (logistic: ``lam' = lam * m``;
Hill: ``k' = k / m``), so :class:`ResponseModel` folds the spend scale and the adstock factor into
per-draw parameters in money units once, and evaluating a plan costs one saturation call on a
(..., C, D) array: this is the genetic algorithm's fitness hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from conversionflow_dagster.core.parameter_export import ParameterExport


def steady_state_adstock(decay: np.ndarray, max_lag: int, normalize: bool) -> np.ndarray:
    """Adstock of a constant unit spend: 1 if normalised, else sum_{l<max_lag} decay^l."""
    decay = np.asarray(decay, dtype=float)
    if normalize:
        return np.ones_like(decay)
    return np.sum(decay[..., None] ** np.arange(max_lag), axis=-1)


def logistic_saturation(a: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """(1 - exp(-lam a)) / (1 + exp(-lam a)), computed as tanh(lam a / 2) (no overflow)."""
    return np.tanh(0.5 * lam * a)


def logistic_slope(a: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """d/da of the logistic saturation."""
    t = logistic_saturation(a, lam)
    return 0.5 * lam * (1.0 - t * t)


def _hill_odds(a: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(k / a)^n through logs: +inf at a = 0, and no overflow warning for tiny a."""
    with np.errstate(divide="ignore", over="ignore"):
        return np.exp(n * (np.log(k) - np.log(a)))


def hill_saturation(a: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """a^n / (k^n + a^n), computed as 1 / (1 + (k/a)^n): exact in both tails, 0 at a = 0."""
    return 1.0 / (1.0 + _hill_odds(a, k, n))


def hill_slope(a: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """d/da of the Hill saturation, n s (1 - s) / a.

    At a = 0 the slope is infinite for n < 1, so it is taken at a = 1e-12 k instead: zero spend
    to any practical precision, and a large but finite gradient for the optimiser.
    """
    a = np.maximum(a, 1e-12 * k)
    odds = _hill_odds(a, k, n)
    with np.errstate(divide="ignore"):
        return n / a / (1.0 + odds) / (1.0 + 1.0 / odds)


# saturation type -> (curve, slope), both called as f(a, *parameters)
SATURATIONS: dict[str, tuple[Callable, Callable]] = {
    "logistic": (logistic_saturation, logistic_slope),
    "hill": (hill_saturation, hill_slope),
}


@dataclass(frozen=True)
class ResponseModel:
    """Per-draw constants of ``r_dc(x) = gain_dc * s(x; params_dc)``, x = weekly spend (money)."""

    channels: tuple[str, ...]
    saturation: str
    gain: np.ndarray  # (C, D): scales.target * beta
    params: tuple[np.ndarray, ...]  # each (C, D), saturation parameters in money units

    @classmethod
    def from_export(cls, export: ParameterExport) -> ResponseModel:
        draws = export.draws  # each (D, C)
        adstock = export.model["adstock"]
        factor = steady_state_adstock(
            draws["adstock_decay"], adstock["max_lag"], adstock["normalize"]
        )
        money_to_adstock = factor / export.spend_scale  # (D, C): a = x * money_to_adstock
        if export.saturation == "logistic":
            params = (draws["saturation_lam"] * money_to_adstock,)
        else:
            params = (draws["hill_k"] / money_to_adstock, draws["hill_n"])
        return cls(
            channels=export.channel_names,
            saturation=export.saturation,
            gain=np.ascontiguousarray((export.scales.target * draws["beta"]).T),
            params=tuple(np.ascontiguousarray(p.T) for p in params),
        )

    def astype(self, dtype: np.dtype | type) -> ResponseModel:
        """The same model in another float type (float32 evaluates about 3x faster)."""
        return ResponseModel(
            self.channels,
            self.saturation,
            self.gain.astype(dtype),
            tuple(p.astype(dtype) for p in self.params),
        )

    @property
    def n_draws(self) -> int:
        return self.gain.shape[1]

    @property
    def n_channels(self) -> int:
        return self.gain.shape[0]

    def _saturation(self, weekly_spend: np.ndarray, slope: bool = False) -> np.ndarray:
        """Saturation, or its slope, at (..., C) weekly spend -> (..., C, D)."""
        curve, derivative = SATURATIONS[self.saturation]
        x = np.asarray(weekly_spend, dtype=self.gain.dtype)[..., None]  # (..., C, 1)
        return (derivative if slope else curve)(x, *self.params)

    def response(self, weekly_spend: np.ndarray) -> np.ndarray:
        """Weekly response per draw and channel: (..., C) spend -> (..., D, C)."""
        return np.swapaxes(self.gain * self._saturation(weekly_spend), -1, -2)

    def marginal(self, weekly_spend: np.ndarray) -> np.ndarray:
        """Extra weekly response per extra unit of weekly spend: (..., C) -> (..., D, C)."""
        return np.swapaxes(self.gain * self._saturation(weekly_spend, slope=True), -1, -2)

    def draw_totals(self, weekly_spend: np.ndarray) -> np.ndarray:
        """Weekly response summed over channels, per draw: (..., C) -> (..., D)."""
        return np.einsum("...cd,cd->...d", self._saturation(weekly_spend), self.gain)


def weekly_response(
    export_or_model: ParameterExport | ResponseModel, weekly_spend: np.ndarray
) -> np.ndarray:
    """Weekly response in target units for (..., C) weekly spend -> (..., D, C).

    Pass a :class:`ResponseModel` when calling repeatedly, to build its constants only once.
    """
    spend = np.asarray(weekly_spend, dtype=float)
    if np.any(spend < 0) or not np.all(np.isfinite(spend)):
        raise ValueError("weekly_spend: expected finite amounts >= 0")
    model = (
        export_or_model
        if isinstance(export_or_model, ResponseModel)
        else ResponseModel.from_export(export_or_model)
    )
    if spend.shape[-1:] != (model.n_channels,):
        raise ValueError(
            f"weekly_spend: expected a last axis of {model.n_channels} channels "
            f"({', '.join(model.channels)}), got shape {spend.shape}"
        )
    return model.response(spend)
