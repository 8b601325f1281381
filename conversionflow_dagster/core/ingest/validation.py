"""Check a project's config and every input file without running the pipeline.

It reads what the ingest assets would read and applies the same rules, so a clean
``conversionflow validate`` means the ingest stage will not refuse the data.
"""

from __future__ import annotations

from pathlib import Path

from conversionflow_dagster.core.config import load_config, resolve_project_path
from conversionflow_dagster.core.errors import ConversionflowError
from conversionflow_dagster.core.experiments.lift_tests import read_lift_tests
from conversionflow_dagster.core.ingest.events import event_rules, read_month_events
from conversionflow_dagster.core.ingest.panel import (
    build_panel_from_events,
    build_panel_from_file,
    panel_rules,
    read_controls,
)
from conversionflow_dagster.core.ingest.spend import fed_channels, read_month_spend, spend_rules
from conversionflow_dagster.core.months import months_between
from conversionflow_dagster.core.rules import CheckOutcome


def _format(where: str, outcomes: list[CheckOutcome]) -> list[str]:
    return [
        f"{where}: {o.name}: {'ok' if o.passed else 'FAILED'}: {o.description}"
        for o in outcomes
        if not o.passed
    ]


def validate_inputs(root: Path, config_file: Path) -> tuple[bool, list[str]]:
    """(all good, report lines). Unreadable input is reported, not raised, month by month."""
    config = load_config(config_file)
    allow = config.project.allow_paths_outside_root

    def path(relative: str) -> Path:
        return resolve_project_path(root, relative, allow_outside=allow)

    lines = [
        f"{config_file}: config is valid ({config.sources.route} route, "
        f"{len(config.channels)} channels)"
    ]
    problems: list[str] = []
    if config.experiments.lift_tests is not None:
        try:
            tests = read_lift_tests(path(config.experiments.lift_tests), config.channels)
            lines.append(f"lift tests: {len(tests)} test(s)")
        except ConversionflowError as error:
            problems.append(f"error: {error}")
    if config.sources.route == "panel":
        for market in config.project.markets or [None]:
            name = f"weekly_panel {market}" if market else "weekly_panel"
            try:
                panel = build_panel_from_file(path(config.sources.panel.path), config, market)
            except ConversionflowError as error:
                problems.append(f"error: {error}")
                continue
            problems += _format(name, panel_rules(panel))
            lines.append(f"{name}: {len(panel.frame)} weeks, {len(panel.channels)} channels")
        return not problems, lines + problems

    events, spend = {}, {}
    use_spend = config.sources.spend is not None and bool(fed_channels(config))
    for month in months_between(*config.month_range()):
        try:
            events[month] = read_month_events(
                path(config.sources.events.path), config.sources.events, month
            )
            problems += _format(f"raw_events {month}", event_rules(events[month], month))
            if use_spend:
                spend[month] = read_month_spend(path(config.sources.spend.path), config, month)
                problems += _format(f"raw_spend {month}", spend_rules(spend[month], month))
        except ConversionflowError as error:
            problems.append(f"error: {error}")
    if not problems:
        try:
            controls = (
                read_controls(path(config.controls.path), config) if config.controls.path else None
            )
            panel = build_panel_from_events(events, spend if use_spend else None, controls, config)
            problems += _format("weekly_panel", panel_rules(panel))
            lines.append(f"panel: {len(panel.frame)} weeks from {len(events)} months")
        except ConversionflowError as error:
            problems.append(f"error: {error}")
    lines.append(f"events: {sum(len(e) for e in events.values()):,} rows in {len(events)} months")
    return not problems, lines + problems
