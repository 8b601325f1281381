"""Markets benchmark: one month of Meridian's 20-market panel fitted (a) one market at a time,
(b) on a dask.distributed cluster of N single-threaded workers and (c) as one hierarchical
model of every market, through real Dagster runs.

    python benchmarks/bench_markets.py                       # 20 markets, 2 workers, 1 repeat
    python benchmarks/bench_markets.py --markets 6 --repeats 3 --modes one_at_a_time pooled

Every mode runs the same work from the same fresh project copy: each market's panel, then the
fit, its convergence checks and every market's parameter export for the month, with the
shipped ``configs/meridian_geo.yaml`` settings (4 chains x 1000 + 1000).
(a) is ``conversionflow run --stage1-only`` with ``model.markets: independent``: one fit per
market, one after another in one process. (b) starts a scheduler and the workers on loopback
and submits one ``dagster job execute`` run per market with ``CONVERSIONFLOW_EXECUTOR=dask``; a
few runs are in flight at once so every worker has a fit to do. (c) is the same command with
``model.markets: hierarchical``: one pooled fit, then the exports. Peak memory is the largest
sum of RSS over every process the mode started, sampled every 0.2 s. (a) and (b) start with a
JAX compilation cache warmed by one untimed fit, as a monthly refit would find it; (c) compiles
its own program in its first repeat and starts warm in later ones. For hold-out accuracy and
calibration of the two model forms see bench_pooling.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
MONTH = "2024-01"
BIN = Path(sys.executable).parent


class PeakMemory:
    """Largest total RSS of a set of process trees, sampled in a background thread."""

    def __init__(self, interval: float = 0.2) -> None:
        self.roots: list[int] = []
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def watch(self, pid: int) -> None:
        self.roots.append(pid)

    def _total(self) -> int:
        seen, total = set(), 0
        for root in list(self.roots):
            try:
                parent = psutil.Process(root)
                family = [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in family:
                if process.pid in seen:
                    continue
                seen.add(process.pid)
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += process.memory_info().rss
        return total

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_project(
    workdir: Path,
    markets: list[str],
    cache: Path,
    fits_at_once: int = 1,
    fitted: str = "independent",
) -> Path:
    """A fresh project root: the geo data, the geo config cut to ``markets`` and fitted
    ``independent``-ly or ``hierarchical``-ly, a warm cache, and an instance whose ``mcmc`` pool
    lets ``fits_at_once`` fits run together."""
    root = Path(tempfile.mkdtemp(dir=workdir))
    shutil.copytree(ROOT / "data/public/meridian", root / "data/public/meridian")
    config = yaml.safe_load((ROOT / "configs/meridian_geo.yaml").read_text())
    config["project"]["markets"] = markets
    config["model"]["markets"] = fitted
    (root / "configs").mkdir()
    (root / "configs/geo.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "storage/home").mkdir(parents=True)
    instance = yaml.safe_load((ROOT / "storage/dagster.yaml").read_text())
    instance["concurrency"]["pools"]["default_limit"] = fits_at_once
    (root / "storage/home/dagster.yaml").write_text(yaml.safe_dump(instance))
    shutil.copytree(cache, root / "storage/jax_cache")
    return root


def environment(root: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CONVERSIONFLOW_ROOT": str(root),
        "CONVERSIONFLOW_CONFIG": "configs/geo.yaml",
        "DAGSTER_HOME": str(root / "storage/home"),
        "DAGSTER_DISABLE_TELEMETRY": "yes",
        **extra,
    }


def conversionflow_run(root: Path, markets: list[str], peak: PeakMemory) -> None:
    command = [str(BIN / "conversionflow"), "run", "--from", MONTH, "--to", MONTH]
    command += ["--stage1-only", "--log-level", "WARNING", "--markets", *markets]
    process = subprocess.Popen(command, env=environment(root), stdout=subprocess.DEVNULL)
    peak.watch(process.pid)
    if process.wait():
        raise SystemExit(f"{command} failed with exit code {process.returncode}")


def warm_cache(workdir: Path, market: str) -> Path:
    """One untimed fit, so both modes start with the compiled programs on disk."""
    root = Path(tempfile.mkdtemp(dir=workdir))
    cache = root / "jax_cache"
    cache.mkdir()
    project = make_project(workdir, [market], cache)
    with PeakMemory() as peak:
        conversionflow_run(project, [market], peak)
    return project / "storage/jax_cache"


def one_at_a_time(workdir: Path, markets: list[str], cache: Path) -> dict:
    root = make_project(workdir, markets, cache)
    started = time.perf_counter()
    with PeakMemory() as peak:
        conversionflow_run(root, markets, peak)
    return {"wall_s": time.perf_counter() - started, "peak_rss_mb": peak.peak / 2**20}


def pooled(workdir: Path, markets: list[str], cache: Path) -> dict:
    """Every market in one hierarchical fit (``model.markets: hierarchical``), its export
    per market. Its program differs from a single market's: the first repeat compiles it, and
    later repeats start from the cache that repeat left (``cache`` is updated in place)."""
    root = make_project(workdir, markets, cache, fitted="hierarchical")
    started = time.perf_counter()
    with PeakMemory() as peak:
        conversionflow_run(root, markets, peak)
    wall = time.perf_counter() - started
    shutil.copytree(root / "storage/jax_cache", cache, dirs_exist_ok=True)
    return {"wall_s": wall, "peak_rss_mb": peak.peak / 2**20}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dagster_job(root: Path, env: dict, job: str, tags: dict, peak: PeakMemory) -> None:
    command = [str(BIN / "dagster"), "job", "execute", "-m", "conversionflow_dagster.definitions"]
    command += ["-a", "defs", "-j", job, "--tags", json.dumps(tags)]
    process = subprocess.Popen(
        command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak.watch(process.pid)
    _, err = process.communicate()
    if process.returncode:
        raise SystemExit(f"{job} {tags} failed:\n{err[-3000:]}")


def distributed(workdir: Path, markets: list[str], cache: Path, workers: int) -> dict:
    root = make_project(workdir, markets, cache, fits_at_once=workers)
    address = f"tcp://127.0.0.1:{free_port()}"
    env = environment(root, CONVERSIONFLOW_EXECUTOR="dask", DASK_SCHEDULER_ADDRESS=address)
    # Create the instance's storage once: concurrent first runs would race to create it.
    subprocess.run(
        [str(BIN / "dagster"), "instance", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    python = str(BIN / "python")
    port = address.rsplit(":", 1)[1]
    scheduler = [python, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
    worker = [python, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1"]
    started = time.perf_counter()
    with PeakMemory() as peak:
        cluster = [
            subprocess.Popen(
                [*scheduler, "--port", port, "--no-dashboard"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
        cluster += [
            subprocess.Popen(
                [*worker, "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                env=env,
                cwd=root,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        for process in cluster:
            peak.watch(process.pid)
        try:
            from distributed import Client

            with Client(address, timeout=60) as client:
                client.wait_for_workers(workers, timeout=120)
            in_flight = 2 * workers  # runs submitting steps at once: keeps every worker busy

            def panel(market: str) -> None:
                dagster_job(root, env, "ingest_job", {"dagster/partition": market}, peak)

            def fit(market: str) -> None:
                tags = {
                    "dagster/partition": f"{market}|{MONTH}-01",
                    "dagster/partition/market": market,
                    "dagster/partition/month": f"{MONTH}-01",
                }
                dagster_job(root, env, "stage1_job", tags, peak)

            with ThreadPoolExecutor(in_flight) as pool:
                list(pool.map(panel, markets))
                list(pool.map(fit, markets))
        finally:
            for process in cluster:
                process.terminate()
            for process in cluster:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
    for market in markets:
        export = root / f"storage/assets/meridian_geo/parameter_export/{market}/{MONTH}-01.json"
        if not export.is_file():
            raise SystemExit(f"{market}: no parameter export (did its gates fail?)")
    return {"wall_s": time.perf_counter() - started, "peak_rss_mb": peak.peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=20, help="first N markets of the config")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["one_at_a_time", "distributed", "pooled"],
        default=["one_at_a_time", "distributed", "pooled"],
        help="the first is the reference of the wall-time ratios",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/markets.json")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "configs/meridian_geo.yaml").read_text())
    markets = config["project"]["markets"][: args.markets]

    runs: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cache = warm_cache(workdir, markets[0])
        pooled_cache = workdir / "pooled_cache"
        shutil.copytree(cache, pooled_cache)
        for repeat in range(args.repeats):
            order = list(args.modes) if repeat % 2 == 0 else list(reversed(args.modes))
            for mode in order:
                if mode == "one_at_a_time":
                    out = one_at_a_time(workdir, markets, cache)
                elif mode == "pooled":
                    out = pooled(workdir, markets, pooled_cache)
                else:
                    out = distributed(workdir, markets, cache, args.workers)
                runs[mode].append(out)
                print(f"repeat {repeat} {mode}: {out}", file=sys.stderr, flush=True)

    medians = {
        mode: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for mode, results in runs.items()
    }
    reference = medians[args.modes[0]]["wall_s"]
    print(f"{len(markets)} markets, month {MONTH}, medians of {args.repeats} repeat(s)")
    print(f"mode | wall s | s per market | peak RSS MB | wall / {args.modes[0]}")
    labels = {"distributed": f"dask, {args.workers} workers", "pooled": "pooled (hierarchical)"}
    for mode, row in medians.items():
        per_market = row["wall_s"] / len(markets)
        print(
            f"{labels.get(mode, mode)} | {row['wall_s']:.1f} | {per_market:.1f} | "
            f"{row['peak_rss_mb']:.0f} | {row['wall_s'] / reference:.2f}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "markets": markets,
        "month": MONTH,
        "workers": args.workers,
        "medians": medians,
        "runs": runs,
    }
    args.output.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
