"""Benchmark: stage 2 (budget allocation) from a parameter export on disk.

One run = read and validate the export, allocate every scenario budget (GA + SLSQP referee,
plus the response curve), write the result as JSON. Cases: 7 and 20 channels, 500 draws,
budgets 2.0M, 2.5M, 2.75M and 5.0M over 13 weeks, default GA settings (population 100,
200 generations). The reference, measured in the same run and interleaved, is an SLSQP-only
stage 2 (read, one warm-started SLSQP per budget, write): the ratio says what the GA and the
multi-start referee cost on top of a plain local optimiser.

    .venv/bin/python benchmarks/bench_allocation.py [--repeats 5] [--saturation logistic]

Prints a table and writes benchmarks/results/allocation.json. Wall and CPU seconds are both
reported: on a shared machine wall time includes waiting for other processes.
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for the export builder shared with the tests

started = time.perf_counter()
from conversionflow_dagster.core.allocation.optimiser import (  # noqa: E402
    AllocationSpec,
    allocate_scenarios,
    response_curve,
)
from conversionflow_dagster.core.atomic import write_text_atomic  # noqa: E402
from conversionflow_dagster.core.parameter_export import read_export, write_export  # noqa: E402
from conversionflow_dagster.core.synthetic.export import realistic_document  # noqa: E402

IMPORT_S = time.perf_counter() - started
BUDGETS = [2_000_000.0, 2_500_000.0, 2_750_000.0, 5_000_000.0]
CHANNELS = (7, 20)


def timed(run, *args) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    details = run(*args)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, **details}


def stage2(export_path: Path, out: Path) -> dict:
    scenarios = allocate_scenarios(read_export(export_path), AllocationSpec(BUDGETS[1]), BUDGETS)
    write_text_atomic(out, json.dumps(scenarios.to_document()))
    return {
        "gaps": scenarios.table["gap"].tolist(),
        "winners": scenarios.table["winner"].tolist(),
        "optimised_response": scenarios.table["optimised_response"].tolist(),
    }


def reference(export_path: Path, out: Path) -> dict:
    curve = response_curve(read_export(export_path), AllocationSpec(BUDGETS[1]), BUDGETS)
    write_text_atomic(out, json.dumps(curve.to_dict("records")))
    return {"optimised_response": curve["optimised_response"].tolist()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--saturation", choices=["logistic", "hill"], default="logistic")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/allocation.json"))
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        exports = {
            c: write_export(
                realistic_document(c, args.draws, seed=1, saturation=args.saturation),
                Path(tmp) / f"export_{c}.json",
            )
            for c in CHANNELS
        }
        for _ in range(args.repeats):  # interleaved, so every case sees the same machine load
            for c, path in exports.items():
                out = Path(tmp) / f"allocation_{c}.json"
                runs.setdefault(f"{c}ch x 4", []).append(timed(stage2, path, out))
                runs.setdefault(f"{c}ch x 4 SLSQP only", []).append(timed(reference, path, out))

    def stat(case: str, key: str, fn=statistics.median) -> float:
        return fn(r[key] for r in runs[case])

    summary = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "saturation": args.saturation,
        "draws": args.draws,
        "budgets": BUDGETS,
        "repeats": args.repeats,
        "import_s": IMPORT_S,
        "cases": {
            case: {
                "median_wall_s": stat(case, "wall_s"),
                "min_wall_s": stat(case, "wall_s", min),
                "max_wall_s": stat(case, "wall_s", max),
                "median_cpu_s": stat(case, "cpu_s"),
                **({"gaps": rs[0]["gaps"], "winners": rs[0]["winners"]} if "gaps" in rs[0] else {}),
                "runs": rs,
            }
            for case, rs in runs.items()
        },
    }
    summary["ratio_to_reference"] = {
        f"{c}ch": summary["cases"][f"{c}ch x 4"]["median_wall_s"]
        / summary["cases"][f"{c}ch x 4 SLSQP only"]["median_wall_s"]
        for c in CHANNELS
    }
    write_text_atomic(args.out, json.dumps(summary, indent=2) + "\n")

    print(
        f"stage 2 from disk, {args.draws} draws, {args.saturation}, budgets "
        f"{', '.join(f'{b / 1e6:g}M' for b in BUDGETS)}; median of {args.repeats} runs "
        f"(imports: {IMPORT_S:.2f} s, once)"
    )
    print(
        f"{'case':<22}{'median s':>10}{'min s':>8}{'max s':>8}{'CPU s':>8}  GA/referee gap, winner"
    )
    for case, s in summary["cases"].items():
        gaps = "  ".join(
            f"{g:+.1e} {w}" for g, w in zip(s.get("gaps", []), s.get("winners", []), strict=True)
        )
        print(
            f"{case:<22}{s['median_wall_s']:>10.2f}{s['min_wall_s']:>8.2f}"
            f"{s['max_wall_s']:>8.2f}{s['median_cpu_s']:>8.2f}  {gaps}"
        )
    for c, ratio in summary["ratio_to_reference"].items():
        print(f"ratio stage 2 / SLSQP-only, {c}: {ratio:.1f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
