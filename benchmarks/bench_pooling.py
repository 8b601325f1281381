"""Pooled vs independent market fits: hold-out accuracy, calibration, speed and memory.

Two cases, each fitted both ways on the same weeks with the last 13 held out:

- ``geo``: Google Meridian's 20-geo panel (data/public/meridian/geo_media.csv, 156 weeks x
  4 channels, normal likelihood) read through ``configs/meridian_geo.yaml``. Per-geo and
  overall hold-out CRPS, and the smallest quarter of the geos by sales, where pooling should
  help most.
- ``simulated``: 20 markets x 156 weeks x 7 channels from ``core/synthetic/markets.py`` (a
  hierarchical process with markets 40 to 4000 weekly sales), where the truth is known: the
  coverage of the 94% intervals of each market's channel contribution shares is reported.

"Independent" is one ``fit_mmm`` per market (the single-market default, dense mass), one
after another in one process; "pooled" is one ``fit_markets`` over every market (diagonal
mass). Both share a persistent JAX compilation cache in a temporary folder, as the pipeline's
``storage/jax_cache``, so the independent fits compile their program once. Each mode runs in
its own process; peak memory is that process tree's largest RSS. The overall CRPS is the
mean over markets of CRPS / mean weekly target (markets differ 100x in size). ESS/s is the
smallest bulk ESS over every parameter and market divided by the warm-up plus sampling
seconds of all the fits.

    python benchmarks/bench_pooling.py                          # both cases, 20 markets
    python benchmarks/bench_pooling.py --cases geo --markets 8 --warmup 500 --draws 500

Results go to benchmarks/results/pooling.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_markets import PeakMemory

ROOT = Path(__file__).resolve().parents[1]
HOLDOUT = 13
MODES = ("independent", "pooled")


def geo_markets(n_markets: int):
    """(markets, channel names, control names, weeks, spec) of the first ``n_markets`` geos."""
    from conversionflow_dagster.core.config import load_config
    from conversionflow_dagster.core.ingest.panel import build_panel_from_file
    from conversionflow_dagster.core.model.hierarchical import MarketSeries
    from conversionflow_dagster.core.model.mmm import ModelSpec

    config = load_config(ROOT / "configs/meridian_geo.yaml")
    path = ROOT / config.sources.panel.path
    markets = {}
    for market in config.project.markets[:n_markets]:
        panel = build_panel_from_file(path, config, market)
        markets[market] = MarketSeries(
            panel.spend().to_numpy(),
            panel.frame[config.model.target].to_numpy(),
            panel.frame[list(panel.controls)].to_numpy(),
        )
    controls = [c.removeprefix("control__") for c in panel.controls]
    spec = ModelSpec.from_section(config.model)
    return markets, list(panel.channels), controls, panel.weeks, spec, None


def simulated_markets(n_markets: int, seed: int):
    """The same tuple for simulated markets, plus each market's true contribution shares."""
    from conversionflow_dagster.core.model.hierarchical import MarketSeries
    from conversionflow_dagster.core.model.mmm import ModelSpec
    from conversionflow_dagster.core.synthetic.markets import simulate_markets

    sim = simulate_markets(n_markets, 156, 7, seed=seed)
    first = next(iter(sim.panels.values()))
    markets = {m: MarketSeries(p.spend, p.target, p.controls) for m, p in sim.panels.items()}
    n_fit = len(first.week_start) - HOLDOUT
    truth = {}
    for m, p in sim.panels.items():
        fitted = p.contributions[:n_fit].sum(axis=0)
        truth[m] = fitted / fitted.sum()
    spec = ModelSpec()
    return markets, first.channel_names, first.control_names, first.week_start, spec, truth


def market_scores(idata, market_target: np.ndarray, truth: np.ndarray | None) -> dict:
    """Hold-out CRPS/MAPE and, with the truth, coverage of its 94% share intervals."""
    import arviz as az

    from conversionflow_dagster.core.model.fitting import channel_contributions, crps, fit_metrics

    n_fit = len(market_target) - HOLDOUT
    observed = market_target[n_fit:]
    forecast = idata.predictions["y"].values  # (chain, draw, H)
    row = {
        "crps": crps(observed, forecast),
        "relative_crps": crps(observed, forecast) / market_target[:n_fit].mean(),
        "mape": fit_metrics(observed, forecast)["mape"],
        "mean_target": float(market_target[:n_fit].mean()),
    }
    if truth is not None:
        spend = idata.constant_data["spend"].values
        total = channel_contributions(idata, spend).sum(axis=1)  # (draws, C)
        shares = total / total.sum(axis=1, keepdims=True)
        bounds = az.hdi(shares[None], hdi_prob=0.94)  # (C, 2)
        row["covered"] = ((bounds[:, 0] <= truth) & (truth <= bounds[:, 1])).tolist()
    return row


def child(case: str, mode: str, args: argparse.Namespace) -> dict:
    """Fit one case one way in this process; per-market scores and the fit's cost."""
    from conversionflow_dagster.core.config import Gates
    from conversionflow_dagster.core.model.jax_setup import configure_jax, default_host_devices

    configure_jax(default_host_devices(args.chains), args.cache)
    from conversionflow_dagster.core.model.diagnostics import convergence_report
    from conversionflow_dagster.core.model.fitting import SamplerSettings, fit_mmm
    from conversionflow_dagster.core.model.hierarchical import fit_markets, market_trace

    if case == "geo":
        markets, channels, controls, weeks, spec, truth = geo_markets(args.markets)
    else:
        markets, channels, controls, weeks, spec, truth = simulated_markets(args.markets, args.seed)
    common = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws}
    common |= {"seed": args.seed, "holdout_weeks": HOLDOUT}
    started = time.perf_counter()
    if mode == "pooled":
        fit = fit_markets(markets, channels, controls, weeks, spec, **common,
                          sampler=SamplerSettings(dense_mass=False))  # fmt: skip
        views = {m: market_trace(fit.idata, m) for m in markets}
        reports = [convergence_report(fit.idata)]
        sampling = fit.timings["warmup_s"] + fit.timings["sampling_s"]
    else:
        views, reports, sampling = {}, [], 0.0
        for m, data in markets.items():
            one = fit_mmm(data.spend, data.target, data.controls, channels, controls, weeks,
                          spec, **common)  # fmt: skip
            views[m] = one.idata
            reports.append(convergence_report(one.idata))
            sampling += one.timings["warmup_s"] + one.timings["sampling_s"]
    wall = time.perf_counter() - started
    gates = Gates()
    per_market = {
        m: market_scores(views[m], markets[m].target, truth[m] if truth else None)
        for m in markets
    }
    min_ess = min(r.min_ess_bulk for r in reports)
    return {
        "case": case,
        "mode": mode,
        "markets": len(markets),
        "wall_s": wall,
        "sampling_s": sampling,
        "min_ess_bulk": min_ess,
        "ess_per_s": min_ess / sampling,
        "divergences": sum(r.divergences for r in reports),
        "max_r_hat": max(r.max_r_hat for r in reports),
        "gates_passed": sum(r.failures(gates).passed for r in reports),
        "fits": len(reports),
        "per_market": per_market,
    }


def summarise(run: dict) -> dict:
    """Overall and smallest-quarter relative CRPS, and coverage, from the per-market rows."""
    rows = run["per_market"]
    by_size = sorted(rows, key=lambda m: rows[m]["mean_target"])
    smallest = by_size[: max(1, len(by_size) // 4)]
    summary = {
        "relative_crps": statistics.mean(r["relative_crps"] for r in rows.values()),
        "smallest_quarter_relative_crps": statistics.mean(
            rows[m]["relative_crps"] for m in smallest
        ),
        "smallest_quarter": smallest,
    }
    covered = [c for r in rows.values() for c in r.get("covered", [])]
    if covered:
        summary["coverage"] = float(np.mean(covered))
        summary["smallest_quarter_coverage"] = float(
            np.mean([c for m in smallest for c in rows[m]["covered"]])
        )
    return summary


def run_child(case: str, mode: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", case, mode]
    command += ["--markets", str(args.markets), "--chains", str(args.chains)]
    command += ["--warmup", str(args.warmup), "--draws", str(args.draws), "--seed", str(args.seed)]
    command += ["--cache", args.cache]
    with PeakMemory() as peak:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        peak.watch(process.pid)
        out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"{case} {mode} failed with exit code {process.returncode}")
    run = json.loads(out.strip().splitlines()[-1])
    return {**run, **summarise(run), "peak_rss_mb": peak.peak / 2**20}


def print_tables(runs: list[dict]) -> None:
    head = (
        f"{'case':<10} {'mode':<12} {'wall s':>7} {'NUTS s':>7} {'min ESS':>8} {'ESS/s':>7} "
        f"{'peak MB':>8} {'gates':>6} {'rel CRPS':>9} {'small 1/4':>9} {'coverage':>9}"
    )
    print(head)
    for r in runs:
        gates = f"{r['gates_passed']}/{r['fits']}"
        coverage = f"{r['coverage']:.2f}" if "coverage" in r else "-"
        print(
            f"{r['case']:<10} {r['mode']:<12} {r['wall_s']:>7.0f} {r['sampling_s']:>7.0f} "
            f"{r['min_ess_bulk']:>8.0f} "
            f"{r['ess_per_s']:>7.2f} {r['peak_rss_mb']:>8.0f} {gates:>6} "
            f"{r['relative_crps']:>9.4f} {r['smallest_quarter_relative_crps']:>9.4f} "
            f"{coverage:>9}"
        )
    for case in sorted({r["case"] for r in runs}):
        pair = {r["mode"]: r for r in runs if r["case"] == case}
        if len(pair) < 2:
            continue
        print(f"\n{case}: hold-out CRPS per market, pooled / independent")
        for market, row in pair["pooled"]["per_market"].items():
            other = pair["independent"]["per_market"][market]
            print(
                f"  {market:<8} mean target {row['mean_target']:>12.0f}  "
                f"{row['crps'] / other['crps']:.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["geo", "simulated"])
    parser.add_argument("--markets", type=int, default=20)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args)))
        return
    with tempfile.TemporaryDirectory() as cache:
        args.cache = cache
        runs = [run_child(case, mode, args) for case in args.cases for mode in MODES]
    print_tables(runs)
    out = ROOT / "benchmarks/results/pooling.json"
    out.parent.mkdir(exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("child", "cache")}
    out.write_text(json.dumps({"settings": settings, "runs": runs}, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
