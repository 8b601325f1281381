"""Convergence report and gates on hand-made traces with known problems."""

import arviz as az
import numpy as np

from conversionflow_dagster.core.config import Gates
from conversionflow_dagster.core.model.diagnostics import convergence_report, evaluate

DEFAULT = Gates()

CHANNELS = ["tv", "paid search"]


def trace(shift: float = 0.0, divergences: int = 0, draws: int = 1000) -> az.InferenceData:
    """Four chains of independent normal draws; ``shift`` moves chain 0 of ``adstock_decay``."""
    rng = np.random.default_rng(0)
    decay = rng.normal(0.5, 0.05, (4, draws, 2))
    decay[0, :, 0] += shift
    diverging = np.zeros((4, draws), bool)
    diverging.flat[:divergences] = True
    return az.from_dict(
        posterior={"adstock_decay": decay, "intercept": rng.normal(0.3, 0.1, (4, draws))},
        sample_stats={"diverging": diverging},
        coords={"channel": CHANNELS},
        dims={"adstock_decay": ["channel"]},
    )


def test_well_mixed_trace_passes():
    report = convergence_report(trace())
    assert report.max_r_hat < 1.01
    assert report.min_ess_bulk > 400 and report.min_ess_tail > 400
    assert report.divergences == 0 and report.failing(DEFAULT) == ()
    assert evaluate(report, DEFAULT) == []


def test_disagreeing_chain_is_named_with_its_channel():
    report = convergence_report(trace(shift=0.2))
    assert [row.name for row in report.failing(DEFAULT)] == ["adstock_decay[tv]"]
    failures = evaluate(report, DEFAULT)
    assert any(f.startswith("adstock_decay[tv]: r_hat") and "> 1.01" in f for f in failures)
    assert not any("paid search" in f or "intercept" in f for f in failures)


def test_divergences_and_short_runs_fail():
    report = convergence_report(trace(divergences=3, draws=60))
    failures = evaluate(report, DEFAULT)
    assert report.divergences == 3
    assert "divergences: 3 > 0 (post-warm-up transitions that diverged)" in failures
    assert any("ess_bulk" in f and "< 400" in f for f in failures)


def test_custom_gates_and_var_names():
    loose = Gates(max_r_hat=1.5, min_ess_bulk=10, min_ess_tail=10, max_divergences=5)
    report = convergence_report(trace(shift=0.05, divergences=3))
    assert evaluate(report, loose) == []
    only_intercept = convergence_report(trace(shift=0.2), var_names=["intercept"])
    assert only_intercept.failing(DEFAULT) == () and only_intercept.max_r_hat < 1.01


def test_failed_gates_say_what_to_try_next():
    from conversionflow_dagster.core.model.gates import gate_outcomes

    outcomes = {o.name: o for o in gate_outcomes(convergence_report(trace(0.2, 3, 60)), DEFAULT)}
    assert "--draws" in outcomes["min_ess_bulk"].description
    assert "run longer" in outcomes["max_r_hat"].description
    assert "raise model.target_accept" in outcomes["divergences"].description
    passing = {o.name: o for o in gate_outcomes(convergence_report(trace()), DEFAULT)}
    assert all(o.passed for o in passing.values())
    assert "try" not in passing["divergences"].description
