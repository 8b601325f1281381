"""GPU against CPU: the same fits on each device, side by side.

Cases:

- ``one``: one market, 156 weeks x 7 channels (``simulate_panel``), the reference size;
- ``pooled``: 20 markets x 156 weeks x 7 channels (``simulate_markets``) in one hierarchical
  model (``fit_markets``, diagonal mass as a pooled fit defaults to);
- ``big``: one market, 520 weeks x 20 channels.

Each case runs on the CPU with the configured layout (one host device per chain) and, when JAX
sees a GPU, on the GPU with the layout ``model.device: gpu`` gives a fit (core/model/device.py:
at least 16 chains in one vectorised program, fewer draws each, the same total). Every fit is
its own process with ``JAX_PLATFORMS`` set before JAX is imported, one after another from this
one, so they never share a core or the GPU. Each has a timeout, and the whole benchmark a
deadline (default 7.5 minutes): a fit that runs out is reported as timed out, one never
started as not run. Compile = init + lowering; sampling = warm-up + draws; ESS/s is the
smallest bulk ESS over sampling seconds; gates are the default ones.

    python benchmarks/bench_gpu.py                          # every case, 4 chains x 1000 + 1000
    python benchmarks/bench_gpu.py --cases one pooled --markets 3 --quick     # a smoke run

Results go to benchmarks/results/gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {"one": "156x7", "pooled": "156x7", "big": "520x20"}  # weeks x channels
QUICK = {"warmup": 50, "draws": 50}
COLUMNS = (
    ("compile_s", "compile s", ".1f"),
    ("sampling_s", "sampling s", ".1f"),
    ("min_ess_bulk", "min ESS", ".0f"),
    ("ess_per_s", "ESS/s", ".1f"),
    ("max_r_hat", "max R-hat", ".3f"),
    ("divergences", "div", ".0f"),
)


def child(case: str, device: str, args: argparse.Namespace) -> dict:
    """One fit in this process, laid out for ``device`` as a pipeline fit would be."""
    sys.path.insert(0, str(ROOT))
    from conversionflow_dagster.core.config import ModelSection
    from conversionflow_dagster.core.model.device import prepare_sampling

    model = ModelSection(
        device=device, chains=args.chains, warmup=args.warmup, draws=args.draws, seed=args.seed
    )
    layout = prepare_sampling(model, None)
    laid_out = {"layout": json.loads(layout.to_json())}
    if case != "pooled":
        from bench_stage1 import child as fit_one

        return laid_out | fit_one(
            CASES[case], args.seed, layout.chains, layout.warmup, layout.draws, None
        )
    return laid_out | fit_pooled(model, layout, args)


def fit_pooled(model, layout, args: argparse.Namespace) -> dict:
    """The pooled case, measured as bench_stage1 measures a single market's fit."""
    from bench_pooling import simulated_markets

    from conversionflow_dagster.core.config import Gates
    from conversionflow_dagster.core.model.diagnostics import convergence_report, evaluate
    from conversionflow_dagster.core.model.fitting import SamplerSettings
    from conversionflow_dagster.core.model.hierarchical import fit_markets

    started = time.perf_counter()
    markets, channels, controls, weeks, spec, _ = simulated_markets(args.markets, args.seed)
    result = fit_markets(
        markets, channels, controls, weeks, spec,
        chains=layout.chains, warmup=layout.warmup, draws=layout.draws, seed=args.seed,
        sampler=SamplerSettings(dense_mass=model.dense_mass_for(pooled=True)),
    )  # fmt: skip
    report = convergence_report(result.idata)
    t = result.timings
    sampling = t["warmup_s"] + t["sampling_s"]
    return {
        "compile_s": t["init_s"] + t["compile_s"],
        "sampling_s": sampling,
        "wall_s": time.perf_counter() - started,
        "min_ess_bulk": report.min_ess_bulk,
        "ess_per_s": report.min_ess_bulk / sampling,
        "max_r_hat": report.max_r_hat,
        "divergences": report.divergences,
        "passed": not evaluate(report, Gates()),
    }


def child_env(device: str) -> dict[str, str]:
    """This environment with no host device count inherited; for the CPU, JAX held to it.
    For the GPU JAX picks its accelerator itself (``JAX_PLATFORMS=gpu`` fails on a JAX built
    for CUDA alone, which looks for ROCm too); ``model.device: gpu`` refuses a CPU."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    return env | {"JAX_PLATFORMS": "cpu"} if device == "cpu" else env


def has_gpu() -> bool:
    """Asked in a process of its own: starting JAX's GPU backend here would hold the GPU's
    memory for the whole benchmark."""
    probe = (
        "from conversionflow_dagster.core.model.device import resolve_device\n"
        "print(resolve_device('auto'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    return done.returncode == 0 and done.stdout.split()[-1:] == ["gpu"]


def run_child(case: str, device: str, args: argparse.Namespace, timeout: float) -> dict:
    """One fit in a fresh process; a timeout or a crash is a row that says so."""
    command = [sys.executable, __file__, "--child", case, device, "--markets", str(args.markets)]
    command += ["--chains", str(args.chains), "--warmup", str(args.warmup)]
    command += ["--draws", str(args.draws), "--seed", str(args.seed)]
    row = {"case": case, "device": device}
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=child_env(device), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return row | {"status": f"timed out after {timeout:.0f} s"}
    row["process_s"] = time.perf_counter() - started
    if done.returncode:
        sys.stderr.write(done.stderr[-3000:])
        return row | {"status": f"failed with exit code {done.returncode}"}
    return row | {"status": "ok", **json.loads(done.stdout.strip().splitlines()[-1])}


def print_table(runs: list[dict]) -> None:
    header = ["case", "device", "chains x draws", *(title for _, title, _ in COLUMNS), "gates"]
    print(" | ".join(header))
    for r in runs:
        cells = [r["case"], r["device"]]
        if r["status"] != "ok":
            print(" | ".join([*cells, r["status"]]))
            continue
        cells.append(f"{r['layout']['chains']} x {r['layout']['draws']}")
        cells += [f"{r[key]:{fmt}}" for key, _, fmt in COLUMNS]
        print(" | ".join([*cells, "pass" if r["passed"] else "FAIL"]))
    for case in dict.fromkeys(r["case"] for r in runs):
        pair = {r["device"]: r for r in runs if r["case"] == case and r["status"] == "ok"}
        if len(pair) == 2:
            cpu, gpu = pair["cpu"], pair["gpu"]
            print(
                f"{case}: GPU/CPU ESS/s {gpu['ess_per_s'] / cpu['ess_per_s']:.2f}x, "
                f"sampling time {gpu['sampling_s'] / cpu['sampling_s']:.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--markets", type=int, default=20, help="markets of the pooled case")
    parser.add_argument("--chains", type=int, default=4, help="configured chains (CPU layout)")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000, help="configured draws per chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny warm-up and draws: a smoke run")
    parser.add_argument("--cpu-only", action="store_true", help="skip the GPU even if present")
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU (needs a GPU)")
    parser.add_argument("--timeout-s", type=float, default=240, help="the most one fit may take")
    parser.add_argument("--deadline-s", type=float, default=450, help="the most all fits take")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/gpu.json")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "DEVICE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    if args.child:
        print(json.dumps(child(*args.child, args)))
        return

    started = time.perf_counter()
    devices = ["cpu"] if args.cpu_only or not has_gpu() else ["cpu", "gpu"]
    if args.gpu_only:
        devices = devices[1:]
    print(f"devices: {', '.join(devices)}", file=sys.stderr, flush=True)
    runs = []
    for case in args.cases:
        for device in devices:
            left = args.deadline_s - (time.perf_counter() - started)
            if left < 10:
                runs.append({"case": case, "device": device, "status": "not run: deadline"})
                continue
            run = run_child(case, device, args, min(args.timeout_s, left))
            print(f"{case} {device}: {run}", file=sys.stderr, flush=True)
            runs.append(run)
    print_table(runs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("child", "output")}
    report = {"settings": settings, "devices": devices, "runs": runs}
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
