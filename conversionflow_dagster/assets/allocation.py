"""Stage 2, allocation: the budget split that maximises the posterior response.

Reads only ``parameter_export`` (never the trace), so a new budget, new bounds or a new
scenario list reruns in seconds without refitting. With markets, ``budget_allocation`` splits
each market's budget over its channels and ``market_allocation`` splits one total budget over
every market and channel.
"""

import dataclasses

import dagster as dg
from pydantic import Field

from conversionflow_dagster.asset_names import (
    BUDGET_ALLOCATION,
    MARKET_ALLOCATION,
    PARAMETER_EXPORT,
)
from conversionflow_dagster.core.config import OptimisationSection
from conversionflow_dagster.core.errors import ConversionflowError
from conversionflow_dagster.failures import no_retry_failure
from conversionflow_dagster.partitions import (
    MONTH,
    PipelinePartitions,
    dimension_mapping,
    market_of,
    month_of,
)
from conversionflow_dagster.resources import ProjectResource, with_overrides

GROUP = "allocation"
MARKETS_GROUP = "markets"


class AllocationConfig(dg.Config):
    """Run-time overrides of the config's `optimisation` section (the original `--budget`)."""

    budget: float | None = Field(
        None,
        description="Money over horizon_weeks to split over the channels (per market with "
        "markets); default: optimisation.budget, else the current spend over the horizon.",
    )
    total_budget: float | None = Field(
        None,
        description="market_allocation only: money over horizon_weeks split over every market "
        "and channel; default: optimisation.total_budget, else what the markets spend now.",
    )
    scenarios: list[float] | None = Field(
        None,
        description="Other budgets to plan for, each money over horizon_weeks (the budget is "
        "always one); default: optimisation.scenarios, else 80/90/110/125% of the budget.",
    )
    horizon_weeks: int | None = Field(
        None,
        description="Weeks the plan covers (budgets and responses are totals over them); "
        "default: optimisation.horizon_weeks (13).",
    )
    objective: str | None = Field(
        None,
        description="What the plan maximises: mean, quantile (the optimisation.quantile of the "
        "response) or mean_minus_k_sd; default: optimisation.objective (mean).",
    )
    population: int | None = Field(
        None,
        description="Plans per generation of the genetic algorithm; default: "
        "optimisation.population (100).",
    )
    generations: int | None = Field(
        None,
        description="Generations of the genetic algorithm; default: optimisation.generations "
        "(200).",
    )
    seed: int | None = Field(
        None, description="Random seed of the optimiser; default: optimisation.seed (0)."
    )


def build_allocation_assets(parts: PipelinePartitions) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name=BUDGET_ALLOCATION,
        partitions_def=parts.fit,
        group_name=GROUP,
        io_manager_key="json_io",
        kinds={"pygad", "scipy"},
    )
    def budget_allocation(
        context: dg.AssetExecutionContext,
        config: AllocationConfig,
        project: ProjectResource,
        parameter_export: object,
    ) -> dg.Output:
        """GA allocation (pygad) refereed by SLSQP, for every scenario budget."""
        from conversionflow_dagster.core.allocation.optimiser import (
            AllocationSpec,
            allocate_scenarios,
            current_budget,
            scenario_plan,
        )

        section = with_overrides(project.config().optimisation, config)
        current = current_budget(parameter_export, section.horizon_weeks)
        try:
            scenarios = scenario_plan(section.budget, section.scenarios, current)
            result = allocate_scenarios(
                parameter_export,
                AllocationSpec.from_section(section, scenarios.main_budget),
                scenarios.budgets,
                main=scenarios.main,
            )
        except ConversionflowError as error:
            raise no_retry_failure(error) from error
        main = result.main_result
        plan = {
            str(r.channel): round(float(r.optimised_spend), 2) for r in main.channels.itertuples()
        }
        return _allocation_output(
            context,
            section,
            result,
            current_budget=current,
            document={},
            metadata={
                "scenarios": len(scenarios.budgets),
                "plan": dg.MetadataValue.json(plan),
            },
        )

    if parts.markets is None:
        return [budget_allocation]
    return [budget_allocation, _market_allocation_asset(parts)]


def _allocation_output(
    context: dg.AssetExecutionContext,
    section: OptimisationSection,
    result,
    *,
    current_budget: float,
    document: dict,
    metadata: dict,
) -> dg.Output:
    """The allocation document (its checks and the report read it) with the run metadata both
    allocation assets show, plus their own ``document`` and ``metadata`` entries."""
    main = result.main_result
    budget = main.budget
    totals = main.totals()
    return dg.Output(
        {
            "as_of_month": month_of(context.partition_key),
            **document,
            "main_budget": budget,
            "current_budget": current_budget,
            "horizon_weeks": section.horizon_weeks,
            "objective": section.objective,
            **result.to_document(),
        },
        metadata={
            "budget": budget,
            "current_budget": round(current_budget, 2),
            **metadata,
            "uplift_mean": totals["uplift_mean"],
            "p_uplift_positive": totals["p_uplift_positive"],
            "winner": main.winner,
            "ga_referee_gap": main.gap,
            "runtime_s": round(result.runtime_s, 3),
        },
    )


def _market_allocation_asset(parts: PipelinePartitions) -> dg.AssetsDefinition:
    every_market = dg.AssetIn(
        PARAMETER_EXPORT,
        partition_mapping=dimension_mapping(MONTH),
        metadata={"allow_missing_partitions": True},
    )

    @dg.asset(
        name=MARKET_ALLOCATION,
        partitions_def=parts.monthly,
        ins={"exports": every_market},
        group_name=MARKETS_GROUP,
        io_manager_key="json_io",
        kinds={"pygad", "scipy"},
    )
    def market_allocation(
        context: dg.AssetExecutionContext,
        config: AllocationConfig,
        project: ProjectResource,
        exports: dict,
    ) -> dg.Output:
        """One total budget split over every market and channel, from the markets' exports."""
        from conversionflow_dagster.core.allocation.markets import (
            join_market_exports,
            market_channel,
            market_totals,
        )
        from conversionflow_dagster.core.allocation.optimiser import (
            AllocationSpec,
            allocate_scenarios,
            current_budget,
        )

        settings_ = project.config()
        section = with_overrides(settings_.optimisation, config)
        by_market = {market_of(key): export for key, export in exports.items()}
        missing = sorted(set(settings_.project.markets) - set(by_market))
        if missing:
            context.log.warning(f"markets without a parameter export this month: {missing}")
        try:
            joined = join_market_exports(by_market)
            current = current_budget(joined, section.horizon_weeks)
            budget = float(section.total_budget or current)
            spec = dataclasses.replace(
                AllocationSpec.from_section(section, budget),
                # A channel's bounds and lock hold for that channel in every market.
                bounds={
                    market_channel(m, c): (b.min, b.max)
                    for m in by_market
                    for c, b in section.bounds.items()
                },
                locked=tuple(market_channel(m, c) for m in by_market for c in section.locked),
            )
            result = allocate_scenarios(joined, spec, [budget])
        except ConversionflowError as error:
            raise no_retry_failure(error) from error
        by_market_spend = market_totals(result.main_result.channels)
        plan = {m: round(v["optimised_spend"], 2) for m, v in by_market_spend.items()}
        return _allocation_output(
            context,
            section,
            result,
            current_budget=current,
            document={
                "markets": sorted(by_market),
                "missing_markets": missing,
                "market_totals": by_market_spend,
            },
            metadata={
                "markets": len(by_market),
                "missing_markets": ", ".join(missing) or "none",
                "plan_by_market": dg.MetadataValue.json(plan),
            },
        )

    return market_allocation
