"""Fitting end to end on simulated panels: trace contents, reproducibility, gates, recovery."""

import json

import arviz as az
import numpy as np
import pytest

from conversionflow_dagster.core.config import Gates
from conversionflow_dagster.core.errors import ContractError
from conversionflow_dagster.core.model.diagnostics import convergence_report, evaluate
from conversionflow_dagster.core.model.export_builder import build_parameter_export
from conversionflow_dagster.core.model.fitting import (
    channel_contributions,
    chunk_size,
    load_trace,
    save_trace,
)
from conversionflow_dagster.core.model.history import MIN_FIT_WEEKS
from conversionflow_dagster.core.model.jax_setup import configure_jax, default_host_devices
from conversionflow_dagster.core.model.mmm import ModelSpec, Scales
from conversionflow_dagster.core.model.priors import effective_priors
from conversionflow_dagster.core.synthetic.panel import adstock_loop, simulate_panel
from conversionflow_dagster.core.synthetic.panel import fit_simulated as fit

HOLDOUT = 6
# Chains in parallel when this module is the first to use JAX; otherwise they are vectorised.
configure_jax(default_host_devices(4), None)


@pytest.fixture(scope="module")
def panel():
    return simulate_panel(66, 3, seed=11)


@pytest.fixture(scope="module")
def quick(panel):
    calls = []
    result = fit(
        panel,
        chains=2,
        warmup=300,
        draws=300,
        seed=1,
        holdout_weeks=HOLDOUT,
        progress_callback=lambda *call: calls.append(call),
    )
    return result, calls


@pytest.fixture(scope="module")
def too_short(panel, quick):
    return [fit(panel, chains=2, warmup=20, draws=20, seed=5, scales=quick[0].scales) for _ in "ab"]


def test_quick_fit_produces_a_complete_trace(quick, panel):
    result, calls = quick
    idata = result.idata
    n_fit = len(panel.target) - HOLDOUT
    assert {d: idata.posterior.sizes[d] for d in ("chain", "draw", "channel")} == {
        "chain": 2,
        "draw": 300,
        "channel": 3,
    }
    for group in ("sample_stats", "observed_data", "posterior_predictive", "log_likelihood"):
        assert group in idata.groups()
    assert idata.posterior_predictive["y"].shape == (2, 300, n_fit)
    assert idata.log_likelihood["y"].shape == (2, 300, n_fit)
    assert idata.predictions["y"].shape == (2, 300, HOLDOUT)
    assert idata.constant_data["spend"].shape == (n_fit, 3)
    assert "diverging" in idata.sample_stats
    assert list(idata.posterior.channel.values) == panel.channel_names
    assert np.isfinite(az.loo(idata).elpd_loo)
    assert {"compile_s", "warmup_s", "sampling_s", "total_s"} <= set(result.timings)
    assert result.metrics["r2"] > 0.5
    assert {"mape", "holdout_crps", "holdout_mape"} <= set(result.metrics)
    assert result.metrics["holdout_mape"] < 0.2
    sampling = [c for c in calls if c[2] == "sampling"]
    assert len(sampling) >= 10 and sampling[-1] == (300, 300, "sampling")
    assert [c for c in calls if c[2] == "warmup"][-1] == (300, 300, "warmup")


def test_trace_round_trips_through_netcdf(quick, tmp_path):
    idata = quick[0].idata
    path = save_trace(idata, tmp_path / "fit" / "trace.nc")
    assert [p.name for p in path.parent.iterdir()] == ["trace.nc"]  # no temporary left behind
    loaded = load_trace(path)
    np.testing.assert_array_equal(loaded.posterior["beta"], idata.posterior["beta"])
    attrs = loaded.posterior.attrs
    assert ModelSpec.from_json(attrs["model_spec"]) == quick[0].spec
    assert Scales.from_json(attrs["scales"]) == quick[0].scales
    assert json.loads(attrs["channel_names"]) == ["ch 0", "ch 1", "ch 2"]
    assert attrs["target_name"] == "conversions"
    priors = json.loads(attrs["priors"])  # the priors the fit used, spelt out
    assert priors == effective_priors(quick[0].spec, has_controls=True)
    assert priors["intercept"] == {
        "distribution": "Normal",
        "parameters": {"loc": 0.5, "scale": 0.5},
        "source": "default",
    }
    assert {"adstock_decay", "saturation_lam", "control_coef"} <= set(priors)


def test_same_seed_gives_identical_draws(too_short):
    first, second = (r.idata.posterior for r in too_short)
    for name in first.data_vars:
        np.testing.assert_array_equal(first[name].values, second[name].values)


def test_gate_blocks_a_too_short_run(too_short):
    failures = evaluate(convergence_report(too_short[0].idata), Gates())
    assert failures
    assert any("[ch " in f and ("r_hat" in f or "ess_" in f) for f in failures)


def test_reused_scales_are_kept(quick, too_short):
    assert too_short[0].scales == quick[0].scales
    attrs = too_short[0].idata.posterior.attrs
    assert Scales.from_json(attrs["scales"]) == quick[0].scales


def test_channel_contributions_follow_the_contract(quick, panel):
    result = quick[0]
    post = result.idata.posterior
    contrib = channel_contributions(result.idata, panel.spend, np.array([0, 7]))
    assert contrib.shape == (2, len(panel.target), 3)
    draw = {
        k: post[k].values.reshape(-1, 3)[7] for k in ("beta", "adstock_decay", "saturation_lam")
    }
    a = adstock_loop(
        panel.spend / result.scales.spend_vector(panel.channel_names), draw["adstock_decay"], 8
    )
    lam = draw["saturation_lam"]
    expected = result.scales.target * draw["beta"] * (1 - np.exp(-lam * a)) / (1 + np.exp(-lam * a))
    np.testing.assert_allclose(contrib[1], expected, rtol=2e-4)


def test_parameter_export(quick, panel):
    idata = quick[0].idata
    window = {"start": "2021-01-04", "end": "2022-02-07", "n_weeks": 60}
    current = dict(zip(panel.channel_names, panel.spend[-1], strict=True))
    doc = build_parameter_export(
        idata, n_draws=100, seed=3, current_weekly_spend=current, data_window=window, gates=Gates()
    )
    assert doc["schema_version"] == 1
    assert doc["model"]["saturation"] == {"type": "logistic"}
    assert [c["name"] for c in doc["channels"]] == panel.channel_names
    beta = doc["channels"][0]["parameters"]["beta"]
    assert set(beta) == {"mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk", "ess_tail"}
    assert beta["hdi_3%"] < beta["mean"] < beta["hdi_97%"]
    assert doc["draws"]["n"] == 100
    assert np.shape(doc["draws"]["adstock_decay"]) == (100, 3)
    # Joint draws: row i of every parameter comes from the same posterior draw.
    flat_beta = idata.posterior["beta"].values.reshape(-1, 3)
    flat_decay = idata.posterior["adstock_decay"].values.reshape(-1, 3)
    row = np.flatnonzero((flat_beta == np.float32(doc["draws"]["beta"][5])).all(axis=1))
    np.testing.assert_array_equal(flat_decay[row[0]], np.float32(doc["draws"]["adstock_decay"][5]))
    # ROAS = average weekly contribution / average weekly spend over the fitted weeks.
    spend = idata.constant_data["spend"].values
    roas = channel_contributions(idata, spend).mean(axis=1) / spend.mean(axis=0)
    assert doc["channels"][1]["roas"]["mean"] == pytest.approx(roas[:, 1].mean(), rel=1e-5)
    json.dumps(doc, allow_nan=False)


def test_export_passes_the_contract_validator(quick, panel):
    parameter_export = pytest.importorskip("conversionflow_dagster.core.parameter_export")
    current = dict(zip(panel.channel_names, panel.spend[-1].tolist(), strict=True))
    window = {"start": "2021-01-04", "end": "2022-02-07", "n_weeks": 60}
    doc = build_parameter_export(
        quick[0].idata, current_weekly_spend=current, data_window=window, gates=Gates()
    )
    parameter_export.validate_export(doc, "test export")


def test_export_verdict_is_the_projects_gates(quick, panel):
    """The export (and so the report) says "passed" exactly when the configured gates pass."""
    current = dict(zip(panel.channel_names, panel.spend[-1].tolist(), strict=True))
    window = {"start": "2021-01-04", "end": "2022-02-07", "n_weeks": 60}
    loose = Gates(max_r_hat=10.0, min_ess_bulk=0, min_ess_tail=0, max_divergences=10**6)
    tight = Gates(max_r_hat=1.000001, min_ess_bulk=10**9, min_ess_tail=10**9)
    verdicts = {
        name: build_parameter_export(
            quick[0].idata, current_weekly_spend=current, data_window=window, gates=gates
        )["diagnostics"]["passed"]
        for name, gates in {"loose": loose, "tight": tight}.items()
    }
    assert verdicts == {"loose": True, "tight": False}


def test_too_few_weeks_are_refused_with_what_the_data_has_and_the_model_needs(panel):
    with pytest.raises(ContractError) as info:
        fit(panel, holdout_weeks=len(panel.target) - MIN_FIT_WEEKS + 1)
    assert str(info.value).startswith(
        f"the data has 66 complete week(s); the model needs at least 67 ({MIN_FIT_WEEKS} to fit"
    )


def test_chunks_give_a_report_every_tenth():
    assert chunk_size(1000, 1000) == 100
    assert chunk_size(300, 300) == 30
    assert chunk_size(1000, 700) == 50
    assert chunk_size(20, 20) == 2
    assert chunk_size(7, 5) == 1


@pytest.mark.slow
def test_recovers_known_parameters():
    """94% HDIs of contribution shares and decays cover the truth for >= 90% of channels."""
    covered = []
    for seed in (0, 1, 2):
        panel = simulate_panel(156, 7, seed=seed)
        result = fit(panel, chains=4, warmup=1000, draws=1000, seed=seed)
        assert evaluate(convergence_report(result.idata), Gates()) == [], f"seed {seed}"

        contrib = channel_contributions(result.idata, panel.spend).sum(axis=1)  # (draws, C)
        shares = contrib / contrib.sum(axis=1, keepdims=True)
        true_shares = panel.contributions.sum(0) / panel.contributions.sum()
        share_hdi = az.hdi(shares[None], hdi_prob=0.94)  # (C, 2)
        decay_hdi = az.hdi(result.idata.posterior, var_names=["adstock_decay"], hdi_prob=0.94)
        decay_hdi = decay_hdi["adstock_decay"].values  # (C, 2)
        covered += [
            *((share_hdi[:, 0] <= true_shares) & (true_shares <= share_hdi[:, 1])),
            *((decay_hdi[:, 0] <= panel.decay) & (panel.decay <= decay_hdi[:, 1])),
        ]
    assert np.mean(covered) >= 0.9, covered


REFIT_SCRIPT = """
import sys
from conversionflow_dagster.core.model.jax_setup import configure_jax
configure_jax(2, sys.argv[1])
from conversionflow_dagster.core.model.fitting import fit_mmm
from conversionflow_dagster.core.model.mmm import ModelSpec
from conversionflow_dagster.core.synthetic.panel import simulate_panel
p = simulate_panel(40, 2, seed=int(sys.argv[2]))
fit_mmm(p.spend, p.target, p.controls, p.channel_names, p.control_names, p.week_start,
        ModelSpec(), chains=2, warmup=20, draws=20, seed=int(sys.argv[2]))
"""


def test_a_refit_on_new_data_reuses_every_compiled_program(tmp_path):
    """The monthly refit case: same shapes, new numbers. Nothing may be compiled anew, which
    fails if any data array is baked into a program as a constant (a closure, not an argument).
    """
    import subprocess
    import sys
    from pathlib import Path

    cache = tmp_path / "jax_cache"
    root = Path(__file__).resolve().parents[2]

    def entries() -> set[str]:
        return {p.name for p in cache.iterdir() if "autotune" not in p.name}

    def run(seed: int) -> None:
        subprocess.run(
            [sys.executable, "-c", REFIT_SCRIPT, str(cache), str(seed)], cwd=root, check=True
        )

    run(1)
    first = entries()
    assert len(first) > 5
    run(2)
    assert entries() == first


@pytest.mark.slow
def test_student_t_noise_forecasts_better_when_some_weeks_are_far_off():
    """Most weeks sit close to the model and a few far off: the Normal widens every forecast to
    cover those few, the Student-t does not, so its hold-out CRPS is clearly lower."""
    panel = simulate_panel(104, 3, seed=7, likelihood="student_t")
    crps = {
        likelihood: fit(
            panel,
            ModelSpec(likelihood=likelihood),
            chains=2,
            warmup=300,
            draws=300,
            seed=1,
            holdout_weeks=13,
        ).metrics["holdout_crps"]
        for likelihood in ("normal", "student_t")
    }
    assert crps["student_t"] < 0.85 * crps["normal"], crps
