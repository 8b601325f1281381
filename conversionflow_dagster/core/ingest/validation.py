"""Check a project's config and every input file without running the pipeline.

It reads what the ingest assets would read and applies the same rules, so a clean
``conversionflow validate`` means the ingest stage will not refuse the data.
"""

from __future__ import annotations

from pathlib import Path

from conversionflow_dagster.core.config import ProjectConfig, load_config, resolve_project_path
from conversionflow_dagster.core.errors import ContractError, ConversionflowError
from conversionflow_dagster.core.experiments.lift_tests import read_lift_tests
from conversionflow_dagster.core.ingest.events import (
    MonthWithoutData,
    event_rules,
    months_without_data,
    read_month_events,
)
from conversionflow_dagster.core.ingest.panel import (
    WeeklyPanel,
    build_panel_from_events,
    build_panel_from_file,
    complete_weeks,
    left_out_message,
    not_shared_message,
    one_spend_level,
    one_spend_level_message,
    panel_rules,
    panel_window,
    read_controls,
    shared_windows,
    weeks_left_out,
)
from conversionflow_dagster.core.ingest.spend import fed_channels, read_month_spend, spend_rules
from conversionflow_dagster.core.model.history import short_history, unspent_channels
from conversionflow_dagster.core.months import months_between
from conversionflow_dagster.core.rules import CheckOutcome


def _format(where: str, outcomes: list[CheckOutcome]) -> list[str]:
    return [
        f"{where}: {o.name}: {'ok' if o.passed else 'FAILED'}: {o.description}"
        for o in outcomes
        if not o.passed
    ]


def _history(panel: WeeklyPanel, config: ProjectConfig, name: str) -> tuple[list[str], list[str]]:
    """(notes, problems): too few complete weeks for a fit as of the last configured month or
    channels that spend nothing in them, the weeks its capped window leaves out, and channels
    whose window has one spend level."""
    month, model = config.month_range()[1], config.model
    try:
        window = panel_window(panel, month, model.window_weeks)
    except ContractError:  # not one complete week up to the month
        window = None
    what = f"{name}: up to the end of {month} the data has"
    problem = short_history(0 if window is None else len(window.frame), model.holdout_weeks, what)
    if problem:
        return [], [f"error: {problem}"]
    unspent = _unspent([window], model.holdout_weeks, f"a fit as of {month}")
    if unspent:
        return [], [f"error: {name}: {unspent}"]
    left_out = weeks_left_out(panel, window)
    notes = [f"{name}: {left_out_message(left_out, model.window_weeks)}"] if len(left_out) else []
    notes += [
        f"{name}: note: {one_spend_level_message(channel, *level)}"
        for channel, level in one_spend_level(window).items()
    ]
    return notes, []


def _shared_history(
    panels: dict[str | None, WeeklyPanel], config: ProjectConfig
) -> tuple[list[str], list[str]]:
    """(notes, problems) of a pooled fit as of the last configured month: it fits only the
    weeks every market has, so too few shared weeks refuse it and unshared weeks are named."""
    month = config.month_range()[1]
    try:
        windows, not_shared = shared_windows(panels, month)
    except ContractError:  # a market without one complete week up to the month
        windows, not_shared = {}, {}
    shared = next(iter(windows.values())).weeks if windows else []
    problem = short_history(
        len(shared),
        config.model.holdout_weeks,
        f"markets (pooled fit): up to the end of {month} the markets share",
    )
    if problem:
        return [], [f"error: {problem}"]
    unspent = _unspent(list(windows.values()), config.model.holdout_weeks, f"a fit as of {month}")
    if unspent:
        return [], [f"error: markets (pooled fit): {unspent}"]
    return (
        [f"markets (pooled fit): {not_shared_message(not_shared, shared)}"] if not_shared else []
    ), []


def _unspent(windows: list[WeeklyPanel], holdout_weeks: int, fit: str) -> str | None:
    """Channels that spend nothing in the weeks the fit of these windows fits (all markets)."""
    fitted = [w.spend().iloc[: len(w.frame) - holdout_weeks] for w in windows]
    weeks = len(fitted[0])
    total = sum(f.abs().to_numpy() for f in fitted)
    return unspent_channels(total, list(fitted[0].columns), f"the {weeks} weeks {fit} fits")


def _weeks_seen(
    panels: dict[str | None, WeeklyPanel], config: ProjectConfig, as_of_month: str
) -> int:
    """Complete weeks a fit as of the month sees: those every market shares for a pooled fit
    (it fits only those), else the fewest of any market's (each is fitted alone)."""
    try:
        if config.pools_markets:
            return len(shared_windows(panels, as_of_month)[0][next(iter(panels))].frame)
        return min(len(panel_window(panel, as_of_month, None).frame) for panel in panels.values())
    except ContractError:  # a market without one complete week up to the month
        return 0


def check_history(root: Path, config: ProjectConfig, as_of_month: str) -> None:
    """Refuse (ContractError) a fit as of ``as_of_month`` that would see fewer complete weeks
    than the model needs, before any run starts: the events route counts the complete weeks
    of the configured months up to it (what ingest can give at most), the panel route those of
    the panel file. Input errors are left to the runs, which report them in full."""
    if config.sources.route == "events":
        first = config.project.partitions.start_month
        weeks = len(complete_weeks(first, as_of_month, config.project.week_start_index))
        what = f"the configured months {first} to {as_of_month} hold"
    else:
        allow = config.project.allow_paths_outside_root
        path = resolve_project_path(root, config.sources.panel.path, allow_outside=allow)
        markets = config.project.markets or [None]
        try:
            panels = {m: build_panel_from_file(path, config, m) for m in markets}
        except ContractError:  # e.g. a market with no rows: no weeks to fit
            panels = {}
        except ConversionflowError:
            return
        weeks = _weeks_seen(panels, config, as_of_month) if panels else 0
        what = f"up to the end of {as_of_month} " + (
            f"the markets of {path.name} share" if config.pools_markets else f"{path.name} has"
        )
    problem = short_history(weeks, config.model.holdout_weeks, what)
    if problem:
        raise ContractError(problem)


def _panel_checks(
    panel: WeeklyPanel, config: ProjectConfig, name: str, prior_check: bool
) -> tuple[list[str], list[str]]:
    """(notes, problems) of the history and, when asked and the history suffices, of the
    priors (a prior predictive check; it imports JAX, so only on request)."""
    notes, problems = _history(panel, config, name)
    if prior_check and not problems:
        from conversionflow_dagster.core.model.prior_check import prior_check_lines

        more_notes, problems = prior_check_lines(panel, config, name)
        notes += more_notes
    return notes, problems


def validate_inputs(
    root: Path, config_file: Path, prior_check: bool = False
) -> tuple[bool, list[str]]:
    """(all good, report lines). Unreadable input is reported, not raised, month by month.

    ``prior_check`` adds a prior predictive check of each panel (see core/model/prior_check.py).
    """
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
        panels = {}
        for market in config.project.markets or [None]:
            name = f"weekly_panel {market}" if market else "weekly_panel"
            try:
                panel = build_panel_from_file(path(config.sources.panel.path), config, market)
            except ConversionflowError as error:
                problems.append(f"error: {error}")
                continue
            panels[market] = panel
            problems += _format(name, panel_rules(panel))
            lines.append(f"{name}: {len(panel.frame)} weeks, {len(panel.channels)} channels")
            notes, short = _panel_checks(panel, config, name, prior_check)
            lines += notes
            problems += short
        if config.pools_markets and not problems:
            notes, short = _shared_history(panels, config)
            lines += notes
            problems += short
        return not problems, lines + problems

    events, spend = {}, {}
    use_spend = config.sources.spend is not None and bool(fed_channels(config))
    no_data: dict[str, list[MonthWithoutData]] = {}

    sources = {
        "raw_events": (
            lambda m: read_month_events(path(config.sources.events.path), config.sources.events, m),
            event_rules,
            events,
        )
    }
    if use_spend:
        sources["raw_spend"] = (
            lambda m: read_month_spend(path(config.sources.spend.path), config, m),
            spend_rules,
            spend,
        )
    for month in months_between(*config.month_range()):
        for name, (reader, rules, store) in sources.items():
            try:
                store[month] = reader(month)
            except MonthWithoutData as error:  # told once for all such months, below
                no_data.setdefault(name, []).append(error)
                continue
            except ConversionflowError as error:
                problems.append(f"error: {error}")
                continue
            problems += _format(f"{name} {month}", rules(store[month], month))
    problems += [f"error: {months_without_data(errors)}" for errors in no_data.values()]
    if not problems:
        try:
            controls = (
                read_controls(path(config.controls.path), config) if config.controls.path else None
            )
            panel = build_panel_from_events(events, spend if use_spend else None, controls, config)
            problems += _format("weekly_panel", panel_rules(panel))
            lines.append(f"panel: {len(panel.frame)} weeks from {len(events)} months")
            notes, short = _panel_checks(panel, config, "weekly_panel", prior_check)
            lines += notes
            problems += short
        except ConversionflowError as error:
            problems.append(f"error: {error}")
    lines.append(f"events: {sum(len(e) for e in events.values()):,} rows in {len(events)} months")
    return not problems, lines + problems
