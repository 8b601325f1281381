"""The code location as a user meets it: `dagster definitions validate`, the webserver, the CLI."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from conversionflow_tests.conftest import REPO, free_port

DAGSTER = [sys.executable, "-m", "dagster"]
INGEST_ASSETS = {"raw_events", "raw_spend", "weekly_panel"}


def env_for(tmp_path, **extra) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "yes", **extra}


@pytest.mark.parametrize(
    "config",
    [
        "configs/default.yaml",
        "configs/meridian_national.yaml",
        "configs/meridian_geo.yaml",
        "configs/robyn_weekly.yaml",
        "configs/pymc_marketing_example.yaml",
    ],
)
def test_definitions_validate(tmp_path, config):
    result = subprocess.run(
        [*DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env_for(tmp_path, CONVERSIONFLOW_CONFIG=config),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_webserver_on_loopback_lists_the_assets(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env_for(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300  # the code server starts slowly on a loaded machine
        nodes = None
        while time.monotonic() < deadline and nodes is None:
            try:
                data = graphql(port, "{ assetNodes { assetKey { path } } }")
                nodes = data["data"]["assetNodes"] or None
            except (OSError, KeyError, TypeError):
                time.sleep(1)
        assert nodes, "webserver did not answer with asset nodes"
        names = {"/".join(n["assetKey"]["path"]) for n in nodes}  # prefixed by the project
        assert {name.split("/")[0] for name in names} == {"sample"}
        names = {name.split("/")[-1] for name in names}
        assert names >= INGEST_ASSETS
    finally:
        server.terminate()
        server.wait(timeout=30)


def cli(project, *args, **extra):
    return subprocess.run(
        [sys.executable, "-m", "conversionflow_dagster.cli", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env=env_for(
            project,
            CONVERSIONFLOW_ROOT=str(project),
            CONVERSIONFLOW_CONFIG="configs/test.yaml",
            **extra,
        ),
    )


def test_cli_validate_reports_a_bad_file(project):
    ok = cli(project, "validate")
    assert ok.returncode == 0, ok.stderr
    assert "config is valid" in ok.stdout
    path = project / "data/sample/spend/2023-03.csv"
    path.write_text(path.read_text().replace(",search,", ",radio,", 1))
    bad = cli(project, "validate")
    assert bad.returncode == 1
    assert "2023-03.csv, line 4, column 'channel': unknown channel 'radio'" in bad.stdout


def test_cli_run_uses_the_persistent_instance_and_exits_nonzero_when_blocked(project):
    result = cli(project, "run", "--from", "2023-01", "--to", "2023-02", "--fit", "none")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (project / "storage/assets/sample/weekly_panel.parquet").is_file()
    assert any((project / "dagster_home").glob("history/runs/*.db")) or any(
        (project / "dagster_home").glob("history/runs.db")
    )

    path = project / "data/sample/events/2023-02.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    blocked = cli(project, "run", "--from", "2023-01", "--to", "2023-02", "--fit", "none")
    assert blocked.returncode == 1
    last = blocked.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ingest 2023-02: raw_events.no_duplicate_events")
