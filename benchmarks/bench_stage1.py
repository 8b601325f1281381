"""Stage-1 fit benchmark: time, ESS and gates on simulated panels of growing size.

Each fit runs in a fresh process so import time, compile time and peak memory are honest.

    python benchmarks/bench_stage1.py --repeats 3
    python benchmarks/bench_stage1.py --sizes 156x7 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
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


def child(size: str, seed: int, chains: int, warmup: int, draws: int) -> dict:
    """One fit in this process; compile = init + lowering, sampling = warm-up + draws."""
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from conversionflow_dagster.core.jax_setup import configure_jax, default_host_devices

    configure_jax(default_host_devices(chains), None)
    from conversionflow_dagster.core.diagnostics import convergence_report, evaluate
    from conversionflow_dagster.core.fitting import fit_mmm
    from conversionflow_dagster.core.model import ModelSpec
    from conversionflow_tests.core.simulate import simulate_panel

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
    return {
        "size": size,
        "seed": seed,
        "import_s": imported - started,
        "compile_s": t["init_s"] + t["compile_s"],
        "sampling_s": sampling,
        "postprocess_s": t["postprocess_s"],
        "wall_s": time.perf_counter() - started,
        "min_ess_bulk": report.min_ess_bulk,
        "min_ess_tail": report.min_ess_tail,
        "ess_per_s": report.min_ess_bulk / sampling,
        "max_r_hat": report.max_r_hat,
        "divergences": report.divergences,
        "passed": not evaluate(report),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def median_row(runs: list[dict]) -> dict:
    row = {"size": runs[0]["size"], "repeats": len(runs), "passed": all(r["passed"] for r in runs)}
    for key, _, _ in COLUMNS:
        if key != "passed":
            row[key] = statistics.median(r[key] for r in runs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="weeks x channels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/stage1.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seed, args.chains, args.warmup, args.draws)))
        return

    rows, runs = [], []
    for size in args.sizes:
        size_runs = []
        for seed in range(args.repeats):
            command = [sys.executable, __file__, "--child", size, "--seed", str(seed)]
            command += ["--chains", str(args.chains), "--warmup", str(args.warmup)]
            command += ["--draws", str(args.draws)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            size_runs.append(json.loads(out.strip().splitlines()[-1]))
            print(f"{size} seed {seed}: {size_runs[-1]}", file=sys.stderr, flush=True)
        runs += size_runs
        rows.append(median_row(size_runs))

    header = ["size", *(title for _, title, _ in COLUMNS)]
    print(" | ".join(header))
    for row in rows:
        cells = [row["size"]]
        for key, _, fmt in COLUMNS:
            cells.append(
                ("pass" if row[key] else "FAIL") if key == "passed" else f"{row[key]:{fmt}}"
            )
        print(" | ".join(cells))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws}
    args.output.write_text(
        json.dumps({"settings": settings, "medians": rows, "runs": runs}, indent=2)
    )


if __name__ == "__main__":
    main()
