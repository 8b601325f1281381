"""Adstock and saturation transforms: the one registry the model, the optimiser and the export read.

Each transform is defined here once: its JAX form (fitted by the NumPyro model), its NumPy
steady-state form and slope (the optimiser's hot path), its per-channel parameters with their
priors and valid ranges, and how its parameters absorb a spend scale. ``mmm``, ``response``,
``export_builder``, ``parameter_export`` and ``config`` take names from :data:`ADSTOCKS` and
:data:`SATURATIONS`, so a new transform is one entry here plus its tests.

The formulas are those of docs/contracts.md. JAX is imported inside the JAX forms only: stage 2
and configuration loading use this module without paying for JAX or starting it early.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Bounds = tuple[float, bool, float | None, bool]  # (lower, lower inclusive, upper, upper inclusive)


@dataclass(frozen=True)
class Parameter:
    """A per-channel parameter of a transform: its site name, its prior and its valid values."""

    name: str  # site in the model, variable in the trace, key in the parameter export
    family: str  # class in numpyro.distributions; the family is fixed, its parameters are not
    prior: Mapping[str, float]  # default parameters of the prior (NumPyro names)
    meaning: str  # one line: what the parameter means on the scaled data
    bounds: Bounds  # values a parameter export may hold


@dataclass(frozen=True)
class Adstock:
    """Carry-over of spend into later weeks.

    ``jax_curve(u, *params, max_lag, normalize)``: (T, C) scaled spend, (..., C) parameters ->
    (..., T, C). ``jax_steady_state`` / ``numpy_steady_state(*params, max_lag, normalize)``:
    the adstock of a constant unit spend, so a constant spend ``u`` has adstock ``u * factor``.
    """

    name: str
    params: tuple[Parameter, ...]
    jax_curve: Callable[..., Any]
    jax_steady_state: Callable[..., Any]
    numpy_steady_state: Callable[..., np.ndarray]

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


@dataclass(frozen=True)
class Saturation:
    """Diminishing returns of the adstocked spend, ``s(a; theta)`` in [0, 1).

    The curves are called as ``f(a, *theta)`` with arrays that broadcast. ``to_money_units(m,
    *theta)`` returns ``theta'`` with ``s(x; theta') = s(m * x; theta)``: the optimiser folds
    the spend scale and the adstock factor into the parameters once, then evaluates plans in
    money directly.
    """

    name: str
    params: tuple[Parameter, ...]
    jax_curve: Callable[..., Any]
    numpy_curve: Callable[..., np.ndarray]
    numpy_slope: Callable[..., np.ndarray]
    to_money_units: Callable[..., tuple[np.ndarray, ...]]
    # What the sampler's per-channel scale ``media_slope`` measures (see :func:`mmm.mmm`):
    # "elasticity", beta * mean_t(a s'(a)), or "level", beta * mean_t(s(a)) (= media_effect).
    sampled_scale: str = "elasticity"

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


# --- geometric adstock -------------------------------------------------------------------------


def geometric_adstock_jax(u: Any, decay: Any, max_lag: int, normalize: bool = True) -> Any:
    """Carry-over sum_l w_l u_{t-l}: (T, C) spend, (..., C) decay -> (..., T, C).

    Done as one gather into a (L, T, C) lag tensor and one contraction, so there is no loop
    over weeks or channels; weeks before the data count as zero spend.
    """
    import jax.numpy as jnp

    lags = jnp.arange(max_lag)  # (L,)
    weights = decay[..., None, :] ** lags[:, None]  # (..., L, C)
    if normalize:
        weights = weights / weights.sum(axis=-2, keepdims=True)
    source = jnp.arange(u.shape[0])[None, :] - lags[:, None]  # (L, T)
    lagged = jnp.where((source >= 0)[..., None], u[jnp.clip(source, 0)], 0.0)  # (L, T, C)
    return jnp.einsum("ltc,...lc->...tc", lagged, weights)


def geometric_steady_state_jax(decay: Any, max_lag: int, normalize: bool) -> Any:
    """Adstock of a constant unit spend in JAX: 1 if normalised, else sum_{l<max_lag} decay^l."""
    import jax.numpy as jnp

    if normalize:
        return 1.0
    return (decay[..., None] ** jnp.arange(max_lag)).sum(axis=-1)


def steady_state_adstock(decay: np.ndarray, max_lag: int, normalize: bool) -> np.ndarray:
    """Adstock of a constant unit spend: 1 if normalised, else sum_{l<max_lag} decay^l."""
    decay = np.asarray(decay, dtype=float)
    if normalize:
        return np.ones_like(decay)
    return np.sum(decay[..., None] ** np.arange(max_lag), axis=-1)


# --- logistic saturation -----------------------------------------------------------------------


def logistic_saturation_jax(a: Any, lam: Any) -> Any:
    """(1 - exp(-lam a)) / (1 + exp(-lam a)), computed as tanh(lam a / 2)."""
    import jax.numpy as jnp

    return jnp.tanh(lam * a / 2.0)


def logistic_saturation(a: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """(1 - exp(-lam a)) / (1 + exp(-lam a)), computed as tanh(lam a / 2) (no overflow)."""
    return np.tanh(0.5 * lam * a)


def logistic_slope(a: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """d/da of the logistic saturation."""
    t = logistic_saturation(a, lam)
    return 0.5 * lam * (1.0 - t * t)


def _logistic_to_money_units(scale: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, ...]:
    """tanh(lam (m x) / 2) = tanh((lam m) x / 2)."""
    return (lam * scale,)


# --- Hill saturation ---------------------------------------------------------------------------


def hill_saturation_jax(a: Any, k: Any, n: Any) -> Any:
    """a^n / (k^n + a^n) as sigmoid(n (log a - log k)); 0 with a finite gradient at a = 0.

    In float32 ``(k / a)^n`` overflows in the last weeks of a carry-over tail (a ~ decay^lag
    with a small decay), and its gradient is then NaN: NUTS saw that as divergences. The
    sigmoid of the log-odds stays finite, with its gradient, for any a > 0.
    """
    import jax
    import jax.numpy as jnp

    positive = a > 0
    log_a = jnp.log(jnp.where(positive, a, 1.0))
    return jnp.where(positive, jax.nn.sigmoid(n * (log_a - jnp.log(k))), 0.0)


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


def _hill_to_money_units(scale: np.ndarray, k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, ...]:
    """(m x)^n / (k^n + (m x)^n) = x^n / ((k / m)^n + x^n)."""
    return (k / scale, n)


# --- the registries ----------------------------------------------------------------------------

_POSITIVE: Bounds = (0.0, False, None, False)

ADSTOCKS: dict[str, Adstock] = {
    "geometric": Adstock(
        name="geometric",
        params=(
            Parameter(
                "adstock_decay",
                "Beta",
                {"concentration1": 2.0, "concentration0": 2.0},
                "share of a week's effect carried into the next week (0: none, near 1: long)",
                (0.0, True, 1.0, False),
            ),
        ),
        jax_curve=geometric_adstock_jax,
        jax_steady_state=geometric_steady_state_jax,
        numpy_steady_state=steady_state_adstock,
    ),
}

SATURATIONS: dict[str, Saturation] = {
    "logistic": Saturation(
        name="logistic",
        params=(
            Parameter(
                "saturation_lam",
                "Gamma",
                {"concentration": 3.0, "rate": 1.5},
                "steepness: at adstock 1 (typical scaled spend) the channel gives tanh(lam/2) "
                "of its maximum",
                _POSITIVE,
            ),
        ),
        jax_curve=logistic_saturation_jax,
        numpy_curve=logistic_saturation,
        numpy_slope=logistic_slope,
        to_money_units=_logistic_to_money_units,
    ),
    "hill": Saturation(
        name="hill",
        params=(
            Parameter(
                "hill_k",
                "Gamma",
                {"concentration": 3.0, "rate": 3.0},
                "half-saturation point: the adstock (in units of typical scaled spend) that "
                "gives half the maximum",
                _POSITIVE,
            ),
            Parameter(
                "hill_n",
                "Gamma",
                {"concentration": 6.0, "rate": 4.0},
                "shape: above 1 the curve is S-shaped, at or below 1 returns diminish at once",
                _POSITIVE,
            ),
        ),
        jax_curve=hill_saturation_jax,
        numpy_curve=hill_saturation,
        numpy_slope=hill_slope,
        to_money_units=_hill_to_money_units,
        # A flighted channel's data pin its average contribution, not its elasticity, and the
        # elasticity / contribution ratio n (1 - s) bends with k and n: sampled in the
        # elasticity, NUTS met a banana and diverged (issue 14).
        sampled_scale="level",
    ),
}

# Every transform parameter by name, adstocks first, in registry order.
PARAMETERS: dict[str, Parameter] = {
    p.name: p for t in (*ADSTOCKS.values(), *SATURATIONS.values()) for p in t.params
}


def transform_parameters(adstock: str, saturation: str) -> tuple[str, ...]:
    """Per-channel transform sites of a model, in the order they are sampled and exported."""
    return ADSTOCKS[adstock].param_names + SATURATIONS[saturation].param_names
