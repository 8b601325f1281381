"""Run the pipeline's assets through a Dagster instance as a plan of runs, as a backfill does.

Each month's ingest is its own run (as Dagster's multi-run backfills do), so one month's failing
gate does not stop the others; the fit and everything after it run per requested month. Every
run is recorded in the instance the UI reads, as a run of the code location's job for its stage
restricted to the planned assets, so the UI can show and re-execute it like its own runs.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg

from conversionflow_dagster.asset_names import (
    ATTRIBUTION_REPORT,
    BUDGET_ALLOCATION,
    CAMPAIGN_LIFT_TESTS,
    CUSTOMER_VALUE,
    MARKET_ALLOCATION,
    PARAMETER_EXPORT,
    POSTERIOR_TRACE,
    RAW_EVENTS,
    RAW_SPEND,
    WEEKLY_PANEL,
)
from conversionflow_dagster.partitions import MARKET, MONTH, month_key
from conversionflow_dagster.settings import PROJECT_TAG

MONTHLY_ASSETS = (RAW_EVENTS, RAW_SPEND)
PANEL_ASSETS = (WEEKLY_PANEL,)
LIFT_TESTS_RUN = "lift tests"
CUSTOMER_VALUE_RUN = "customer value"
STAGE1_ASSETS = (POSTERIOR_TRACE, PARAMETER_EXPORT)
STAGE2_ASSETS = (BUDGET_ALLOCATION, ATTRIBUTION_REPORT)
ACROSS_MARKETS_ASSETS = (MARKET_ALLOCATION,)
SOURCE_TAG = "conversionflow/source"  # "cli": started by execute_plan, not the UI or a sensor


@dataclass(frozen=True)
class PlannedRun:
    """One run: which assets, for which month and market, and which runs it needs."""

    name: str
    assets: tuple[str, ...]
    month: str | None = None  # None: not partitioned by month
    needs: tuple[str, ...] = ()  # names of earlier runs that must have succeeded
    market: str | None = None  # None: not partitioned by market

    @property
    def partition_key(self) -> str | dg.MultiPartitionKey | None:
        if self.market is not None and self.month is not None:
            return dg.MultiPartitionKey({MARKET: self.market, MONTH: month_key(self.month)})
        if self.market is not None:
            return self.market
        return month_key(self.month) if self.month else None


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
    markets: Sequence[str] = (),
    pooled: bool = False,
    selected: Sequence[str] = (),
) -> list[PlannedRun]:
    """Ingest ``months`` one run each, rebuild the panel, then fit/allocate per ``fit_months``.

    With ``markets`` (the panel route's market x month layout) the panel, the fit and the
    allocation run per market, and each fit month ends with the cross-market allocation.
    ``pooled`` markets are fitted together, once per month ("stage 1 <month>"), before each
    market's export; ``selected`` limits the per-market runs to those markets (all when
    empty), though a pooled fit still reads every market's panel, so each is rebuilt.
    """
    chosen = [m for m in markets if m in selected] if selected else list(markets)
    plan: list[PlannedRun] = []
    if ingest:
        plan += [PlannedRun(f"ingest {m}", MONTHLY_ASSETS, m) for m in months]
    if ingest and panel:
        months_done = tuple(r.name for r in plan)
        plan += [
            PlannedRun(_named("panel", m), PANEL_ASSETS, None, months_done, m)
            for m in (markets if pooled else chosen) or [None]
        ]
    # Read by the fit (calibration) and the report; cheap, so rebuilt whenever they are.
    if (ingest and panel) or fit_months:
        plan.append(PlannedRun(LIFT_TESTS_RUN, (CAMPAIGN_LIFT_TESTS,)))
    if (ingest and panel) or (fit_months and stage2):
        needs = ("panel",) if ingest and panel else ()
        plan.append(PlannedRun(CUSTOMER_VALUE_RUN, (CUSTOMER_VALUE,), None, needs))
    for month in fit_months:
        fits = []
        pooled_fit = ()
        if pooled and stage1:
            pooled_fit = (f"stage 1 {month}",)
            panels = tuple(_named("panel", m) for m in markets)
            needs = (*panels, LIFT_TESTS_RUN) if ingest and panel else ()
            plan.append(PlannedRun(pooled_fit[0], (POSTERIOR_TRACE,), month, needs))
        for market in chosen or [None]:
            needs = (_named("panel", market), LIFT_TESTS_RUN) if ingest and panel else ()
            if stage1:
                name = _named(f"stage 1 {month}", market)
                assets = (PARAMETER_EXPORT,) if pooled else STAGE1_ASSETS
                plan.append(PlannedRun(name, assets, month, (*needs, *pooled_fit), market))
                needs, fits = (name,), [*fits, name]
            if stage2:
                name = _named(f"stage 2 {month}", market)
                needs = (*needs, CUSTOMER_VALUE_RUN, LIFT_TESTS_RUN)
                plan.append(PlannedRun(name, STAGE2_ASSETS, month, needs, market))
        if markets and stage2:  # only on this month's fits: never on an older export
            across = f"across markets {month}"
            plan.append(PlannedRun(across, ACROSS_MARKETS_ASSETS, month, tuple(fits)))
    return plan


def _named(name: str, market: str | None) -> str:
    return f"{name} {market}" if market else name


def _reasons(result: dg.ExecuteInProcessResult) -> list[str]:
    reasons = [
        f"{e.asset_key.path[-1]}.{e.check_name}: {e.description}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            text = data.user_failure_data.description
            # a refusal that names its own rules ("raw_events.no_duplicate_events: ...") as is
            reasons.append(
                text if text.startswith(f"{event.step_key}.") else f"{event.step_key}: {text}"
            )
        elif data.error is not None:
            error = data.error.cause or data.error
            if error.cls_name == "DagsterAssetCheckFailedError":
                continue  # the failed checks are listed above, each with its reason
            reasons.append(f"{event.step_key}: {error.message.strip()}")
    return reasons


def _job_for(defs: dg.Definitions, keys: Sequence[dg.AssetKey]) -> str:
    """The first of the code location's jobs that holds every asset of a planned run: the run
    is recorded under that job's name, so the UI's timeline shows it and can re-execute it."""
    graph = defs.resolve_asset_graph()
    for job in defs.jobs or []:
        if set(keys) <= job.selection.resolve(graph):
            return job.name
    raise ValueError(f"no job of the code location holds {[k.to_user_string() for k in keys]}")


def execute_plan(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    plan: Sequence[PlannedRun],
    *,
    asset_config: Mapping[str, dict] | None = None,
    tags: Mapping[str, str] | None = None,
    log_level: str = "INFO",
    console: dg.LoggerDefinition | None = None,
    on_run=None,
) -> RunSummary:
    """Run ``plan`` in order; a run whose prerequisites failed is skipped and reported.

    ``asset_config`` maps an asset name to its run config (a ``Config`` class's fields);
    ``log_level`` applies to the console only, the instance records every event regardless.
    ``console`` replaces Dagster's colored console logger (it takes ``log_level`` as config),
    so a caller decides what reaches its terminal without changing what the event log keeps.
    ``on_run(name, ok, reasons)`` is called after each run (progress display).
    """
    present = {k.path[-1]: k for k in defs.resolve_asset_graph().get_all_asset_keys()}
    project = {key.path[0] for key in present.values()}
    tags = {
        SOURCE_TAG: "cli",
        **({PROJECT_TAG: project.pop()} if len(project) == 1 else {}),
        **(tags or {}),
    }
    summary = RunSummary()
    not_applicable: set[str] = set()  # runs of assets this route does not have
    for planned in plan:
        selected = [a for a in planned.assets if a in present]
        if not selected:
            not_applicable.add(planned.name)
            continue
        needs = [n for n in planned.needs if n not in not_applicable]
        if any(not summary.runs.get(need, (False,))[0] for need in needs):
            summary.skipped.append(planned.name)
            continue
        keys = [present[a] for a in selected]
        run_config = {
            "loggers": {"console": {"config": {"log_level": log_level}}},
            "ops": {
                defs.resolve_assets_def(present[a]).node_def.name: {"config": c}
                for a, c in (asset_config or {}).items()
                if a in selected
            },
        }
        job = defs.resolve_job_def(_job_for(defs, keys))
        if console is not None:
            job = job.with_logger_defs({"console": console})
        result = job.execute_in_process(
            run_config=run_config,
            instance=instance,
            partition_key=planned.partition_key,
            asset_selection=keys,
            raise_on_error=False,
            tags=tags,
        )
        reasons = [] if result.success else _reasons(result)
        summary.runs[planned.name] = (result.success, reasons)
        if on_run is not None:
            on_run(planned.name, result.success, reasons)
    return summary
