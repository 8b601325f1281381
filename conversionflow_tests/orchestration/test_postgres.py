"""The "postgres" instance profile against a real PostgreSQL server started on loopback."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pytest

from conversionflow_tests.conftest import REPO, SMALL_MONTHS, asset_key, free_port

pytestmark = pytest.mark.slow


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found and os.environ.get("CI"):
        raise AssertionError("CI must provide Debian's postgresql (.ci/run installs it)")
    return Path(found[-1]).parent if found else None


def as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; run it as the 'postgres' system user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres():
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (Debian package 'postgresql')")
    # pytest's temp folders are private to root; the server user needs its own folder
    data = Path(tempfile.mkdtemp(prefix="conversionflow-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    subprocess.run(
        as_server_user(
            [str(bindir / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        as_server_user(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(data),
                "-c",
                "max_connections=200",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while (
            subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            ).returncode
            != 0
        ):
            assert time.monotonic() < deadline, "PostgreSQL did not start"
            time.sleep(0.5)
        subprocess.run(
            [
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "dagster",
                "dagster",
            ],
            check=True,
        )
        yield {"DAGSTER_PG_URL": f"postgresql+psycopg2://dagster@127.0.0.1:{port}/dagster"}
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


RUN_ONE_MONTH = """
import sys
import dagster as dg
from pathlib import Path
from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.runner import execute_plan, pipeline_plan
root = Path(sys.argv[1])
defs = build_definitions(root, root / "configs" / "test.yaml")
with dg.DagsterInstance.get() as instance:
    plan = pipeline_plan([sys.argv[2]], panel=False)
    summary = execute_plan(defs, instance, plan, log_level="ERROR")
sys.exit(0 if summary.success else 1)
"""


def test_concurrent_month_runs_lose_no_events(project, postgres):
    home = project / "pg_home"
    home.mkdir()
    shutil.copy(REPO / "storage/postgres/dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, **postgres, "DAGSTER_HOME": str(home)}
    # once per deployment: create the schema (concurrent first runs would race to create it)
    migrate = subprocess.run(
        [sys.executable, "-m", "dagster", "instance", "migrate"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RUN_ONE_MONTH, str(project), month],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for month in SMALL_MONTHS
    ]
    for process in runs:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]

    os.environ.update(postgres)  # the instance resolves its env-var config on load
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            records = instance.get_run_records()
            assert len(records) == len(SMALL_MONTHS)
            assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
            for record in records:
                events = instance.all_logs(record.dagster_run.run_id)
                kinds = [e.dagster_event.event_type_value for e in events if e.dagster_event]
                assert kinds.count("ASSET_MATERIALIZATION") == 2
                assert kinds.count("ASSET_CHECK_EVALUATION") == 9
                assert kinds[-1] == dg.DagsterEventType.RUN_SUCCESS.value
            for asset in ("raw_events", "raw_spend"):
                assert instance.get_materialized_partitions(asset_key(asset)) == {
                    f"{m}-01" for m in SMALL_MONTHS
                }
    finally:
        for key in postgres:
            os.environ.pop(key, None)
