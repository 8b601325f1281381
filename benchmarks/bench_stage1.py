"""Stage-1 fit benchmark: time, ESS and gates on simulated panels of growing size.

Each fit runs in a fresh process so import time, compile time and peak memory are honest.

    python benchmarks/bench_stage1.py --repeats 3
    python benchmarks/bench_stage1.py --sizes 156x7 --repeats 1

At the reference size (156 weeks x 7 channels) the same panels are also fitted with
PyMC-Marketing's MMM (benchmarks/pymc_marketing_fit.py), installed on first use into its own
virtual environment, benchmarks/.pymc-marketing-venv. The fits alternate within each repeat,
so all see the same machine load. ``--no-compare`` skips it; ``--compare-pymc-marketing``
compares at every requested size.

Each comparison is made twice: a cold first fit (nothing compiled yet) and a refit, which is
what a monthly run or a backfill sees: the same model shapes were compiled before, and the
persistent JAX compilation cache (the pipeline keeps it in ``storage/jax_cache``) holds them.
For the refit both sides get such a cache, warmed by one untimed fit per size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = ("104x4", "156x7", "260x12", "520x20")
COLUMNS = (
    ("import_s", "import s", ".1f"),
    ("compile_s", "compile s", ".1f"),
    ("sampling_s", "sampling s", ".1f"),
    ("wall_s", "total wall", ".1f"),
    ("min_ess_bulk", "min ESS", ".0f"),
    ("ess_per_s", "ESS/s", ".1f"),
    ("max_r_hat", "max R-hat", ".3f"),
    ("divergences", "div", ".0f"),
    ("passed", "gates", ""),
    ("peak_rss_mb", "peak RSS MB", ".0f"),
)

REFERENCE_SIZE = "156x7"
PYMC_MARKETING = "pymc-marketing==0.19.*"
PYMC_MARKETING_VENV = ROOT / "benchmarks/.pymc-marketing-venv"
PYMC_MARKETING_FIT = ROOT / "benchmarks/pymc_marketing_fit.py"
# fit_s: from data in memory to posterior draws (model build, compile, warm-up, sampling);
# wall_s: the whole process, imports included. ESS/s is min bulk ESS per fit second.
COMPARE_COLUMNS = (
    ("fit_s", "fit s", ".1f"),
    ("wall_s", "total wall", ".1f"),
    ("min_ess_bulk", "min ESS", ".0f"),
    ("ess_per_fit_s", "ESS/s fit", ".2f"),
    ("ess_per_sampling_s", "ESS/s sampling", ".2f"),
    ("max_r_hat", "max R-hat", ".3f"),
    ("divergences", "div", ".0f"),
)


def child(
    size: str, seed: int, chains: int, warmup: int, draws: int, cache_dir: str | None
) -> dict:
    """One fit in this process; compile = init + lowering, sampling = warm-up + draws."""
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from conversionflow_dagster.core.model.jax_setup import configure_jax, default_host_devices

    configure_jax(default_host_devices(chains), cache_dir)
    from conversionflow_dagster.core.config import Gates
    from conversionflow_dagster.core.model.diagnostics import convergence_report, evaluate
    from conversionflow_dagster.core.model.fitting import fit_mmm
    from conversionflow_dagster.core.model.mmm import ModelSpec
    from conversionflow_dagster.core.synthetic.panel import simulate_panel

    imported = time.perf_counter()
    n_weeks, n_channels = map(int, size.split("x"))
    p = simulate_panel(n_weeks, n_channels, seed=seed)
    result = fit_mmm(
        p.spend,
        p.target,
        p.controls,
        p.channel_names,
        p.control_names,
        p.week_start,
        ModelSpec(),
        chains=chains,
        warmup=warmup,
        draws=draws,
        seed=seed,
    )
    report = convergence_report(result.idata)
    t = result.timings
    sampling = t["warmup_s"] + t["sampling_s"]
    # Model to posterior draws, without the predictive and log-likelihood postprocessing.
    fit = t["init_s"] + t["compile_s"] + sampling
    return {
        "size": size,
        "seed": seed,
        "import_s": imported - started,
        "compile_s": t["init_s"] + t["compile_s"],
        "sampling_s": sampling,
        "postprocess_s": t["postprocess_s"],
        "fit_s": fit,
        "wall_s": time.perf_counter() - started,
        "min_ess_bulk": report.min_ess_bulk,
        "min_ess_tail": report.min_ess_tail,
        "ess_per_s": report.min_ess_bulk / sampling,
        "ess_per_fit_s": report.min_ess_bulk / fit,
        "ess_per_sampling_s": report.min_ess_bulk / sampling,
        "max_r_hat": report.max_r_hat,
        "divergences": report.divergences,
        "passed": not evaluate(report, Gates()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def median_row(runs: list[dict]) -> dict:
    row = {"size": runs[0]["size"], "repeats": len(runs), "passed": all(r["passed"] for r in runs)}
    for key, _, _ in COLUMNS:
        if key != "passed":
            row[key] = statistics.median(r[key] for r in runs)
    return row


def run_json(command: list[str], env: dict[str, str] | None = None) -> dict:
    """Run a fit process and parse the JSON on the last line of its output."""
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.stderr.write(done.stderr[-5000:])
        raise SystemExit(f"{command[:3]} failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pymc_marketing_python(venv: Path) -> tuple[Path, str]:
    """The interpreter of PyMC-Marketing's own virtual environment, installed on first use."""
    python = venv / "bin/python"
    probe = [str(python), "-c", "import numpyro, pymc_marketing; print(pymc_marketing.__version__)"]
    wanted = PYMC_MARKETING.split("==")[1].rstrip("*")
    if python.exists():
        done = subprocess.run(probe, capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip().startswith(wanted):
            return python, done.stdout.strip()
    else:
        print(f"creating {venv}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    print(f"installing {PYMC_MARKETING} into {venv}", file=sys.stderr, flush=True)
    install = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*install, PYMC_MARKETING, "numpyro"], check=True, stdout=sys.stderr)
    done = subprocess.run(probe, capture_output=True, text=True, check=True)
    return python, done.stdout.strip()


def write_panel(size: str, seed: int, path: Path) -> tuple[list[str], list[str]]:
    """The panel the project's fit simulates for (size, seed), as CSV; returns column names."""
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from conversionflow_dagster.core.synthetic.panel import simulate_panel

    n_weeks, n_channels = map(int, size.split("x"))
    p = simulate_panel(n_weeks, n_channels, seed=seed)
    frame = pd.DataFrame(p.spend, columns=p.channel_names)
    frame.insert(0, "date", p.week_start)
    frame[p.control_names] = p.controls
    frame["y"] = p.target
    frame.to_csv(path, index=False)
    return p.channel_names, p.control_names


def jax_cache_env(cache_dir: Path | None) -> dict[str, str]:
    """Environment enabling JAX's persistent compilation cache for every compilation."""
    if cache_dir is None:
        return {}
    return {
        "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    }


def pymc_marketing_run(
    python: Path, size: str, seed: int, args, workdir: Path, cache_dir: Path | None = None
) -> dict:
    """One PyMC-Marketing fit of the (size, seed) panel in a fresh process."""
    panel = workdir / f"panel-{size}-{seed}.csv"
    channels, controls = write_panel(size, seed, panel)
    command = [str(python), str(PYMC_MARKETING_FIT), str(panel), "--seed", str(seed)]
    command += ["--channels", *channels, "--controls", *controls]
    command += ["--chains", str(args.chains), "--warmup", str(args.warmup)]
    command += ["--draws", str(args.draws)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {"size": size, **run_json(command, env | jax_cache_env(cache_dir))}


def comparison_row(
    size: str, case: str, ours: list[dict], theirs: list[dict], version: str
) -> dict:
    """Medians of both sides and the ratios of those medians."""

    def medians(runs: list[dict]) -> dict:
        return {key: statistics.median(r[key] for r in runs) for key, _, _ in COMPARE_COLUMNS}

    mine, other = medians(ours), medians(theirs)
    return {
        "size": size,
        "case": case,
        "repeats": len(theirs),
        "pymc_marketing_version": version,
        "ours": mine,
        "pymc_marketing": other,
        # > 1 means ours is ahead.
        "ess_per_s_ratio": mine["ess_per_fit_s"] / other["ess_per_fit_s"],
        "fit_time_ratio": other["fit_s"] / mine["fit_s"],
        "wall_time_ratio": other["wall_s"] / mine["wall_s"],
        "pymc_marketing_runs": theirs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="weeks x channels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/stage1.json")
    parser.add_argument(
        "--compare-pymc-marketing",
        dest="compare",
        action="store_true",
        default=None,
        help=f"also fit PyMC-Marketing's MMM at every size (default: at {REFERENCE_SIZE} only)",
    )
    parser.add_argument("--no-compare", dest="compare", action="store_false")
    parser.add_argument("--pymc-marketing-venv", type=Path, default=PYMC_MARKETING_VENV)
    parser.add_argument(
        "--no-refit", dest="refit", action="store_false", help="skip the cached-refit case"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fit = child(args.child, args.seed, args.chains, args.warmup, args.draws, args.cache_dir)
        print(json.dumps(fit))
        return

    compared = [
        size
        for size in args.sizes
        if args.compare or (args.compare is None and size == REFERENCE_SIZE)
    ]
    version = ""
    if compared:
        python, version = pymc_marketing_python(args.pymc_marketing_venv)
        print(f"pymc-marketing {version}", file=sys.stderr, flush=True)
    cases = ("cold", "refit") if args.refit else ("cold",)

    rows, runs, comparisons = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)

        def ours(size: str, seed: int, cache: Path | None) -> dict:
            command = [sys.executable, __file__, "--child", size, "--seed", str(seed)]
            command += ["--chains", str(args.chains), "--warmup", str(args.warmup)]
            command += ["--draws", str(args.draws)]
            command += ["--cache-dir", str(cache)] if cache else []
            return run_json(command)

        def theirs(size: str, seed: int, cache: Path | None) -> dict:
            return pymc_marketing_run(python, size, seed, args, workdir, cache)

        for size in args.sizes:
            sides = {"ours": ours, "pymc-marketing": theirs} if size in compared else {"ours": ours}
            caches = {(side, "refit"): workdir / f"jax-cache-{side}-{size}" for side in sides}
            if "refit" in cases:  # one untimed fit per side fills the compilation cache
                for side, run in sides.items():
                    run(size, args.repeats, caches[(side, "refit")])
            collected: dict[tuple[str, str], list[dict]] = {}
            for seed in range(args.repeats):
                order = [(side, case) for case in cases for side in sides]
                if seed % 2:  # alternate the order, so no fit always follows the same one
                    order.reverse()
                for side, case in order:
                    out = {"case": case, **sides[side](size, seed, caches.get((side, case)))}
                    collected.setdefault((side, case), []).append(out)
                    print(f"{size} seed {seed} {side} {case}: {out}", file=sys.stderr, flush=True)
            for case in cases:
                mine = collected[("ours", case)]
                runs += mine
                rows.append({**median_row(mine), "case": case})
                if ("pymc-marketing", case) in collected:
                    other = collected[("pymc-marketing", case)]
                    comparisons.append(comparison_row(size, case, mine, other, version))

    header = ["size", "case", *(title for _, title, _ in COLUMNS)]
    print(" | ".join(header))
    for row in rows:
        cells = [row["size"], row["case"]]
        for key, _, fmt in COLUMNS:
            cells.append(
                ("pass" if row[key] else "FAIL") if key == "passed" else f"{row[key]:{fmt}}"
            )
        print(" | ".join(cells))
    for c in comparisons:
        print(f"\n{c['size']} {c['case']}: medians of {c['repeats']} repeats")
        print(" | ".join(["model", *(title for _, title, _ in COMPARE_COLUMNS)]))
        for name, side in (("ours", "ours"), (f"pymc-marketing {version}", "pymc_marketing")):
            cells = [f"{c[side][key]:{fmt}}" for key, _, fmt in COMPARE_COLUMNS]
            print(" | ".join([name, *cells]))
        print(
            f"ESS/s ours/theirs {c['ess_per_s_ratio']:.1f}x, fit time theirs/ours "
            f"{c['fit_time_ratio']:.1f}x, total wall theirs/ours {c['wall_time_ratio']:.1f}x"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws}
    report = {"settings": settings, "medians": rows, "runs": runs}
    if comparisons:
        report["comparison"] = comparisons
    args.output.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
