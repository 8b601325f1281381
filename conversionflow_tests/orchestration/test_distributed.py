"""The same assets on a real dask.distributed cluster (scheduler + 2 workers on loopback),
selected by configuration only."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from conversionflow_tests.conftest import REPO, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def dask_cluster(project):
    """A scheduler and two single-threaded workers, each its own process, on 127.0.0.1."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    home = project / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CONVERSIONFLOW_ROOT": str(project),
        "CONVERSIONFLOW_CONFIG": "configs/test.yaml",
        "CONVERSIONFLOW_EXECUTOR": "dask",
        "DASK_SCHEDULER_ADDRESS": address,
        "DAGSTER_DISABLE_TELEMETRY": "yes",
    }
    scheduler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--name",
                f"w{i}",
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(2)
    ]
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield env, {w.pid for w in workers}
    finally:
        for process in [*workers, scheduler]:
            process.terminate()
        for process in [*workers, scheduler]:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:  # a worker finishing its task ignores SIGTERM
                process.kill()
                process.wait(timeout=15)


def test_one_month_runs_on_the_dask_workers(dask_cluster, project):
    env, worker_pids = dask_cluster
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "job",
            "execute",
            "-m",
            "conversionflow_dagster.definitions",
            "-a",
            "defs",
            "-j",
            "ingest_job",
            "--tags",
            json.dumps({"dagster/partition": "2023-02-01"}),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (project / "storage/assets/raw_events/2023-02-01.parquet").is_file()
    assert (project / "storage/assets/weekly_panel.parquet").is_file()

    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    try:
        with dg.DagsterInstance.get() as instance:
            [record] = instance.get_run_records()
            assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            logs = instance.all_logs(record.dagster_run.run_id)
    finally:
        os.environ.pop("DAGSTER_HOME")
    step_pids = {
        e.dagster_event.pid for e in logs if e.dagster_event and e.dagster_event.is_step_success
    }
    assert step_pids and step_pids <= worker_pids, (step_pids, worker_pids)
    # both workers took part: independent steps were spread over the cluster
    assert len(step_pids) == 2
