"""Budget allocation: known optimum, constraints, infeasibility, risk, determinism, scenarios."""

import json

import numpy as np
import pandas as pd
import pytest

from conversionflow_dagster.core.allocation.optimiser import (
    AllocationError,
    AllocationSpec,
    allocate,
    allocate_scenarios,
    plan_bounds,
    project_to_budget,
)
from conversionflow_dagster.core.parameter_export import validate_export
from conversionflow_dagster.core.synthetic.export import (
    CURRENT_BUDGET,
    build_document,
    realistic_document,
)


@pytest.fixture(scope="module")
def export():
    return validate_export(realistic_document(n_channels=7, n_draws=500, seed=1))


def closed_form_optimum(beta, lam, decay, scale, target, max_lag, horizon, budget):
    """Equal marginal returns (KKT) for one draw of logistic curves, by bisection on the
    Lagrange multiplier: channel c's horizon response is H A tanh(g X / H), whose slope
    A g (1 - tanh^2) equals the multiplier at X = H / g artanh(sqrt(1 - multiplier / (A g)))."""
    a = target * beta
    g = lam * (1 - decay**max_lag) / (1 - decay) / (2 * scale)

    def spend(multiplier):
        return horizon / g * np.arctanh(np.sqrt(np.clip(1 - multiplier / (a * g), 0, 1)))

    low, high = 0.0, float((a * g).max())
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if spend(mid).sum() > budget else (low, mid)
    return spend((low + high) / 2)


def test_matches_the_closed_form_optimum():
    names = ["search", "social", "tv", "radio", "display"]
    params = {
        "beta": np.array([[0.3, 0.2, 0.25, 0.1, 0.15]]),
        "adstock_decay": np.array([[0.3, 0.5, 0.1, 0.6, 0.2]]),
        "saturation_lam": np.array([[1.0, 2.0, 0.7, 3.0, 1.5]]),
    }
    scale = np.array([35e3, 25e3, 30e3, 8e3, 6e3])
    current = [40e3, 30e3, 20e3, 10e3, 5e3]
    export = validate_export(
        build_document(names, current, params, spend_scale=scale, normalize=False, max_lag=8)
    )
    budget = 1.2e6
    expected = closed_form_optimum(
        *(params[k][0] for k in ("beta", "saturation_lam", "adstock_decay")),
        scale,
        800.0,
        8,
        13,
        budget,
    )
    assert expected.sum() == pytest.approx(budget, rel=1e-9)
    spec = AllocationSpec(budget=budget, bounds={n: (0.0, budget) for n in names})
    result = allocate(export, spec)
    got = result.channels["optimised_spend"].to_numpy()
    np.testing.assert_allclose(got, expected, atol=0.005 * budget)
    assert result.winner == "ga"


def test_budget_spent_exactly_and_bounds_and_locks_honoured(export):
    budget = 2.5e6
    spec = AllocationSpec(
        budget=budget,
        locked=("channel_03",),
        bounds={"channel_00": (None, 150_000.0), "channel_01": (300_000.0, None)},
    )
    result = allocate(export, spec)
    table = result.channels.set_index("channel")
    spend = table["optimised_spend"]
    assert spend.sum() == pytest.approx(budget, rel=1e-6)
    assert (spend >= table["lower"] * (1 - 1e-9)).all()
    assert (spend <= table["upper"] * (1 + 1e-9)).all()
    assert spend["channel_03"] == pytest.approx(table.loc["channel_03", "current_spend"])
    assert table.loc["channel_03", "locked"]
    assert spend["channel_00"] <= 150_000.0 * (1 + 1e-9)
    assert spend["channel_01"] >= 300_000.0 * (1 - 1e-9)
    assert table["share"].sum() == pytest.approx(1.0, rel=1e-9)
    on_upper = table["bound_hit"] == "upper"
    np.testing.assert_allclose(spend[on_upper], table["upper"][on_upper], atol=1e-6 * budget)
    # band rule: +-50% around the current mix scaled to the budget
    free = table.drop(index=["channel_00", "channel_01", "channel_03"])
    np.testing.assert_allclose(free["lower"], 0.5 * free["current_spend"])
    np.testing.assert_allclose(free["upper"], 1.5 * free["current_spend"])


def test_current_mix_at_the_current_budget_is_the_current_spend(export):
    bounds = plan_bounds(export, AllocationSpec(budget=CURRENT_BUDGET))
    np.testing.assert_allclose(bounds.reference, 13 * export.current_weekly_spend)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            AllocationSpec(budget=1e6, bounds={"channel_00": (900_000.0, None)}),
            "budget 1,000,000 is below the sum of the channel lower bounds",
        ),
        (
            AllocationSpec(budget=1e6, bounds_band=0.0, bounds={"channel_00": (None, 0.0)}),
            "budget 1,000,000 is above the sum of the channel upper bounds",
        ),
        (
            AllocationSpec(budget=1e6, bounds={"Channel_00": (0.0, 1.0)}),
            "bounds: unknown channel(s) 'Channel_00'; the export has 'channel_00'",
        ),
        (
            AllocationSpec(budget=1e6, locked=("tv",)),
            "locked: unknown channel(s) 'tv'",
        ),
    ],
)
def test_infeasible_problems_are_rejected_precisely(export, spec, message):
    with pytest.raises(AllocationError) as error:
        allocate(export, spec)
    assert message in str(error.value)


def test_infeasible_message_lists_each_bound_and_its_rule(export):
    spec = AllocationSpec(
        budget=1e6, locked=("channel_02",), bounds={"channel_00": (900_000.0, None)}
    )
    with pytest.raises(AllocationError) as error:
        plan_bounds(export, spec)
    text = str(error.value)
    assert "channel_00 900,000 (explicit min)" in text
    assert "(locked)" in text and "(band -50%)" in text
    assert "lower the minimums, unlock channels or raise the budget" in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"budget": -5.0}, "budget: expected an amount > 0, got -5.0"),
        ({"objective": "median"}, "objective: expected one of mean, quantile, mean_minus_k_sd"),
        ({"quantile": 1.5}, "quantile: expected in (0, 1), got 1.5"),
        ({"bounds": {"tv": (5.0, 1.0)}}, "bounds['tv']: min 5 is above max 1"),
        ({"bounds": {"tv": (-1.0, None)}}, "bounds['tv'] min: expected an amount >= 0"),
        (
            {"bounds": {"tv": (1.0, None)}, "locked": ["tv"]},
            "channel 'tv' is both locked and given bounds",
        ),
    ],
)
def test_spec_is_checked_on_construction(overrides, message):
    with pytest.raises(AllocationError) as error:
        AllocationSpec(**{"budget": 1e6, **overrides})
    assert message in str(error.value)


def zero_spend_export():
    """Two channels in use and a new one (no current spend) with the strongest response."""
    params = {
        "beta": np.array([[0.2, 0.2, 0.4]]),
        "adstock_decay": np.array([[0.3, 0.3, 0.3]]),
        "saturation_lam": np.array([[1.0, 1.0, 1.0]]),
    }
    return validate_export(
        build_document(
            ["search", "tv", "new"], [10e3, 10e3, 0.0], params, spend_scale=[1e4, 1e4, 1e4]
        )
    )


def test_zero_spend_channel_may_receive_up_to_its_cap():
    export, budget = zero_spend_export(), 260e3
    table = allocate(export, AllocationSpec(budget=budget)).channels.set_index("channel")
    assert table.loc["new", "current_spend"] == 0.0
    assert (table.loc["new", "lower"], table.loc["new", "upper"]) == (0.0, 0.05 * budget)
    assert table.loc["new", "optimised_spend"] == pytest.approx(0.05 * budget, rel=1e-4)
    assert table.loc["new", "bound_hit"] == "upper"
    kept = allocate(export, AllocationSpec(budget=budget, zero_spend_share=0.0)).channels
    assert kept.set_index("channel").loc["new", "optimised_spend"] == 0.0
    explicit = AllocationSpec(budget=budget, bounds={"new": (None, 0.5 * budget)})
    freed = allocate(export, explicit).channels.set_index("channel")
    assert 0.1 * budget < freed.loc["new", "optimised_spend"] <= 0.5 * budget


def test_same_seed_gives_identical_results(export):
    spec = AllocationSpec(budget=2.75e6, objective="quantile", population=40, generations=60)
    first, second = allocate(export, spec), allocate(export, spec)
    pd.testing.assert_frame_equal(first.channels, second.channels)
    np.testing.assert_array_equal(first.uplift, second.uplift)
    assert (first.ga_value, first.referee_value, first.winner) == (
        second.ga_value,
        second.referee_value,
        second.winner,
    )


def risky_export():
    """Two channels with the same expected curve; 'risky' has a far wider posterior of beta."""
    rng = np.random.default_rng(5)
    n = 500
    risky = np.exp(rng.normal(0.0, 0.8, n))
    beta = np.column_stack([np.full(n, 0.2), 0.2 * risky / risky.mean()])
    params = {
        "beta": beta,
        "adstock_decay": np.full((n, 2), 0.3),
        "saturation_lam": np.full((n, 2), 1.5),
    }
    return validate_export(
        build_document(["safe", "risky"], [1e4, 1e4], params, spend_scale=[1e4, 1e4])
    )


def test_risk_aware_objectives_move_money_away_from_uncertain_channels():
    export, budget = risky_export(), 260e3
    wide = {"safe": (0.0, budget), "risky": (0.0, budget)}

    def risky_share(**objective) -> float:
        spec = AllocationSpec(budget=budget, bounds=wide, **objective)
        return allocate(export, spec).channels.set_index("channel").loc["risky", "share"]

    assert risky_share() == pytest.approx(0.5, abs=0.005)  # same expected curve: even split
    assert risky_share(objective="quantile", quantile=0.1) < 0.4
    assert risky_share(objective="mean_minus_k_sd", risk_k=1.0) < 0.4


@pytest.mark.parametrize("saturation", ["logistic", "hill"])
def test_ga_reaches_the_referee_and_beats_the_current_plan(saturation):
    export = validate_export(realistic_document(n_channels=7, saturation=saturation, seed=2))
    result = allocate(export, AllocationSpec(budget=CURRENT_BUDGET))
    assert result.winner == "ga"
    assert result.ga_value >= result.referee_value * (1 - 1e-3)
    assert result.optimised_draws.mean() >= result.current_draws.mean()
    assert result.totals()["uplift_mean"] > 0
    assert result.p_uplift_positive > 0.9
    low, high = result.totals()["uplift_hdi"]
    assert low <= result.uplift.mean() <= high


def test_weak_ga_is_polished_or_replaced_by_the_referee(export):
    spec = AllocationSpec(budget=CURRENT_BUDGET, population=4, generations=1)
    result = allocate(export, spec)
    assert result.gap > 1e-3
    assert result.winner in ("ga+polish", "referee")
    assert result.objective_value >= result.referee_value * (1 - 1e-3)


def test_no_freedom_means_no_uplift(export):
    result = allocate(export, AllocationSpec(budget=CURRENT_BUDGET, bounds_band=0.0))
    np.testing.assert_allclose(result.uplift, 0.0, atol=1e-9)
    assert result.p_uplift_positive == 0.0
    assert (result.channels["bound_hit"] != "none").all()


def test_scenarios_table_and_curve(export):
    budgets = [2.0e6, 2.5e6, 2.75e6, 5.0e6]
    scenarios = allocate_scenarios(export, AllocationSpec(budget=2.5e6), budgets, curve_points=9)
    table = scenarios.table
    assert table["budget"].tolist() == budgets
    assert table["optimised_response"].is_monotonic_increasing
    assert table["current_response"].is_monotonic_increasing
    assert (table["optimised_response"] >= table["current_response"]).all()
    assert table["marginal_return"].is_monotonic_decreasing  # logistic curves are concave
    assert (table["optimised_hdi_low"] < table["optimised_response"]).all()
    assert (table["optimised_response"] < table["optimised_hdi_high"]).all()
    assert set(table["winner"]) <= {"ga", "ga+polish", "referee"}
    curve = scenarios.curve
    assert len(curve) == 9
    assert curve["budget"].iloc[0] == 1.0e6 and curve["budget"].iloc[-1] == 7.5e6
    assert curve["optimised_response"].is_monotonic_increasing
    assert (curve["optimised_response"] >= curve["current_response"] * (1 - 1e-9)).all()
    # the same budget and seed give the same plan in a scenario run as on its own
    alone = allocate(export, AllocationSpec(budget=2.75e6))
    pd.testing.assert_frame_equal(alone.channels, scenarios.results[2].channels)
    document = scenarios.to_document()
    assert len(document["scenarios"]) == 4 and len(document["curve"]) == 9


def test_project_to_budget_is_the_exact_euclidean_projection():
    rng = np.random.default_rng(0)
    lower = rng.uniform(0, 0.1, 6)
    upper = lower + rng.uniform(0, 0.5, 6)
    upper[2] = lower[2]  # a locked channel
    x = rng.normal(0.2, 0.4, (200, 6))
    y = project_to_budget(x, lower, upper, 1.0)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-12)
    assert (y >= lower - 1e-15).all() and (y <= upper + 1e-15).all()
    np.testing.assert_allclose(project_to_budget(y, lower, upper, 1.0), y, atol=1e-15)
    # optimality (KKT): one shift tau with y = clip(x - tau, lower, upper)
    shift = x - y
    free = (y > lower + 1e-12) & (y < upper - 1e-12)
    for row in range(len(x)):
        tau = shift[row][free[row]]
        if tau.size:
            np.testing.assert_allclose(tau, tau[0], atol=1e-12)
            np.testing.assert_allclose(np.clip(x[row] - tau[0], lower, upper), y[row], atol=1e-12)


def test_scenario_document_hands_the_report_its_main_plan_and_one_best_row(export):
    """Through the real hand-off: the allocation document names its main plan by index, and
    the report's scenario table marks exactly that row as the plan and one row as best."""
    from conversionflow_dagster.core.allocation.optimiser import (
        current_budget,
        scenario_plan,
    )
    from conversionflow_dagster.core.config import OptimisationSection
    from conversionflow_dagster.core.report.data import scenario_table
    from conversionflow_dagster.core.report.inputs import main_scenario, scenario_frame

    section = OptimisationSection(population=20, generations=10)  # budget and scenarios unset
    current = current_budget(export, section.horizon_weeks)
    assert current == pytest.approx(CURRENT_BUDGET)
    plan = scenario_plan(section.budget, section.scenarios, current)
    assert plan.main_budget == pytest.approx(current) and len(plan.budgets) == 5
    result = allocate_scenarios(
        export, AllocationSpec.from_section(section, plan.main_budget), plan.budgets, main=plan.main
    )
    document = json.loads(json.dumps(result.to_document()))  # as stored, then read back
    assert document["main_scenario"] == 2
    assert main_scenario(document)["budget"] == pytest.approx(current)
    table = scenario_table(scenario_frame(document), "conversions")
    assert [row["main"] for row in table.rows] == ["", "", "main plan", "", ""]
    best = [row["best"] for row in table.rows]
    assert best.count(True) == 1
    uplifts = [s["uplift_mean"] for s in document["scenarios"]]
    assert best.index(True) == int(np.argmax(uplifts))
    assert {s["winner"] for s in document["scenarios"]} <= {"ga", "ga+polish", "referee"}


def test_scenario_plan_defaults_come_from_the_data():
    from conversionflow_dagster.core.allocation.optimiser import scenario_plan

    plan = scenario_plan(None, None, 14_000_000.0)
    assert plan.budgets == pytest.approx((11.2e6, 12.6e6, 14e6, 15.4e6, 17.5e6))
    assert plan.main_budget == 14e6
    configured = scenario_plan(3e6, [2e6, 5e6], 14e6)
    assert configured.budgets == (2e6, 3e6, 5e6) and configured.main == 1
    with pytest.raises(AllocationError, match=r"optimisation\.budget"):
        scenario_plan(None, None, 0.0)
