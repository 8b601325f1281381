"""Convergence gates: a fit whose chains disagree must not feed the budget optimiser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import arviz as az
import numpy as np
import xarray as xr

from conversionflow_dagster.core.config import Gates


@dataclass(frozen=True)
class ParameterRow:
    """Diagnostics of one scalar parameter, e.g. ``adstock_decay[tv]``."""

    name: str
    r_hat: float
    ess_bulk: float
    ess_tail: float


@dataclass(frozen=True)
class GateFailures:
    """The parameters that fail each threshold, worst first; the one place gates compare."""

    r_hat: tuple[ParameterRow, ...]
    ess_bulk: tuple[ParameterRow, ...]
    ess_tail: tuple[ParameterRow, ...]
    divergences: bool

    @property
    def passed(self) -> bool:
        return not (self.r_hat or self.ess_bulk or self.ess_tail or self.divergences)


@dataclass(frozen=True)
class ConvergenceReport:
    """Diagnostics of every checked parameter, the worst values, and the divergence count."""

    rows: tuple[ParameterRow, ...]
    divergences: int

    @property
    def max_r_hat(self) -> float:
        return max((r.r_hat for r in self.rows), default=float("nan"))

    @property
    def min_ess_bulk(self) -> float:
        return min((r.ess_bulk for r in self.rows), default=float("nan"))

    @property
    def min_ess_tail(self) -> float:
        return min((r.ess_tail for r in self.rows), default=float("nan"))

    def failures(self, gates: Gates) -> GateFailures:
        """Which parameters fail which of ``gates`` (NaN diagnostics fail)."""
        return GateFailures(
            r_hat=tuple(
                sorted(
                    (r for r in self.rows if not r.r_hat <= gates.max_r_hat),
                    key=lambda r: -r.r_hat,
                )
            ),
            ess_bulk=tuple(
                sorted(
                    (r for r in self.rows if not r.ess_bulk >= gates.min_ess_bulk),
                    key=lambda r: r.ess_bulk,
                )
            ),
            ess_tail=tuple(
                sorted(
                    (r for r in self.rows if not r.ess_tail >= gates.min_ess_tail),
                    key=lambda r: r.ess_tail,
                )
            ),
            divergences=self.divergences > gates.max_divergences,
        )

    def failing(self, gates: Gates) -> tuple[ParameterRow, ...]:
        """Parameters that fail any threshold of ``gates``, in trace order."""
        bad = self.failures(gates)
        names = {r.name for r in (*bad.r_hat, *bad.ess_bulk, *bad.ess_tail)}
        return tuple(r for r in self.rows if r.name in names)


def convergence_report(
    idata: az.InferenceData, var_names: Sequence[str] | None = None
) -> ConvergenceReport:
    """R-hat, bulk/tail ESS of every scalar in ``var_names`` (default all posterior variables)."""
    posterior = idata.posterior if var_names is None else idata.posterior[list(var_names)]
    r_hat = az.rhat(posterior)
    ess_bulk = az.ess(posterior, method="bulk")
    ess_tail = az.ess(posterior, method="tail")
    rows = tuple(
        ParameterRow(name, *values)
        for name, values in zip(
            _flat_names(posterior),
            zip(_flat(r_hat), _flat(ess_bulk), _flat(ess_tail), strict=True),
            strict=True,
        )
    )
    stats = getattr(idata, "sample_stats", None)
    divergences = int(stats["diverging"].sum()) if stats is not None else 0
    return ConvergenceReport(rows=rows, divergences=divergences)


def evaluate(report: ConvergenceReport, gates: Gates) -> list[str]:
    """One message per failed threshold, naming the parameter; empty when the fit passes."""
    bad = report.failures(gates)
    failures = []
    for row in report.failing(gates):
        if row in bad.r_hat:
            failures.append(f"{row.name}: r_hat {row.r_hat:.3f} > {gates.max_r_hat}")
        if row in bad.ess_bulk:
            failures.append(f"{row.name}: ess_bulk {row.ess_bulk:.0f} < {gates.min_ess_bulk:g}")
        if row in bad.ess_tail:
            failures.append(f"{row.name}: ess_tail {row.ess_tail:.0f} < {gates.min_ess_tail:g}")
    if bad.divergences:
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
