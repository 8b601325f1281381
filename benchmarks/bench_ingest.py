"""Benchmark: ingest a large event log (1M+ events) into the weekly panel.

Each repeat runs in a fresh process so peak memory (max RSS) is that of one ingestion. The
reference, measured in the same run, is a bare `pandas.read_csv` of the same files: the ratio
says what parsing, validation and aggregation cost on top of reading.

    .venv/bin/python benchmarks/bench_ingest.py [--touch-scale 2.5] [--repeats 3]

Prints a table and writes benchmarks/results/ingest.json.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()


def peak_rss_mb():
    # VmHWM is this process's own high-water mark (ru_maxrss can carry the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

import pandas as pd
from conversionflow_dagster.core.config import load_config
from conversionflow_dagster.core.ingest.events import read_month_events
from conversionflow_dagster.core.ingest.panel import build_panel_from_events, read_controls
from conversionflow_dagster.core.ingest.spend import read_month_spend
mode, sample, config_file = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
config = load_config(config_file)
months = sorted(p.stem for p in (sample / "events").glob("*.csv"))
t1 = time.perf_counter()
if mode == "reference":
    rows = sum(len(pd.read_csv(sample / "events" / f"{m}.csv")) for m in months)
    t2 = t3 = time.perf_counter()
else:
    events = {m: read_month_events(sample / "events" / "{month}.csv", config.sources.events, m)
              for m in months}
    spend = {m: read_month_spend(sample / "spend" / "{month}.csv", config, m) for m in months}
    rows = sum(len(e) for e in events.values())
    t2 = time.perf_counter()
    panel = build_panel_from_events(events, spend, read_controls(sample / "controls.csv", config),
                                    config)
    t3 = time.perf_counter()
print(json.dumps({"rows": rows, "import_s": t1 - t0, "read_s": t2 - t1, "panel_s": t3 - t2,
                  "total_s": t3 - t1,
                  "peak_rss_mb": peak_rss_mb()}))
"""


def run_child(mode: str, sample: Path, config: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(sample), str(config)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touch-scale", type=float, default=2.5)
    parser.add_argument("--weeks", type=int, default=156)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/ingest.json"))
    args = parser.parse_args()

    from conversionflow_dagster.core.synthetic.events import SyntheticSpec, simulate, write_sample

    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample"
        t = time.perf_counter()
        data = simulate(SyntheticSpec(n_weeks=args.weeks, touch_scale=args.touch_scale))
        write_sample(data, sample)
        generate_s = time.perf_counter() - t
        config = ROOT / "configs" / "default.yaml"
        results = {"ingest": [], "reference": []}
        for _ in range(args.repeats):
            for mode in results:  # interleaved, so both see the same machine load
                results[mode].append(run_child(mode, sample, config))

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    summary = {
        "events": len(data.events),
        "weeks": args.weeks,
        "repeats": args.repeats,
        "generate_s": generate_s,
        "median": {mode: {k: median(mode, k) for k in results[mode][0]} for mode in results},
        "runs": results,
    }
    summary["ratio_total_to_reference"] = (
        summary["median"]["ingest"]["total_s"] / summary["median"]["reference"]["total_s"]
    )
    print(
        f"{summary['events']:,} events, {args.weeks} weeks, median of {args.repeats} runs "
        f"(generation took {generate_s:.1f} s)"
    )
    print(f"{'case':<28}{'read s':>9}{'panel s':>9}{'total s':>9}{'peak RSS MB':>13}")
    for mode, label in [("ingest", "parse+validate+panel"), ("reference", "pandas.read_csv only")]:
        m = summary["median"][mode]
        print(
            f"{label:<28}{m['read_s']:>9.2f}{m['panel_s']:>9.2f}{m['total_s']:>9.2f}"
            f"{m['peak_rss_mb']:>13.0f}"
        )
    print(f"ratio ingest/reference: {summary['ratio_total_to_reference']:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
