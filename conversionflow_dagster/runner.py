"""Run the pipeline's assets through a Dagster instance, month by month, as a backfill does.

Each month is its own run (as Dagster's multi-run backfills do), so one month's failing gate
does not stop the others, and every run is recorded in the instance the UI reads.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

MONTHLY_ASSETS = ("raw_events", "raw_spend")


@dataclass
class RunSummary:
    """What happened to each run: partition (or 'all') -> (success, failure reasons)."""

    runs: dict[str, tuple[bool, list[str]]] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(ok for ok, _ in self.runs.values())

    def failures(self) -> dict[str, list[str]]:
        return {key: reasons for key, (ok, reasons) in self.runs.items() if not ok}


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


def _selected(defs: dg.Definitions, names: Sequence[str]) -> list:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    wanted = [n for n in names if n in keys]
    assets = [defs.resolve_assets_def(n) for n in wanted]
    checks = [
        c
        for c in (defs.asset_checks or [])
        if any(key.asset_key.to_user_string() in wanted for key in c.check_keys)
    ]
    return assets + checks


def materialise(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    months: Sequence[str],
    *,
    monthly_assets: Sequence[str] = MONTHLY_ASSETS,
    downstream: Sequence[str] = ("weekly_panel",),
    tags: dict[str, str] | None = None,
    log_level: str = "INFO",
) -> RunSummary:
    """Materialise ``monthly_assets`` for each month, then ``downstream`` once, with checks.

    ``log_level`` applies to the console only; the instance records every event regardless.
    """
    summary = RunSummary()
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    monthly = _selected(defs, monthly_assets)
    if monthly:
        for month in months:
            result = dg.materialize(
                monthly,
                partition_key=f"{month}-01",
                instance=instance,
                raise_on_error=False,
                tags=tags,
                run_config=run_config,
            )
            summary.runs[month] = (result.success, _reasons(result))
    rest = _selected(defs, downstream)
    if rest and summary.success:
        present = [
            n for n in downstream if any(n == k.to_user_string() for a in rest for k in a.keys)
        ]
        result = dg.materialize(
            rest + monthly,
            selection=dg.AssetSelection.assets(*present),
            instance=instance,
            raise_on_error=False,
            tags=tags,
            run_config=run_config,
        )
        summary.runs["all"] = (result.success, _reasons(result))
    return summary
