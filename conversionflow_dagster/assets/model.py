"""Stage 1, estimation: the posterior trace of the marketing-mix model for each month.

``posterior_trace`` fits on a trailing window of the weekly panel ending at the partition's
month, so a backfill over months refits "as of" each month. Its blocking convergence checks
stop everything downstream when the sampler did not converge.
"""

import json
import time
from collections import Counter
from collections.abc import Iterator
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
    panel_window,
    weeks_left_out,
)
from conversionflow_dagster.core.model.history import short_history
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
        description="poisson, negbinomial, normal or hurdle_poisson; default: model.likelihood "
        "(poisson).",
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
        description="Adapt a full (dense) mass matrix; default: model.dense_mass (true).",
    )
    convergence_ladder: bool | None = Field(
        None,
        description="When the fit diverges or its chains disagree, refit with target "
        "acceptance 0.95, then 0.99, then a deeper tree and twice the warm-up, before failing "
        "the gates; default: model.convergence_ladder (true).",
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
    from conversionflow_dagster.core.model.jax_setup import configure_jax, default_host_devices

    configure_jax(default_host_devices(model.chains), cache_dir)
    from conversionflow_dagster.core.model.fitting import SamplerSettings, fit_mmm
    from conversionflow_dagster.core.model.ladder import fit_until_converged
    from conversionflow_dagster.core.model.mmm import ModelSpec

    if model.target not in panel.frame:
        raise ConversionflowError(
            f"model.target is {model.target!r} but the weekly panel has no such column"
        )
    spec = ModelSpec.from_section(model)
    frame = panel.frame
    fit = partial(
        fit_mmm,
        panel.spend().to_numpy(),
        frame[model.target].to_numpy(),
        frame[list(panel.controls)].to_numpy(),
        list(panel.channels),
        [c.removeprefix(CONTROL_PREFIX) for c in panel.controls],
        panel.weeks,
        spec,
        chains=model.chains,
        draws=model.draws,
        seed=model.seed,
        holdout_weeks=model.holdout_weeks,
        target_name=model.target,
        progress_callback=progress,
        lift_tests=lift_tests,
    )
    first = SamplerSettings(model.target_accept, model.max_tree_depth, model.dense_mass)
    return fit_until_converged(
        lambda sampler, warmup: fit(sampler=sampler, warmup=warmup),
        first,
        model.warmup,
        model.gates,
        climb=model.convergence_ladder,
        on_rung=on_rung,
    )


def build_model_assets(
    parts: PipelinePartitions, calibrate: bool = False
) -> list[dg.AssetsDefinition]:
    """The fit; with ``calibrate`` it reads ``campaign_lift_tests`` into its likelihood."""
    lift_tests = {CAMPAIGN_LIFT_TESTS: dg.AssetIn()} if calibrate else {}

    @dg.asset(
        name=POSTERIOR_TRACE,
        partitions_def=parts.fit,
        ins={WEEKLY_PANEL: parts.panel_input, **lift_tests},
        group_name=GROUP,
        io_manager_key="trace_io",
        pool="mcmc",  # a fit uses every core; the instance caps fits running at once
        kinds={"numpyro", "netcdf"},
    )
    def posterior_trace(
        context: dg.AssetExecutionContext,
        config: FitConfig,
        project: ProjectResource,
        weekly_panel: WeeklyPanel,
        **calibration: pd.DataFrame,
    ) -> dg.Output:
        """NUTS posterior of the marketing-mix model, fitted as of the partition's month."""
        from conversionflow_dagster.core.model.diagnostics import convergence_report
        from conversionflow_dagster.core.model.fitting import save_trace
        from conversionflow_dagster.core.model.gates import gate_failure_message
        from conversionflow_dagster.core.model.ladder import Rung, ladder_table

        started = time.perf_counter()
        model = with_overrides(project.config().model, config)
        month, market = month_of(context.partition_key), market_of(context.partition_key)

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
            window = panel_window(weekly_panel, month, model.window_weeks)
            too_short = short_history(
                len(window.frame), model.holdout_weeks, f"up to the end of {month} the data has"
            )
            if too_short:
                raise ContractError(too_short)
            left_out = weeks_left_out(weekly_panel, window)
            if len(left_out):
                context.log.warning(left_out_message(left_out, model.window_weeks))
            say(
                (f"market {market}: " if market else "")
                + f"fitting as of {month}: {len(window.frame)} weeks ({window.weeks[0].date()} "
                f"to {window.weeks[-1].date()}), {len(window.channels)} channels, "
                f"{model.chains} chains x {model.warmup} warm-up + {model.draws} draws; "
                "building model"
            )
            tests = calibration.get(CAMPAIGN_LIFT_TESTS)
            cache = str(settings.jax_cache_dir())
            with _cache_lookups() as lookups:
                result, rungs = fit_panel(window, model, progress, cache, tests, on_rung)
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
            **({"market": market} if market else {}),
            "weeks": len(window.frame),
            "weeks_left_out": len(left_out),
            "first_week": str(window.weeks[0].date()),
            "last_week": str(window.weeks[-1].date()),
            "likelihood": model.likelihood,
            "chains": model.chains,
            "draws": model.draws,
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

    return [posterior_trace]


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


def build_export_assets(parts: PipelinePartitions) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=PARAMETER_EXPORT,
        partitions_def=parts.fit,
        ins={WEEKLY_PANEL: parts.panel_input},
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
            weeks = posterior_trace.observed_data["week"].values
            document = build_parameter_export(
                posterior_trace,
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
