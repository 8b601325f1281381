"""Hold-out accuracy benchmark: this project's fit and PyMC-Marketing's MMM on the same weeks.

On every bundled real dataset (Meridian national, Robyn weekly, PyMC-Marketing's example) and
on simulated panels with known truth, both fit all weeks but the last 26 (13 where the data
have fewer than 130 weeks) and forecast those. The table shows hold-out CRPS, MAPE and R² of
the posterior predictive, the convergence gates and the fit time, medians over seeds, and the
CRPS ratio ours / PyMC-Marketing (below 1: ours forecasts better). Two simulated cases are
misspecified on purpose: Hill-saturation data fitted with the logistic default, and the reverse.
On simulated panels the table also counts the 94% intervals of the channels' contribution
shares (over the fitted weeks) that cover the truth, pooled over seeds: the calibration of
the shares the report states.

    python benchmarks/bench_accuracy.py                  # every dataset, seeds 0 and 1
    python benchmarks/bench_accuracy.py --seeds 20 --no-compare \
        --datasets simulated_logistic simulated_hill     # calibration over 20 seeds
    python benchmarks/bench_accuracy.py --seeds 1 --warmup 300 --draws 300 \\
        --datasets meridian_national robyn_weekly pymc_marketing_example

Our fits take the pipeline's own path: the dataset's config and panel route, the fit window,
the hold-out laid over the model section as the run config lays it, ``assets.model.fit_panel``,
each in a fresh process with a cold compilation cache. PyMC-Marketing runs in its own virtual
environment (installed on first use, as for bench_stage1.py) through pymc_marketing_fit.py, on
the same weekly table plus a linear trend (ours has one), with the same saturation, chains,
warm-up and draws; it returns its hold-out predictive draws, so both sides are scored by the
same functions (``core/model/fitting.py``: ``crps``, ``fit_metrics``) and judged by the same
``model.gates``.
``--no-compare`` fits ours only. Results go to benchmarks/results/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from bench_stage1 import (
    PYMC_MARKETING_FIT,
    PYMC_MARKETING_VENV,
    pymc_marketing_python,
    run_json,
)

if TYPE_CHECKING:
    import arviz as az

    from conversionflow_dagster.core.config import Gates, ModelSection
    from conversionflow_dagster.core.ingest.panel import WeeklyPanel

ROOT = Path(__file__).resolve().parents[1]
REAL = {
    "meridian_national": "configs/meridian_national.yaml",
    "robyn_weekly": "configs/robyn_weekly.yaml",
    "pymc_marketing_example": "configs/pymc_marketing_example.yaml",
}
# Simulated with known truth: (saturation the data are drawn with, saturation fitted).
SIMULATED = {
    "simulated_logistic": ("logistic", "logistic"),
    "simulated_hill": ("hill", "hill"),
    "hill_data_logistic_fit": ("hill", "logistic"),
    "logistic_data_hill_fit": ("logistic", "hill"),
}
SIMULATED_WEEKS, SIMULATED_CHANNELS = 156, 5
TRUTH = "true_contributions.csv"  # a simulated project's weekly contribution per channel
SHORT_DATA_WEEKS = 130  # fewer weeks than this hold out 13 instead of 26
COLUMNS = (
    ("crps", "hold-out CRPS", ".4g"),
    ("mape", "MAPE", ".3f"),
    ("r2", "R²", ".2f"),
    ("gates", "gates", ""),
    ("rungs", "ladder rungs", ".0f"),
    ("coverage", "94% share coverage", ".2f"),
    ("fit_s", "fit s", ".1f"),
)
MEDIANS = ("crps", "mape", "r2", "fit_s", "wall_s")


def holdout_weeks(n_weeks: int) -> int:
    """The weeks held out: the last half-year, or a quarter where the data are short."""
    return 26 if n_weeks >= SHORT_DATA_WEEKS else 13


def simulated_project(name: str, seed: int, folder: Path) -> Path:
    """A project folder with a simulated weekly panel and a panel-route config fitting it;
    returns the config file. The panel and its truth depend on ``seed``."""
    import pandas as pd
    import yaml

    from conversionflow_dagster.core.synthetic.panel import simulate_panel

    drawn, fitted = SIMULATED[name]
    p = simulate_panel(SIMULATED_WEEKS, SIMULATED_CHANNELS, seed=seed, saturation=drawn)
    frame = pd.DataFrame(p.spend, columns=p.channel_names)
    frame.insert(0, "week", p.week_start)
    frame[p.control_names] = p.controls
    frame["conversions"] = p.target
    (folder / "data").mkdir(parents=True)
    frame.to_csv(folder / "data/panel.csv", index=False)
    truth = pd.DataFrame(p.contributions, columns=p.channel_names, index=p.week_start)
    truth.rename_axis("week").to_csv(folder / TRUTH)
    months = {"start_month": f"{p.week_start[0]:%Y-%m}", "end_month": f"{p.week_start[-1]:%Y-%m}"}
    config = {
        "project": {"name": name, "week_start": "monday", "partitions": months},
        "sources": {
            "route": "panel",
            "panel": {
                "path": "data/panel.csv",
                "columns": {"date": "week", "conversions": "conversions"},
            },
        },
        "channels": {c: {"spend_column": c} for c in p.channel_names},
        "controls": {"series": {c: {"column": c} for c in p.control_names}},
        "model": {"saturation": fitted},
    }
    path = folder / "configs" / f"{name}.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fit_inputs(
    root: Path, config_file: Path, seed: int, warmup: int | None, draws: int | None
) -> tuple[ModelSection, WeeklyPanel]:
    """(model section, fit window) as a pipeline run builds them for the config's last month,
    with the hold-out, seed and sampler lengths given as the run config would give them."""
    from conversionflow_dagster.assets.model import FitConfig
    from conversionflow_dagster.core.config import load_config, resolve_project_path
    from conversionflow_dagster.core.ingest.panel import build_panel_from_file, panel_window
    from conversionflow_dagster.resources import with_overrides

    config = load_config(config_file)
    allow = config.project.allow_paths_outside_root
    path = resolve_project_path(root, config.sources.panel.path, allow_outside=allow)
    panel = build_panel_from_file(path, config)
    window = panel_window(panel, config.month_range()[1], config.model.window_weeks)
    run_config = FitConfig(
        holdout_weeks=holdout_weeks(len(window.frame)), seed=seed, warmup=warmup, draws=draws
    )
    return with_overrides(config.model, run_config), window


def scores(observed: np.ndarray, draws: np.ndarray) -> dict[str, float]:
    """Hold-out CRPS, MAPE and R² of predictive ``draws`` (..., weeks): one rule for both tools."""
    from conversionflow_dagster.core.model.fitting import crps, fit_metrics

    metrics = fit_metrics(observed, draws)
    return {"crps": crps(observed, draws), "mape": metrics["mape"], "r2": metrics["r2"]}


def share_coverage(idata: az.InferenceData, truth_file: Path) -> dict[str, int]:
    """How many channels' true share of the fitted weeks' media contribution lie in the
    fit's 94% HDI (``covered`` of ``channels``): the calibration of what the report claims."""
    import arviz as az
    import pandas as pd

    from conversionflow_dagster.core.model.fitting import channel_contributions

    weeks = pd.DatetimeIndex(idata.observed_data["week"].values)
    true = pd.read_csv(truth_file, index_col="week", parse_dates=True).loc[weeks].sum()
    true_shares = (true / true.sum()).to_numpy()  # (C,)
    contributions = channel_contributions(idata, idata.constant_data["spend"].values).sum(axis=1)
    shares = contributions / contributions.sum(axis=1, keepdims=True)  # (draws, C)
    hdi = az.hdi(shares[None], hdi_prob=0.94)  # (C, 2)
    inside = (hdi[:, 0] <= true_shares) & (true_shares <= hdi[:, 1])
    return {"covered": int(inside.sum()), "channels": len(inside)}


def gates_passed(run: dict, gates: Gates) -> bool:
    """``model.gates`` applied to a run's worst diagnostics (NaN fails, as in the pipeline)."""
    return (
        run["max_r_hat"] <= gates.max_r_hat
        and run["min_ess_bulk"] >= gates.min_ess_bulk
        and run["min_ess_tail"] >= gates.min_ess_tail
        and run["divergences"] <= gates.max_divergences
    )


def child(root: Path, config_file: Path, seed: int, args: argparse.Namespace) -> dict:
    """Our fit of one dataset in this process, scored on its hold-out weeks. Its fit time
    counts every rung of the convergence ladder the fit climbed, up to the last one's draws."""
    started = time.perf_counter()
    from conversionflow_dagster.assets.model import fit_panel

    model, window = fit_inputs(root, config_file, seed, args.warmup, args.draws)
    fit_started = time.perf_counter()
    result, rungs = fit_panel(window, model, None, args.cache_dir)
    fit_s = time.perf_counter() - fit_started - result.timings["postprocess_s"]
    observed = window.frame[model.target].to_numpy()[-model.holdout_weeks :]
    last = rungs[-1]
    truth = root / TRUTH
    return {
        **scores(observed, result.idata.predictions["y"].values),
        **(share_coverage(result.idata, truth) if truth.is_file() else {}),
        "fit_s": fit_s,
        "wall_s": time.perf_counter() - started,
        "rungs": len(rungs),
        "max_r_hat": last.max_r_hat,
        "min_ess_bulk": last.min_ess_bulk,
        "min_ess_tail": last.min_ess_tail,
        "divergences": last.divergences,
        **({"first_rung": rungs[0].describe()} if len(rungs) > 1 else {}),
    }


def pymc_marketing_fit(
    python: Path, model: ModelSection, window: WeeklyPanel, seed: int, workdir: Path, name: str
) -> dict:
    """PyMC-Marketing's fit of the same weekly table, scored as ours is."""
    from conversionflow_dagster.core.ingest.controls import CONTROL_PREFIX

    controls = [c.removeprefix(CONTROL_PREFIX) for c in window.controls]
    table = window.spend()
    table[controls] = window.frame[list(window.controls)].to_numpy()
    table["y"] = window.frame[model.target].to_numpy()
    panel, predictions = workdir / f"{name}-{seed}.csv", workdir / f"{name}-{seed}.npy"
    table.rename_axis("date").reset_index().to_csv(panel, index=False)
    command = [str(python), str(PYMC_MARKETING_FIT), str(panel), "--seed", str(seed)]
    command += ["--channels", *window.channels, "--controls", *controls]
    command += ["--chains", str(model.chains), "--warmup", str(model.warmup)]
    command += ["--draws", str(model.draws), "--saturation", model.saturation]
    command += ["--holdout-weeks", str(model.holdout_weeks), "--predictions", str(predictions)]
    command += ["--trend"]  # our model has one: forecasting without would handicap theirs
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run = run_json(command, env)
    observed = table["y"].to_numpy()[-model.holdout_weeks :]
    return {**run, **scores(observed, np.load(predictions))}


def fit_both(
    name: str, seed: int, args: argparse.Namespace, workdir: Path, python: Path | None
) -> list[dict]:
    """One seed of a dataset: our fit and, with ``python``, PyMC-Marketing's (alternating
    which runs first, so neither always meets the same machine load)."""
    if name in SIMULATED:
        root = workdir / f"{name}-{seed}"
        config_file = simulated_project(name, seed, root)
    else:
        root, config_file = ROOT, ROOT / REAL[name]
    model, window = fit_inputs(root, config_file, seed, args.warmup, args.draws)
    holdout = f"{len(window.frame) - model.holdout_weeks}+{model.holdout_weeks}"
    sides = ["ours", *(["pymc-marketing"] if python else [])]
    runs = []
    for side in sides[:: -1 if seed % 2 else 1]:
        if side == "ours":
            command = [sys.executable, __file__, "--child", str(root), str(config_file)]
            command += ["--seed", str(seed), "--warmup", str(model.warmup)]
            command += [
                "--draws",
                str(model.draws),
                "--cache-dir",
                str(workdir / "jax" / f"{name}-{seed}"),
            ]
            run = run_json(command)
        else:
            run = pymc_marketing_fit(python, model, window, seed, workdir, name)
        run.update(dataset=name, tool=side, seed=seed, holdout=holdout)
        run["gates_passed"] = gates_passed(run, model.gates)
        shown = {k: run[k] for k in ("crps", "mape", "r2", "gates_passed", "fit_s")}
        print(f"{name} seed {seed} {side}: {shown}", file=sys.stderr, flush=True)
        runs.append(run)
    return runs


def median_row(runs: list[dict]) -> dict:
    """Medians over a dataset's seeds for one tool; gates pass only if every seed passed."""
    passed = sum(r["gates_passed"] for r in runs)
    first = runs[0]
    return {
        **{key: first[key] for key in ("dataset", "tool", "holdout")},
        "seeds": len(runs),
        **{key: statistics.median(r[key] for r in runs) for key in MEDIANS},
        "gates": "pass" if passed == len(runs) else f"{passed}/{len(runs)} pass",
        **({"rungs": max(r["rungs"] for r in runs)} if "rungs" in first else {}),
        # Pooled over seeds, not a median: 20 seeds x 5 channels are 100 intervals.
        **(
            {"coverage": sum(r["covered"] for r in runs) / sum(r["channels"] for r in runs)}
            if "covered" in first
            else {}
        ),
    }


def print_table(rows: list[dict]) -> None:
    header = ["dataset", "weeks fit+held out", "tool", *(t for _, t, _ in COLUMNS)]
    print(" | ".join([*header, "CRPS ours/theirs"]))
    ours = {r["dataset"]: r for r in rows if r["tool"] == "ours"}
    for row in rows:
        cells = [row["dataset"], row["holdout"], row["tool"]]
        cells += [f"{row[key]:{fmt}}" if key in row else "-" for key, _, fmt in COLUMNS]
        if row["tool"] != "ours":
            cells.append(f"{ours[row['dataset']]['crps'] / row['crps']:.2f}")
        print(" | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [*REAL, *SIMULATED]
    parser.add_argument(
        "--datasets", nargs="+", choices=names, default=names, metavar="NAME", help=", ".join(names)
    )
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1; medians over them")
    parser.add_argument("--warmup", type=int, help="warm-up per chain (default: the config's)")
    parser.add_argument("--draws", type=int, help="draws per chain (default: the config's)")
    parser.add_argument("--no-compare", dest="compare", action="store_false")
    parser.add_argument("--pymc-marketing-venv", type=Path, default=PYMC_MARKETING_VENV)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/accuracy.json")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        print(json.dumps(child(*args.child, args.seed, args)))
        return

    python, version = None, None
    if args.compare:
        python, version = pymc_marketing_python(args.pymc_marketing_venv)
        print(f"pymc-marketing {version}", file=sys.stderr, flush=True)
    rows, runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in args.datasets:
            collected: dict[str, list[dict]] = {}
            for seed in range(args.seeds):
                for run in fit_both(name, seed, args, workdir, python):
                    collected.setdefault(run["tool"], []).append(run)
            for side_runs in collected.values():
                rows.append(median_row(side_runs))
                runs += side_runs
    if version:
        print(f"PyMC-Marketing {version}; medians over {args.seeds} seed(s)")
    print_table(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {"seeds": args.seeds, "warmup": args.warmup, "draws": args.draws}
    settings["pymc_marketing_version"] = version
    args.output.write_text(
        json.dumps({"settings": settings, "medians": rows, "runs": runs}, indent=2)
    )


if __name__ == "__main__":
    main()
