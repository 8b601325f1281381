"""Stage 2, allocation: the budget split that maximises the posterior response.

Reads only ``parameter_export`` (never the trace), so a new budget, new bounds or a new
scenario list reruns in seconds without refitting.
"""

import dagster as dg

from conversionflow_dagster.core.config import OptimisationSection
from conversionflow_dagster.core.errors import ConversionflowError
from conversionflow_dagster.partitions import month_of
from conversionflow_dagster.resources import ProjectResource, with_overrides

GROUP = "allocation"


class AllocationConfig(dg.Config):
    """Run-time overrides of the config's `optimisation` section (the original `--budget`)."""

    budget: float | None = None
    scenarios: list[float] | None = None
    horizon_weeks: int | None = None
    objective: str | None = None
    population: int | None = None
    generations: int | None = None
    seed: int | None = None


def allocation_spec(section: OptimisationSection):
    """The core's AllocationSpec for the main budget."""
    from conversionflow_dagster.core.allocation import AllocationSpec

    return AllocationSpec(
        budget=section.budget,
        horizon_weeks=section.horizon_weeks,
        bounds_band=section.bounds_band,
        bounds={name: (b.min, b.max) for name, b in section.bounds.items()},
        locked=tuple(section.locked),
        objective=section.objective,
        quantile=section.quantile,
        risk_k=section.risk_k,
        population=section.population,
        generations=section.generations,
        seed=section.seed,
    )


def scenario_budgets(section: OptimisationSection) -> list[float]:
    """The scenario budgets, the main budget always among them, ascending."""
    return sorted({float(b) for b in [*section.scenarios, section.budget]})


def build_allocation_assets(monthly: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name="budget_allocation",
        partitions_def=monthly,
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
        from conversionflow_dagster.core.allocation import allocate_scenarios

        section = with_overrides(project.config().optimisation, config)
        budgets = scenario_budgets(section)
        try:
            result = allocate_scenarios(parameter_export, allocation_spec(section), budgets)
        except ConversionflowError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error
        document = {
            "as_of_month": month_of(context.partition_key),
            "main_budget": section.budget,
            "horizon_weeks": section.horizon_weeks,
            "objective": section.objective,
            **result.to_document(),
        }
        main = result.results[budgets.index(float(section.budget))]
        totals = main.totals()
        return dg.Output(
            document,
            metadata={
                "budget": section.budget,
                "scenarios": len(budgets),
                "uplift_mean": totals["uplift_mean"],
                "p_uplift_positive": totals["p_uplift_positive"],
                "winner": main.winner,
                "ga_referee_gap": main.gap,
                "runtime_s": round(result.runtime_s, 3),
                "plan": dg.MetadataValue.json(
                    {
                        str(row.channel): round(float(row.optimised_spend), 2)
                        for row in main.channels.itertuples()
                    }
                ),
            },
        )

    return [budget_allocation]
