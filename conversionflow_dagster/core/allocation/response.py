"""Steady-state weekly response of each channel to a constant weekly spend, per posterior draw.

Implements the response formulas of docs/contracts.md with the NumPy forms of the transform
registry (core/model/transforms.py). A budget plan holds the weekly spend constant, so the adstock
reaches its steady state, ``a = u * factor`` with ``u = x / scale``. Every saturation curve
satisfies ``s(m * x; theta) = s(x; theta')`` (e.g. logistic: ``lam' = lam * m``; Hill:
``k' = k / m``), so :class:`ResponseModel` folds the spend scale and the adstock factor into
per-draw parameters in money units once, and evaluating a plan costs one saturation call on a
(..., C, D) array: this is the genetic algorithm's fitness hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conversionflow_dagster.core.model.transforms import ADSTOCKS, SATURATIONS
from conversionflow_dagster.core.parameter_export import ParameterExport


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
        form = ADSTOCKS[adstock["type"]]
        factor = form.numpy_steady_state(
            *(draws[p] for p in form.param_names), adstock["max_lag"], adstock["normalize"]
        )
        money_to_adstock = factor / export.spend_scale  # (D, C): a = x * money_to_adstock
        saturation = SATURATIONS[export.saturation]
        params = saturation.to_money_units(
            money_to_adstock, *(draws[p] for p in saturation.param_names)
        )
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
        form = SATURATIONS[self.saturation]
        x = np.asarray(weekly_spend, dtype=self.gain.dtype)[..., None]  # (..., C, 1)
        return (form.numpy_slope if slope else form.numpy_curve)(x, *self.params)

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
