"""A fit killed mid-sampling (SIGKILL) leaves the previous trace intact; the next run completes."""

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from conversionflow_tests.conftest import LOOSE_GATES, SHORT_FIT, SMALL_MONTHS, write_config

pytestmark = pytest.mark.slow

FIT = """
import sys
from pathlib import Path
import dagster as dg
from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.runner import execute_plan, pipeline_plan
root, (chains, warmup, draws) = Path(sys.argv[1]), map(int, sys.argv[2:])
defs = build_definitions(root, root / "configs" / "test.yaml")
plan = pipeline_plan([], fit_months=["2023-05"], ingest=False, stage2=False)
plan = [r for r in plan if r.name.startswith("stage 1")]
config = {"posterior_trace": {"chains": chains, "warmup": warmup, "draws": draws}}
with dg.DagsterInstance.get() as instance:
    summary = execute_plan(defs, instance, plan, asset_config=config, log_level="INFO")
sys.exit(0 if summary.runs else 3)
"""


# Each fit is the tests' short fit with its own draws, all multiples of one chunk
# (chunk_size(30, n) == 3 for n = 30, 60, 30 000): the three run one compiled sampler, so only
# the first compiles and the one to be killed is sampling within seconds.
def fit(project, draws: int, **popen):
    env = {**os.environ, "DAGSTER_HOME": str(project / "dagster_home")}
    sampler = (SHORT_FIT["chains"], SHORT_FIT["warmup"], draws)
    command = [sys.executable, "-c", FIT, str(project), *map(str, sampler)]
    return subprocess.Popen(command, env=env, **popen)


def test_sigkill_mid_sampling_keeps_the_previous_trace(project):
    from conversionflow_dagster.code_location import build_definitions
    from conversionflow_dagster.core.model.fitting import load_trace
    from conversionflow_dagster.runner import execute_plan, pipeline_plan

    # short fits that the gates let through: a refused fit would store no trace at all
    write_config(project, **{"model.gates": LOOSE_GATES})
    home = project / "dagster_home"
    home.mkdir()
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            defs = build_definitions(project, project / "configs" / "test.yaml")
            assert execute_plan(defs, instance, pipeline_plan(SMALL_MONTHS)).success
    finally:
        os.environ.pop("DAGSTER_HOME")
    trace = project / "storage/assets/sample/posterior_trace/2023-05-01.nc"
    assert fit(project, SHORT_FIT["draws"]).wait(timeout=600) == 0
    before = trace.read_bytes()

    log = project / "fit.log"
    with open(log, "w") as out:
        process = fit(project, 30_000, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while "sampling:" not in log.read_text() and "warm-up:" not in log.read_text():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the fit never started sampling"
            time.sleep(0.5)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)

    assert trace.read_bytes() == before
    assert load_trace(trace).posterior.sizes["draw"] == SHORT_FIT["draws"]
    assert not list(trace.parent.glob(".*.tmp"))
    assert fit(project, 60).wait(timeout=600) == 0
    assert load_trace(trace).posterior.sizes["draw"] == 60
