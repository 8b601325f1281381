"""The same assets on a real dask.distributed cluster (scheduler + 2 workers on loopback),
selected by configuration only."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest
import yaml

from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.runner import execute_plan, pipeline_plan
from conversionflow_tests.conftest import (
    REPO,
    SHORT_FIT_CONFIG,
    SMALL_MONTHS,
    asset_key,
    free_port,
    write_config,
)

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
    assert (project / "storage/assets/sample/raw_events/2023-02-01.parquet").is_file()
    assert (project / "storage/assets/sample/weekly_panel.parquet").is_file()

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        [record] = instance.get_run_records()
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        logs = instance.all_logs(record.dagster_run.run_id)
    step_pids = {
        e.dagster_event.pid for e in logs if e.dagster_event and e.dagster_event.is_step_success
    }
    assert step_pids and step_pids <= worker_pids, (step_pids, worker_pids)
    # both workers took part: independent steps were spread over the cluster
    assert len(step_pids) == 2


def test_concurrent_fits_of_one_job_each_run_on_the_cluster(dask_cluster, project):
    """Two months' stage 1 at once: pooled fit steps on the workers, neither run's steps taken
    for the other's (tasks are named by run, not only by job and step)."""
    env, worker_pids = dask_cluster
    write_config(project, **SHORT_FIT_CONFIG)
    months = ["2023-04-01", "2023-05-01"]
    command = [sys.executable, "-m", "dagster", "job", "execute", "-j", "stage1_job"]
    command += ["-m", "conversionflow_dagster.definitions", "-a", "defs"]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        # The months' data first; this also creates the instance's storage once (two first
        # runs at once would race to create it).
        defs = build_definitions(project, project / "configs/test.yaml")
        assert execute_plan(defs, instance, pipeline_plan(SMALL_MONTHS)).success
        runs = [
            subprocess.Popen(
                [*command, "--tags", json.dumps({"dagster/partition": month})],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for month in months
        ]
        for run in runs:
            output, _ = run.communicate(timeout=900)
            assert run.returncode == 0, output[-3000:]
        for month in months:
            assert (project / f"storage/assets/sample/parameter_export/{month}.json").is_file()

        records = instance.get_run_records()
        records = [r for r in records if r.dagster_run.job_name == "stage1_job"]
        assert {r.dagster_run.tags["dagster/partition"] for r in records} == set(months)
        fit_pids = {
            e.dagster_event.pid
            for r in records
            for e in instance.all_logs(r.dagster_run.run_id)
            if e.dagster_event
            and e.dagster_event.is_step_success
            and e.dagster_event.step_key == "posterior_trace"
        }
        assert len(fit_pids) >= 1 and fit_pids <= worker_pids

        # A failed step stops what depends on it on the cluster too: the export is not
        # rebuilt from the month's older trace file.
        bad = project / "bad_fit.yaml"
        bad_fit = {"ops": {"posterior_trace": {"config": {"likelihood": "nope"}}}}
        bad.write_text(yaml.safe_dump(bad_fit))
        failed = subprocess.run(
            [*command, "-c", str(bad), "--tags", json.dumps({"dagster/partition": months[1]})],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert failed.returncode != 0
        exports = instance.fetch_materializations(asset_key("parameter_export"), limit=10)
        [last] = instance.get_run_records(limit=1)
        logs = instance.all_logs(last.dagster_run.run_id)
    assert len(exports.records) == 2  # one per month, from the two good runs only
    assert any("parameter_export skipped" in (e.message or "") for e in logs)
