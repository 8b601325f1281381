"""The convergence ladder climbs only for divergences and R-hat, records every rung, and stops
at the first fit that passes; the gate message says what was tried and what to do next."""

import json
import math
from dataclasses import asdict
from pathlib import Path

import arviz as az
import numpy as np
import pytest

from conversionflow_dagster.core.config import Gates
from conversionflow_dagster.core.model.diagnostics import convergence_report
from conversionflow_dagster.core.model.fitting import FitResult, SamplerSettings
from conversionflow_dagster.core.model.gates import gate_failure_message
from conversionflow_dagster.core.model.ladder import (
    LADDER_ATTR,
    fit_until_converged,
    ladder_table,
    rungs,
    sampling_sentence,
)
from conversionflow_dagster.core.model.mmm import ModelSpec, Scales


def test_the_rungs_raise_target_acceptance_then_the_tree_depth_and_warm_up():
    plan = rungs(SamplerSettings(), 1000)
    assert [(s.target_accept, s.max_tree_depth, w) for s, w in plan] == [
        (0.85, 10, 1000),
        (0.95, 10, 1000),
        (0.99, 10, 1000),
        (0.99, 12, 2000),
    ]
    careful = rungs(SamplerSettings(target_accept=0.97, max_tree_depth=14), 500)
    assert [(s.target_accept, s.max_tree_depth, w) for s, w in careful] == [
        (0.97, 14, 500),
        (0.99, 14, 500),
        (0.99, 15, 1000),
    ]
    assert all(s.dense_mass is False for s, _ in rungs(SamplerSettings(dense_mass=False), 10))


def test_warm_up_trees_are_capped_on_the_first_rung_of_a_long_warm_up_only():
    """The first fit saves the deep trees of the unadapted first iterations; a careful rung
    warms up with trees as deep as it samples with, and so does a short warm-up."""
    depths = [s.tree_depths(w) for s, w in rungs(SamplerSettings(), 1000)]
    assert depths == [(6, 10), (10, 10), (10, 10), (12, 12)]
    assert SamplerSettings(max_tree_depth=4).tree_depths(1000) == (4, 4)
    assert SamplerSettings().tree_depths(499) == (10, 10)
    short = _Fits(_trace(0))
    _, tried = fit_until_converged(short, SamplerSettings(), 100, 400, Gates())
    assert tried[0].tree_depth == "10" and "max_tree_depth 10, warm-up 100" in tried[0].describe()
    plain = _Fits(_trace(7), _trace(0))
    _, tried = fit_until_converged(plain, SamplerSettings(), 1000, 400, Gates())
    assert [r.tree_depth for r in tried] == ["10 (6 in warm-up)", "10"]
    assert "max_tree_depth 10 (6 in warm-up), warm-up 1000" in tried[0].describe()
    assert "| 0 | 0.85 | 10 (6 in warm-up) | 1000 |" in ladder_table(tried)


def _trace(divergences: int, stuck: bool = False, draws: int = 400) -> FitResult:
    """A trace of well-mixed chains (or chains stuck apart) with some divergent draws."""
    rng = np.random.default_rng(divergences)
    x = rng.normal(size=(4, draws)) + (np.arange(4)[:, None] * 3.0 if stuck else 0.0)
    diverging = np.zeros((4, draws), bool)
    diverging.flat[:divergences] = True
    idata = az.from_dict(posterior={"intercept": x}, sample_stats={"diverging": diverging})
    return FitResult(idata, ModelSpec(), Scales(target=1.0, spend={}, controls={}))


class _Fits:
    """Stands in for the sampler: the n-th fit returns the n-th trace, and remembers its call."""

    def __init__(self, *traces: FitResult):
        self.traces, self.calls = list(traces), []

    def __call__(self, sampler: SamplerSettings, warmup: int, draws: int) -> FitResult:
        self.calls.append((sampler.target_accept, sampler.max_tree_depth, warmup, draws))
        return self.traces[len(self.calls) - 1]


def test_the_ladder_stops_at_the_first_rung_that_passes_and_records_every_rung():
    fits = _Fits(_trace(7), _trace(2), _trace(0), _trace(0))
    heard = []
    result, tried = fit_until_converged(
        fits, SamplerSettings(), 1000, 400, Gates(), on_rung=heard.append
    )
    assert fits.calls == [(0.85, 10, 1000, 400), (0.95, 10, 1000, 400), (0.99, 10, 1000, 400)]
    assert [r.passed for r in tried] == [False, False, True] and heard == tried
    assert [r.divergences for r in tried] == [7, 2, 0]
    recorded = json.loads(result.idata.posterior.attrs[LADDER_ATTR])
    assert [r["target_accept"] for r in recorded] == [0.85, 0.95, 0.99]
    assert "| 1 | 0.95 | 10 | 1000 | 400 | 2 |" in ladder_table(tried)


def test_chains_that_disagree_climb_too_and_too_few_draws_get_more_draws_once():
    fits = _Fits(_trace(0, stuck=True), _trace(0))
    _, tried = fit_until_converged(fits, SamplerSettings(), 100, 400, Gates())
    assert len(fits.calls) == 2 and tried[0].max_r_hat > 1.01 and tried[1].passed

    # 4 x 50 well-mixed draws: ESS about half the 400 needed, so the same settings again with
    # 1.25 x the shortfall x 50 draws; not the careful rungs, which shrink steps, not add draws
    few = _Fits(_trace(0, draws=50), _trace(0, draws=150))
    result, tried = fit_until_converged(few, SamplerSettings(), 100, 50, Gates())
    shortfall = 400 / min(tried[0].min_ess_bulk, tried[0].min_ess_tail)
    assert 1.5 < shortfall < 3 and not tried[0].passed
    more = math.ceil(1.25 * shortfall * 50)
    assert few.calls == [(0.85, 10, 100, 50), (0.85, 10, 100, more)] and tried[1].passed
    assert [r["draws"] for r in json.loads(result.idata.posterior.attrs[LADDER_ATTR])] == [50, more]

    # still short after the one refit: no second one; far short (over 4x): none at all
    short = _Fits(_trace(0, draws=50), _trace(0, draws=50))
    _, tried = fit_until_converged(short, SamplerSettings(), 100, 50, Gates())
    assert len(short.calls) == 2 and not tried[-1].passed
    hopeless = _Fits(_trace(0))  # bulk ESS ~1600 against a gate of 10000
    _, tried = fit_until_converged(
        hopeless, SamplerSettings(), 100, 400, Gates(min_ess_bulk=10_000)
    )
    assert len(hopeless.calls) == 1 and not tried[0].passed


def test_without_the_ladder_only_the_configured_settings_are_tried():
    fits = _Fits(_trace(7), _trace(0))
    _, tried = fit_until_converged(fits, SamplerSettings(0.9), 200, 400, Gates(), climb=False)
    assert fits.calls == [(0.9, 10, 200, 400)] and not tried[0].passed
    few = _Fits(_trace(0, draws=50), _trace(0))
    _, tried = fit_until_converged(few, SamplerSettings(), 100, 50, Gates(), climb=False)
    assert len(few.calls) == 1 and not tried[0].passed


@pytest.mark.parametrize("climbed", [True, False])
def test_the_gate_message_says_what_was_tried_where_the_trace_is_and_what_to_do(climbed):
    traces = [_trace(5)] * 4
    _, tried = fit_until_converged(
        _Fits(*traces), SamplerSettings(), 1000, 400, Gates(), climb=climbed
    )
    report = convergence_report(traces[-1].idata)
    message = gate_failure_message(report, Gates(), tried, Path("/x/failed/2024-05-01.nc"))
    if climbed:
        assert "after 4 fits of the convergence ladder (the last with target_accept 0.99, " in (
            message
        )
        assert "max_tree_depth 12, warm-up 2000, draws 400)" in message
    else:
        assert "gates (target_accept 0.85, max_tree_depth 10); nothing downstream" in message
    assert "- 5 divergent transition(s) after warm-up (allowed: 0); " in message
    assert "raise model.target_accept (up to 0.99)" in message and "docs/priors.md" in message
    assert "kept for inspection at /x/failed/2024-05-01.nc" in message


def test_the_report_sentence_says_how_the_trace_was_sampled_and_what_the_ladder_did():
    fits = _Fits(_trace(7), _trace(0))
    result, _ = fit_until_converged(fits, SamplerSettings(), 1000, 400, Gates())
    attrs = dict(result.idata.posterior.attrs)
    assert sampling_sentence(attrs) is None  # the sampler's own attribute is written by fit_mmm
    attrs["sampler"] = json.dumps({**asdict(SamplerSettings(0.95)), "warmup": 1000})
    sentence = sampling_sentence(attrs)
    assert sentence.startswith(
        "NUTS with target acceptance 0.95, trees up to depth 10 (6 in warm-up), a dense"
    )
    assert "the first fit (target acceptance 0.85) failed the convergence gates with 7 " in sentence
    assert sentence.endswith("so the convergence ladder refitted 1 time(s).")
    attrs.pop(LADDER_ATTR)
    assert "ladder" not in sampling_sentence(attrs)

    few = _Fits(_trace(0, draws=50), _trace(0, draws=150))
    result, tried = fit_until_converged(few, SamplerSettings(), 1000, 50, Gates())
    attrs = dict(result.idata.posterior.attrs)
    attrs["sampler"] = json.dumps({**asdict(SamplerSettings()), "warmup": 1000})
    sentence = sampling_sentence(attrs)
    assert "with 0 divergence(s), max R-hat" in sentence
    assert sentence.endswith(f"the last time with {tried[-1].draws} draws per chain.")
