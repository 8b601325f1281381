"""Run the pipeline's assets through a Dagster instance as a plan of runs, as a backfill does.

Each month's ingest is its own run (as Dagster's multi-run backfills do), so one month's failing
gate does not stop the others; the fit and everything after it run per requested month. Every
run is recorded in the instance the UI reads.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg

MONTHLY_ASSETS = ("raw_events", "raw_spend")
PANEL_ASSETS = ("weekly_panel",)
STAGE1_ASSETS = ("posterior_trace", "parameter_export")
STAGE2_ASSETS = ("budget_allocation", "attribution_report")


@dataclass(frozen=True)
class PlannedRun:
    """One run: which assets, for which month (None: unpartitioned), and what it needs."""

    name: str
    assets: tuple[str, ...]
    month: str | None = None
    needs: tuple[str, ...] = ()  # names of earlier runs that must have succeeded


@dataclass
class RunSummary:
    """What happened to each planned run: name -> (success, failure reasons)."""

    runs: dict[str, tuple[bool, list[str]]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.skipped and all(ok for ok, _ in self.runs.values())

    def failures(self) -> dict[str, list[str]]:
        return {key: reasons for key, (ok, reasons) in self.runs.items() if not ok}


def pipeline_plan(
    months: Sequence[str],
    *,
    fit_months: Sequence[str] = (),
    ingest: bool = True,
    panel: bool = True,
    stage1: bool = True,
    stage2: bool = True,
) -> list[PlannedRun]:
    """Ingest ``months`` one run each, rebuild the panel, then fit/allocate per ``fit_months``."""
    plan: list[PlannedRun] = []
    if ingest:
        plan += [PlannedRun(f"ingest {m}", MONTHLY_ASSETS, m) for m in months]
    if ingest and panel:
        plan.append(PlannedRun("panel", PANEL_ASSETS, None, tuple(r.name for r in plan)))
    for month in fit_months:
        needs = ("panel",) if ingest and panel else ()
        if stage1:
            plan.append(PlannedRun(f"stage 1 {month}", STAGE1_ASSETS, month, needs))
            needs = (f"stage 1 {month}",)
        if stage2:
            plan.append(PlannedRun(f"stage 2 {month}", STAGE2_ASSETS, month, needs))
    return plan


def _reasons(result: dg.ExecuteInProcessResult) -> list[str]:
    reasons = [
        f"{e.asset_key.to_user_string()}.{e.check_name}: {e.description}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            reasons.append(f"{event.step_key}: {data.user_failure_data.description}")
        elif data.error is not None:
            error = data.error.cause or data.error
            reasons.append(f"{event.step_key}: {error.message.strip()}")
    return reasons


def _definitions_parts(defs: dg.Definitions) -> tuple[list, set[str]]:
    """Every asset and check of ``defs`` (materialize needs upstreams present) and the names."""
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assets = [defs.resolve_assets_def(key) for key in keys]
    return assets + list(defs.asset_checks or []), {k.to_user_string() for k in keys}


def execute_plan(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    plan: Sequence[PlannedRun],
    *,
    asset_config: Mapping[str, dict] | None = None,
    tags: Mapping[str, str] | None = None,
    log_level: str = "INFO",
    on_run=None,
) -> RunSummary:
    """Run ``plan`` in order; a run whose prerequisites failed is skipped and reported.

    ``asset_config`` maps an asset name to its run config (a ``Config`` class's fields);
    ``log_level`` applies to the console only, the instance records every event regardless.
    ``on_run(name, ok, reasons)`` is called after each run (progress display).
    """
    parts, present = _definitions_parts(defs)
    summary = RunSummary()
    for planned in plan:
        selected = [a for a in planned.assets if a in present]
        if not selected:
            continue
        if any(not summary.runs.get(need, (False,))[0] for need in planned.needs):
            summary.skipped.append(planned.name)
            continue
        run_config = {
            "loggers": {"console": {"config": {"log_level": log_level}}},
            "ops": {a: {"config": c} for a, c in (asset_config or {}).items() if a in selected},
        }
        result = dg.materialize(
            parts,
            selection=dg.AssetSelection.assets(*selected),
            partition_key=f"{planned.month}-01" if planned.month else None,
            instance=instance,
            raise_on_error=False,
            tags=dict(tags or {}),
            run_config=run_config,
        )
        reasons = [] if result.success else _reasons(result)
        summary.runs[planned.name] = (result.success, reasons)
        if on_run is not None:
            on_run(planned.name, result.success, reasons)
    return summary
