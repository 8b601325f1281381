"""Shared fixtures: a small generated project on disk, and a real Dagster instance."""

import atexit
import collections
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml

from conversionflow_dagster.core.synthetic.events import SyntheticSpec, simulate, write_sample

REPO = Path(__file__).resolve().parents[1]
# Dagster instances made by tests must not try to report usage anywhere.
os.environ["DAGSTER_DISABLE_TELEMETRY"] = "yes"
# One persistent JAX compilation cache per test run (set before anything imports JAX; the xdist
# workers and every subprocess inherit it, and settings.jax_cache_dir gives it to the runs of
# every test project too): a test that fits the shapes an earlier one fitted (a determinism
# check, a refit, another test's short fit) reuses its compiled programs, as a monthly run does.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="cf-tests-jax-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
# 22 weeks from 2023-01-02: months January..May are fully covered (the last week runs into June).
SMALL_SPEC = SyntheticSpec(n_weeks=22, n_channels=7, seed=7, start=dt.date(2023, 1, 2))
SMALL_MONTHS = ["2023-01", "2023-02", "2023-03", "2023-04", "2023-05"]
# The short fit of the tests that fit only to drive Dagster, the CLI or a cluster, and gates it
# passes. One setting for all of them, so they share one compiled sampler (a program is keyed by
# the data's shapes, the chains, the warm-up and the draws per chunk): only the first compiles.
SHORT_FIT = {"chains": 2, "warmup": 30, "draws": 30}
LOOSE_GATES = {"max_r_hat": 10.0, "min_ess_bulk": 0, "min_ess_tail": 0, "max_divergences": 10**6}
# The same in the config file (write_config's overrides) rather than in a run's config.
SHORT_FIT_CONFIG = {"model.gates": LOOSE_GATES, **{f"model.{k}": n for k, n in SHORT_FIT.items()}}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long files first. The two workers take a file at a time in this order (pyproject.toml:
    --dist loadfile --no-loadscope-reorder), so the long ones start early and the many short
    ones even out the end; xdist's own order (most tests first) left the minutes-long
    end-to-end files, which hold one or few tests, to run last while the other worker idled.
    A file with a slow test comes first, then files of few tests (end-to-end runs) before
    files of many (unit tests); a file's tests keep their order."""
    tests = collections.Counter(item.path for item in items)
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path not in slow, tests[item.path]))


CHROMIUM_ARGS = [  # headless, and no background traffic on a machine without a network
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str:
    """Debian's chromium; the browser tests skip without it, except in CI where they fail."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide Debian's chromium (.ci/run installs it)")
        pytest.skip("no chromium on this machine (Debian package 'chromium')")
    return found


def free_port() -> int:
    """A TCP port free on the loopback interface, and the next one free too: `conversionflow
    ui` serves the reports on its port + 1 and exits if that one is taken."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with socket.socket() as following:
            try:
                following.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def start_ui(port: int, home: Path, log: Path | None = None, **popen: object) -> subprocess.Popen:
    """`conversionflow ui` on ``port`` with ``home`` as DAGSTER_HOME, its output written to
    ``log`` (default: discarded)."""
    with open(log or os.devnull, "w") as out:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "conversionflow_dagster.cli", "ui", "--port", str(port)],
            cwd=REPO,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            **popen,
        )


def wait_for_ui(port: int, ui: subprocess.Popen, timeout: float = 300) -> None:
    """Until the webserver answers (dagster dev starts three processes: it takes a while)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                return
        except OSError:
            assert time.monotonic() < deadline, "the UI did not start"
            assert ui.poll() is None, "the UI exited while starting"
            time.sleep(1)


@pytest.fixture(scope="session")
def small_sample():
    """The simulated data behind the small project (in memory)."""
    return simulate(SMALL_SPEC)


@pytest.fixture(scope="session")
def small_sample_dir(tmp_path_factory, small_sample) -> Path:
    directory = tmp_path_factory.mktemp("sample")
    write_sample(small_sample, directory)
    return directory


SAMPLE_PROJECT = "sample"  # configs/default.yaml's project key: assets are <key>/<asset>


def asset_key(name: str, project: str = SAMPLE_PROJECT) -> dg.AssetKey:
    """An asset's key in a project: every key starts with the project's key."""
    return dg.AssetKey([project, name])


def write_config(root: Path, name: str = "test.yaml", **overrides) -> Path:
    """Copy configs/default.yaml into ``root/configs`` for the small sample, with overrides."""
    document = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    document["project"]["partitions"] = {
        "start_month": SMALL_MONTHS[0],
        "end_month": SMALL_MONTHS[-1],
    }
    for dotted, value in overrides.items():
        node = document
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = root / "configs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def project(tmp_path, small_sample_dir) -> Path:
    """A project root with the small sample under data/sample and configs/test.yaml."""
    shutil.copytree(small_sample_dir, tmp_path / "data" / "sample")
    write_config(tmp_path)
    return tmp_path


@pytest.fixture
def instance(tmp_path):
    """A real (SQLite) Dagster instance in a temporary DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst
