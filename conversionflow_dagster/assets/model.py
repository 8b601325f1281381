"""Stage 1, estimation: the posterior trace of the marketing-mix model for each month.

``posterior_trace`` fits on a trailing window of the weekly panel ending at the partition's
month, so a backfill over months refits "as of" each month. Its blocking convergence checks
stop everything downstream when the sampler did not converge. With markets pooled
(``model.markets: hierarchical``) one trace per month holds every market, and each market's
export reads its own view of it.
"""

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from conversionflow_dagster import settings
from conversionflow_dagster.asset_names import (
    CAMPAIGN_LIFT_TESTS,
    PARAMETER_EXPORT,
    POSTERIOR_TRACE,
    WEEKLY_PANEL,
)
from conversionflow_dagster.core.config import ModelSection
from conversionflow_dagster.core.errors import ContractError, ConversionflowError
from conversionflow_dagster.core.ingest.panel import (
    WeeklyPanel,
    left_out_message,
    not_shared_message,
    panel_window,
    shared_windows,
    weeks_left_out,
)
from conversionflow_dagster.core.model.history import short_history
from conversionflow_dagster.core.model.priors import LIKELIHOODS
from conversionflow_dagster.failures import no_retry_failure, retry_only_io_faults
from conversionflow_dagster.partitions import PipelinePartitions, market_of, month_of
from conversionflow_dagster.resources import ProjectResource, with_overrides

GROUP = "model"
CONTROL_PREFIX = "control__"
_CACHE_HIT = "/jax/compilation_cache/cache_hits"  # events of jax.monitoring
_CACHE_MISS = "/jax/compilation_cache/cache_misses"


class FitConfig(dg.Config):
    """Run-time overrides of the config's `model` section (the original tool's flags)."""

    chains: int | None = Field(
        None,
        description="Markov chains (parallel when there are devices for them); default: "
        "model.chains (4).",
    )
    warmup: int | None = Field(
        None, description="Warm-up (tuning) iterations per chain; default: model.warmup (1000)."
    )
    draws: int | None = Field(
        None, description="Posterior draws kept per chain; default: model.draws (1000)."
    )
    likelihood: str | None = Field(
        None,
        description=f"{', '.join(LIKELIHOODS)}; default: model.likelihood (poisson for "
        "conversions, student_t for revenue).",
    )
    seed: int | None = Field(
        None, description="Random seed of the sampler; default: model.seed (0)."
    )
    window_weeks: int | None = Field(
        None,
        description="The most weeks fitted, a trailing window ending at the partition's month "
        "(at least 26); default: model.window_weeks, else every complete week.",
    )
    holdout_weeks: int | None = Field(
        None,
        description="Last weeks of the window held out of the fit and forecast (CRPS, MAPE); "
        "default: model.holdout_weeks (0).",
    )
    target_accept: float | None = Field(
        None,
        description="NUTS target acceptance probability, above 0.5 and below 1: higher takes "
        "smaller steps (fewer divergences, slower); default: model.target_accept (0.85).",
    )
    max_tree_depth: int | None = Field(
        None,
        description="Deepest NUTS tree (at most 2**depth steps per draw); default: "
        "model.max_tree_depth (10).",
    )
    dense_mass: bool | None = Field(
        None,
        description="Adapt a full (dense) mass matrix; default: model.dense_mass, which when "
        "unset is dense for a single market's fit and diagonal for a pooled fit of markets.",
    )
    convergence_ladder: bool | None = Field(
        None,
        description="When the fit diverges or its chains disagree, refit with target "
        "acceptance 0.95, then 0.99, then a deeper tree and twice the warm-up, before failing "
        "the gates; default: model.convergence_ladder (true).",
    )
    device: str | None = Field(
        None,
        description="auto, cpu or gpu: where NUTS runs; on a GPU at least 16 chains in one "
        "vectorised program, with fewer draws each; default: model.device (auto: the GPU when "
        "JAX has one).",
    )


def fit_panel(
    panel: WeeklyPanel,
    model: ModelSection,
    progress,
    cache_dir: str,
    lift_tests: pd.DataFrame | None = None,
    on_rung=None,
):
    """Fit the model to a panel window (calibrated by ``lift_tests`` when given), climbing the
    convergence ladder when the config allows; JAX is configured before its backend starts."""
    spec, layout = _model_spec(model, {"": panel}, cache_dir)
    from conversionflow_dagster.core.model.fitting import fit_mmm

    frame = panel.frame
    fit = partial(
        fit_mmm,
        panel.spend().to_numpy(),
        frame[model.target].to_numpy(),
        frame[list(panel.controls)].to_numpy(),
        list(panel.channels),
        _control_names(panel),
        panel.weeks,
        spec,
        **_sampling(model, progress) | {"chains": layout.chains, "draws": layout.draws},
        lift_tests=lift_tests,
    )
    return _climb(fit, model, layout, pooled=False, on_rung=on_rung)


def fit_panels(
    windows: Mapping[str, WeeklyPanel],
    model: ModelSection,
    progress,
    cache_dir: str,
    on_rung=None,
):
    """Fit every market's window (the same weeks, channels and controls) as one hierarchical
    model, climbing the convergence ladder when the config allows."""
    spec, layout = _model_spec(model, windows, cache_dir)
    from conversionflow_dagster.core.model.hierarchical import MarketSeries, fit_markets

    series = {
        market: MarketSeries(
            panel.spend().to_numpy(),
            panel.frame[model.target].to_numpy(),
            panel.frame[list(panel.controls)].to_numpy(),
        )
        for market, panel in windows.items()
    }
    first = next(iter(windows.values()))
    fit = partial(
        fit_markets,
        series,
        list(first.channels),
        _control_names(first),
        first.weeks,
        spec,
        **_sampling(model, progress) | {"chains": layout.chains, "draws": layout.draws},
    )
    return _climb(fit, model, layout, pooled=True, on_rung=on_rung)


def _model_spec(model: ModelSection, panels: Mapping[str, WeeklyPanel], cache_dir: str):
    """(model spec, sampling layout), once JAX is configured for ``model.device`` (before its
    backend starts) and every panel has the target column."""
    from conversionflow_dagster.core.model.device import prepare_sampling

    cells = sum(len(p.frame) * len(p.channels) for p in panels.values())
    layout = prepare_sampling(model, cache_dir, cells)
    from conversionflow_dagster.core.model.mmm import ModelSpec

    for market, panel in panels.items():
        if model.target not in panel.frame:
            raise ConversionflowError(
                f"model.target is {model.target!r} but the weekly panel"
                f"{f' of market {market}' if market else ''} has no such column"
            )
    return ModelSpec.from_section(model), layout


def _control_names(panel: WeeklyPanel) -> list[str]:
    return [c.removeprefix(CONTROL_PREFIX) for c in panel.controls]


def _sampling(model: ModelSection, progress) -> dict:
    """The fit's arguments that come straight from the config, in both kinds of fit."""
    return {
        "chains": model.chains,
        "draws": model.draws,
        "seed": model.seed,
        "holdout_weeks": model.holdout_weeks,
        "target_name": model.target,
        "progress_callback": progress,
    }


def _climb(fit, model: ModelSection, layout, *, pooled: bool, on_rung):
    """Run ``fit(sampler=, warmup=, draws=)`` up the convergence ladder, from the configured sampler
    settings (the one place ``model.dense_mass`` is resolved for the fit at hand); the trace
    records the device layout it was sampled with."""
    from conversionflow_dagster.core.model.device import LAYOUT_ATTR
    from conversionflow_dagster.core.model.fitting import SamplerSettings
    from conversionflow_dagster.core.model.ladder import fit_until_converged

    first = SamplerSettings(model.target_accept, model.max_tree_depth, model.dense_mass_for(pooled))
    result, rungs = fit_until_converged(
        lambda sampler, warmup, draws: fit(sampler=sampler, warmup=warmup, draws=draws),
        first,
        model.warmup,
        layout.draws,
        model.gates,
        climb=model.convergence_ladder,
        on_rung=on_rung,
    )
    result.idata.posterior.attrs[LAYOUT_ATTR] = layout.to_json()
    return result, rungs


@dataclasses.dataclass(frozen=True)
class _FitPlan:
    """One trace partition's fit: what the log says of its data, how to run it (with the
    progress and ladder callbacks) and the metadata of its data."""

    summary: str
    run: Callable[..., tuple]
    metadata: dict


def _window_plan(
    panel: WeeklyPanel,
    month: str,
    market: str | None,
    model: ModelSection,
    warn: Callable[[str], None],
    cache_dir: str,
    lift_tests: pd.DataFrame | None,
) -> _FitPlan:
    """One panel's trailing window as of ``month``, fitted alone."""
    window = panel_window(panel, month, model.window_weeks)
    too_short = short_history(
        len(window.frame), model.holdout_weeks, f"up to the end of {month} the data has"
    )
    if too_short:
        raise ContractError(too_short)
    left_out = weeks_left_out(panel, window)
    if len(left_out):
        warn(left_out_message(left_out, model.window_weeks))
    return _FitPlan(
        (f"market {market}: " if market else "") + _fitting_text(month, window),
        partial(fit_panel, window, model, cache_dir=cache_dir, lift_tests=lift_tests),
        {**({"market": market} if market else {}), **_window_metadata(window, left_out)},
    )


def _pooled_plan(
    panels: Mapping[str, WeeklyPanel],
    markets: list[str],
    month: str,
    model: ModelSection,
    warn: Callable[[str], None],
    cache_dir: str,
) -> _FitPlan:
    """Every market's window as of ``month``, over the weeks all of them have, fitted together."""
    missing = [m for m in markets if m not in panels]
    if missing:
        raise ContractError(
            f"the pooled fit needs every market's weekly panel; none is stored for {missing}: "
            "materialise weekly_panel for them first"
        )
    windows, not_shared = shared_windows({m: panels[m] for m in markets}, month)
    if not_shared:
        warn(not_shared_message(not_shared, windows[markets[0]].weeks))
    first = windows[markets[0]]
    for market, window in windows.items():
        if (window.channels, window.controls) != (first.channels, first.controls):
            raise ContractError(
                f"market {market}'s panel has channels {list(window.channels)} and controls "
                f"{_control_names(window)}, market {markets[0]}'s {list(first.channels)} and "
                f"{_control_names(first)}: a pooled fit needs the same in every market"
            )
    common = first.weeks
    kept = common if model.window_weeks is None else common[-model.window_weeks :]
    too_short = short_history(
        len(kept), model.holdout_weeks, f"up to the end of {month} the markets share"
    )
    if too_short:
        raise ContractError(too_short)
    left_out = common[: len(common) - len(kept)]
    if len(left_out):
        warn(left_out_message(left_out, model.window_weeks))
    windows = {m: dataclasses.replace(w, frame=w.frame.loc[kept]) for m, w in windows.items()}
    window = windows[markets[0]]
    return _FitPlan(
        f"{len(markets)} markets in one hierarchical model: " + _fitting_text(month, window),
        partial(fit_panels, windows, model, cache_dir=cache_dir),
        {
            "markets": len(markets),
            "market_names": ", ".join(markets),
            **_window_metadata(window, left_out),
            "weeks_not_shared": sum(len(w) for w in not_shared.values()),
        },
    )


def _fitting_text(month: str, window: WeeklyPanel) -> str:
    return (
        f"fitting as of {month}: {len(window.frame)} weeks ({window.weeks[0].date()} to "
        f"{window.weeks[-1].date()}), {len(window.channels)} channels"
    )


def _window_metadata(window: WeeklyPanel, left_out: pd.DatetimeIndex) -> dict:
    return {
        "weeks": len(window.frame),
        "weeks_left_out": len(left_out),
        "first_week": str(window.weeks[0].date()),
        "last_week": str(window.weeks[-1].date()),
    }


_TRACE_ASSET = {
    "name": POSTERIOR_TRACE,
    "group_name": GROUP,
    "io_manager_key": "trace_io",
    "pool": "mcmc",  # a fit uses every core; the instance caps fits running at once
    "kinds": {"numpyro", "netcdf"},
}


def build_model_assets(
    parts: PipelinePartitions, calibrate: bool = False
) -> list[dg.AssetsDefinition]:
    """The fit: per month of every market together when the markets are pooled, else per
    partition; with ``calibrate`` it reads ``campaign_lift_tests`` into its likelihood."""
    if parts.pooled:
        return [_pooled_trace_asset(parts)]
    lift_tests = {CAMPAIGN_LIFT_TESTS: dg.AssetIn()} if calibrate else {}

    @dg.asset(
        partitions_def=parts.trace,
        ins={WEEKLY_PANEL: parts.trace_panel_input, **lift_tests},
        **_TRACE_ASSET,
    )
    def posterior_trace(
        context: dg.AssetExecutionContext,
        config: FitConfig,
        project: ProjectResource,
        weekly_panel: WeeklyPanel,
        **calibration: pd.DataFrame,
    ) -> dg.Output:
        """NUTS posterior of the marketing-mix model, fitted as of the partition's month."""
        model = with_overrides(project.config().model, config)
        key = context.partition_key
        plan = partial(
            _window_plan,
            weekly_panel,
            month_of(key),
            market_of(key),
            model,
            context.log.warning,
            lift_tests=calibration.get(CAMPAIGN_LIFT_TESTS),
        )
        return _fitted_trace(context, project, model, plan)

    return [posterior_trace]


def _pooled_trace_asset(parts: PipelinePartitions) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=parts.trace,
        ins={WEEKLY_PANEL: parts.trace_panel_input},
        **_TRACE_ASSET,
    )
    def posterior_trace(
        context: dg.AssetExecutionContext,
        config: FitConfig,
        project: ProjectResource,
        weekly_panel: dict,
    ) -> dg.Output:
        """NUTS posterior of one hierarchical model of every market, fitted as of the month:
        channels share population effects, decays and saturation; baselines are local."""
        settings_ = project.config()
        model = with_overrides(settings_.model, config)
        plan = partial(
            _pooled_plan,
            weekly_panel,
            list(settings_.project.markets),
            month_of(context.partition_key),
            model,
            context.log.warning,
        )
        return _fitted_trace(context, project, model, plan)

    return posterior_trace


def _fitted_trace(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    model: ModelSection,
    plan_fit: Callable[..., _FitPlan],
) -> dg.Output:
    """What both trace assets do around their fit: say how it goes, refuse a fit the gates
    fail (keeping its trace aside for inspection), and describe the trace that passes.
    ``plan_fit(cache_dir=)`` prepares the data (a refusal stops the run without retries)."""
    from conversionflow_dagster.core.model.device import layout_metadata
    from conversionflow_dagster.core.model.diagnostics import convergence_report
    from conversionflow_dagster.core.model.fitting import save_trace
    from conversionflow_dagster.core.model.gates import gate_failure_message
    from conversionflow_dagster.core.model.ladder import Rung, ladder_table

    started = time.perf_counter()

    def say(text: str) -> None:
        context.log.info(f"[{time.perf_counter() - started:.1f} s] {text}")

    def progress(done: int, total: int, phase: str) -> None:
        if phase == "compiling":
            say("compiling the sampler")
        elif phase == "compiled":
            say(f"compiled ({_cache_verdict(lookups)})")
        else:
            name = {"warmup": "warm-up"}.get(phase, phase)
            say(f"{name}: {100 * done // total}% ({done}/{total} iterations per chain)")

    def on_rung(rung: Rung) -> None:
        say(rung.describe())
        if not rung.passed and model.convergence_ladder:
            say("climbing the convergence ladder: refitting with more careful settings")

    try:
        plan = plan_fit(cache_dir=str(settings.jax_cache_dir()))
        say(
            f"{plan.summary}, {model.chains} chains x {model.warmup} warm-up + "
            f"{model.draws} draws; building model"
        )
        with _cache_lookups() as lookups:
            result, rungs = plan.run(progress=progress, on_rung=on_rung)
    except ConversionflowError as error:
        raise no_retry_failure(error) from error
    report = convergence_report(result.idata)
    gates = report.failures(model.gates)
    ladder = {
        "convergence_ladder": dg.MetadataValue.md(ladder_table(rungs)),
        "target_accept": rungs[-1].target_accept,
        "max_tree_depth": rungs[-1].max_tree_depth,
    }
    if not gates.passed:
        kept = failed_trace_path(project, context.partition_key)
        save_trace(result.idata, kept)
        raise dg.Failure(
            description=gate_failure_message(report, model.gates, rungs, kept),
            metadata={**ladder, "failed_trace": str(kept)},
            allow_retries=False,
        )
    used = json.loads(result.idata.posterior.attrs.get("lift_tests", '{"used": []}'))["used"]
    metadata = {
        "lift_tests_used": ", ".join(t["test_id"] for t in used) or "none",
        **plan.metadata,
        "likelihood": model.likelihood,
        **layout_metadata(result.idata),  # device, and the chains and draws actually run
        "gates_passed": gates.passed,
        **ladder,
        "divergences": report.divergences,
        "max_r_hat": report.max_r_hat,
        "min_ess_bulk": report.min_ess_bulk,
        "min_ess_tail": report.min_ess_tail,
        **{f"{k}": round(v, 3) for k, v in result.timings.items()},
        **{k: float(v) for k, v in result.metrics.items()},
    }
    return dg.Output(result.idata, metadata=metadata)


def failed_trace_path(project: ProjectResource, partition_key: str) -> Path:
    """Where a trace refused by its gates is kept for inspection: beside the month's traces,
    never where the pipeline reads them, so nothing downstream can use it."""
    key = project.config().project.key
    folder = settings.asset_dir(key, POSTERIOR_TRACE, Path(project.root)) / "failed"
    return folder / f"{partition_key.replace('|', '__')}.nc"


@contextmanager
def _cache_lookups() -> Iterator[Counter]:
    """Count JAX's persistent-cache hits and misses while the block runs, as JAX reports them
    (a cold cache is why a first fit spends minutes compiling)."""
    import jax.monitoring

    lookups: Counter = Counter()

    def heard(event: str, **_: object) -> None:
        if event in (_CACHE_HIT, _CACHE_MISS):
            lookups[event] += 1

    jax.monitoring.register_event_listener(heard)
    try:
        yield lookups
    finally:
        jax.monitoring.unregister_event_listener(heard)


def _cache_verdict(lookups: Counter) -> str:
    hits, misses = lookups[_CACHE_HIT], lookups[_CACHE_MISS]
    if not hits + misses:
        return "no JAX cache lookup: compiled earlier in this process"
    return f"JAX cache {'miss' if misses else 'hit'}: {hits} of {hits + misses} programs cached"


def current_weekly_spend(panel: WeeklyPanel, weeks: int) -> dict[str, float]:
    """Average weekly spend per channel over the last ``weeks`` weeks: the current plan."""
    recent = panel.spend().iloc[-weeks:]
    return {channel: float(value) for channel, value in recent.mean().items()}


def market_view(idata, partition_key: str):
    """The trace of the partition's market: its view of a pooled trace (in the layout of a
    single fit, so what reads it is unchanged), else the trace itself."""
    from conversionflow_dagster.core.model.hierarchical import is_pooled, market_trace

    return market_trace(idata, market_of(partition_key)) if is_pooled(idata) else idata


def build_export_assets(parts: PipelinePartitions) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=PARAMETER_EXPORT,
        partitions_def=parts.fit,
        ins={WEEKLY_PANEL: parts.panel_input, POSTERIOR_TRACE: parts.trace_input},
        group_name=GROUP,
        io_manager_key="export_io",
        retry_policy=dg.RetryPolicy(max_retries=2, delay=2),
        kinds={"json"},
    )
    def parameter_export(
        context: dg.AssetExecutionContext,
        project: ProjectResource,
        posterior_trace: object,
        weekly_panel: WeeklyPanel,
    ) -> dg.Output:
        """The stage 1 -> stage 2 contract: posterior summaries and thinned joint draws."""
        from conversionflow_dagster.core.model.export_builder import build_parameter_export
        from conversionflow_dagster.core.parameter_export import validate_export

        with retry_only_io_faults():
            config = project.config()
            month = month_of(context.partition_key)
            window = panel_window(weekly_panel, month, config.model.window_weeks)
            spend = current_weekly_spend(window, config.optimisation.horizon_weeks)
            trace = market_view(posterior_trace, context.partition_key)
            weeks = trace.observed_data["week"].values
            document = build_parameter_export(
                trace,
                n_draws=config.model.export_draws,
                seed=config.model.seed,
                gates=config.model.gates,
                current_weekly_spend=spend,
                data_window={
                    "start": str(weeks[0])[:10],
                    "end": str(weeks[-1])[:10],
                    "n_weeks": len(weeks),
                    "as_of_month": month,
                },
            )
            export = validate_export(document, f"parameter_export {month}")
        diagnostics = document["diagnostics"]
        return dg.Output(
            export,
            metadata={
                "channels": len(export.channels),
                "draws": int(document["draws"]["n"]),
                "max_r_hat": float(diagnostics["max_r_hat"]),
                "min_ess_bulk": float(diagnostics["min_ess_bulk"]),
                "divergences": int(diagnostics["divergences"]),
                **{f"roas[{c.name}]": float(c.roas["mean"]) for c in export.channels},
            },
        )

    return [parameter_export]
