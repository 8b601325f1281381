"""Convergence gates: a fit whose chains disagree must not feed the budget optimiser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import xarray as xr


@dataclass(frozen=True)
class Gates:
    """Thresholds a fit must meet (Vehtari et al. 2021 recommendations by default)."""

    max_r_hat: float = 1.01
    min_ess_bulk: float = 400.0
    min_ess_tail: float = 400.0
    max_divergences: int = 0


@dataclass(frozen=True)
class ParameterRow:
    """Diagnostics of one scalar parameter, e.g. ``adstock_decay[tv]``."""

    name: str
    r_hat: float
    ess_bulk: float
    ess_tail: float


@dataclass(frozen=True)
class ConvergenceReport:
    """Worst values over the checked parameters, and the rows that fail a threshold."""

    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    failing: tuple[ParameterRow, ...] = field(default_factory=tuple)


def convergence_report(
    idata: az.InferenceData, var_names: Sequence[str] | None = None, gates: Gates | None = None
) -> ConvergenceReport:
    """R-hat, bulk/tail ESS of every scalar in ``var_names`` (default all posterior variables)."""
    gates = gates or Gates()
    posterior = idata.posterior if var_names is None else idata.posterior[list(var_names)]
    r_hat = az.rhat(posterior)
    ess_bulk = az.ess(posterior, method="bulk")
    ess_tail = az.ess(posterior, method="tail")
    rows = [
        ParameterRow(name, *values)
        for name, values in zip(
            _flat_names(posterior),
            zip(_flat(r_hat), _flat(ess_bulk), _flat(ess_tail), strict=True),
            strict=True,
        )
    ]
    failing = tuple(
        row
        for row in rows
        if not row.r_hat <= gates.max_r_hat
        or not row.ess_bulk >= gates.min_ess_bulk
        or not row.ess_tail >= gates.min_ess_tail
    )
    stats = getattr(idata, "sample_stats", None)
    divergences = int(stats["diverging"].sum()) if stats is not None else 0
    return ConvergenceReport(
        max_r_hat=max((r.r_hat for r in rows), default=float("nan")),
        min_ess_bulk=min((r.ess_bulk for r in rows), default=float("nan")),
        min_ess_tail=min((r.ess_tail for r in rows), default=float("nan")),
        divergences=divergences,
        failing=failing,
    )


def evaluate(report: ConvergenceReport, gates: Gates | None = None) -> list[str]:
    """One message per failed threshold, naming the parameter; empty when the fit passes."""
    gates = gates or Gates()
    failures = []
    for row in report.failing:
        if not row.r_hat <= gates.max_r_hat:
            failures.append(f"{row.name}: r_hat {row.r_hat:.3f} > {gates.max_r_hat}")
        if not row.ess_bulk >= gates.min_ess_bulk:
            failures.append(f"{row.name}: ess_bulk {row.ess_bulk:.0f} < {gates.min_ess_bulk:g}")
        if not row.ess_tail >= gates.min_ess_tail:
            failures.append(f"{row.name}: ess_tail {row.ess_tail:.0f} < {gates.min_ess_tail:g}")
    if report.divergences > gates.max_divergences:
        failures.append(
            f"divergences: {report.divergences} > {gates.max_divergences} "
            "(post-warm-up transitions that diverged)"
        )
    return failures


def _flat(ds: xr.Dataset) -> list[float]:
    return [float(v) for name in ds.data_vars for v in np.ravel(ds[name].values)]


def _flat_names(ds: xr.Dataset) -> list[str]:
    """``name`` for scalars, ``name[coord, ...]`` per element otherwise, in C order."""
    names = []
    for name, var in ds.data_vars.items():
        dims = [d for d in var.dims if d not in ("chain", "draw")]
        if not dims:
            names.append(name)
            continue
        labels = np.meshgrid(*(ds[d].values for d in dims), indexing="ij")
        for index in zip(*(np.ravel(lab) for lab in labels), strict=True):
            names.append(f"{name}[{', '.join(str(i) for i in index)}]")
    return names
