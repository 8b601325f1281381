"""Where steps execute, chosen by configuration: the assets never change.

``CONVERSIONFLOW_EXECUTOR`` selects it: unset (Dagster's default: steps in parallel
subprocesses on this machine), or ``dask`` (steps as tasks on the dask.distributed cluster
whose scheduler is at ``DASK_SCHEDULER_ADDRESS``, e.g. ``tcp://10.0.0.5:8786``).

The dask executor is this module's rather than dagster-dask's (0.29), which fails the way this
project runs: it names each task ``<job>.<step>``, so concurrent runs of one job (a backfill
over markets) share tasks and all but one skip their steps (dagster issue 21418), and it hands
the run record to ``Client.submit``, whose argument parser walks tuples and breaks on the
run's op-concurrency record (any step in a pool, like the fit). Here a task is named by run and
step, and Dagster's objects travel in an opaque envelope the parser leaves alone. Like
dagster-dask's, it does not claim concurrency-pool slots: start workers with ``--nthreads 1``
so that a worker runs one step (one fit) at a time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.errors import raise_execution_interrupts
from dagster._core.execution.api import create_execution_plan, execute_plan
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._utils import iterate_with_context


@dataclass(frozen=True)
class _Step:
    """What a worker needs to run one step of a run (not a tuple: dask passes it as is)."""

    job: Any  # ReconstructableJob
    run: dg.DagsterRun
    run_config: dict
    step_key: str
    instance_ref: Any
    known_state: Any


def _run_step(step: _Step, upstream: list[list[dg.DagsterEvent]]) -> list[dg.DagsterEvent]:
    """On a worker: execute one step against the shared instance, unless a step it depends on
    did not succeed (a failed blocking check included): then it is skipped, as Dagster's own
    executors do, and never reads an older file of that partition."""
    with dg.DagsterInstance.from_ref(step.instance_ref) as instance:
        failed = [
            events[0].step_key if events else "an upstream step"
            for events in upstream
            if not any(e.is_step_success for e in events)
        ]
        if failed:
            instance.report_engine_event(
                f"{step.step_key} skipped: {', '.join(failed)} did not succeed", step.run
            )
            return []
        job = step.job.get_subset(op_selection=step.run.resolved_op_selection)
        plan = create_execution_plan(
            job,
            run_config=step.run_config,
            step_keys_to_execute=[step.step_key],
            known_state=step.known_state,
        )
        return list(execute_plan(plan, job, instance, step.run, run_config=step.run_config))


CONNECT_ATTEMPTS = 3


def _connect(address: str):
    """A client of the scheduler. Many runs connecting at once (a backfill) can break a
    handshake (seen once in about 200 runs: ``assert len(msg) == 1`` inside distributed), so a
    failed connection is retried before the run fails."""
    from dask.distributed import Client

    for attempt in range(1, CONNECT_ATTEMPTS):
        try:
            return Client(address)
        except (OSError, AssertionError):  # what distributed raises for a broken handshake
            time.sleep(attempt)
    return Client(address)


class DaskClusterExecutor(dg.Executor):
    """Each step of a run as a task on an existing dask.distributed cluster."""

    def __init__(self, address: str) -> None:
        self.address = address

    @property
    def retries(self) -> RetryMode:
        return RetryMode.DISABLED

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan):
        from dask.distributed import as_completed

        instance = plan_context.instance
        if not instance.is_persistent:
            raise dg.DagsterInvariantViolationError("dask execution needs a persistent instance")
        run = plan_context.dagster_run
        with _connect(self.address) as client:
            futures = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    upstream = [  # steps of this run only (a re-execution skips the rest)
                        futures[key]
                        for put in step.step_inputs
                        for key in put.dependency_keys
                        if key in futures
                    ]
                    task = _Step(
                        plan_context.reconstructable_job,
                        run,
                        plan_context.run_config,
                        step.key,
                        instance.get_ref(),
                        execution_plan.known_state,
                    )
                    futures[step.key] = client.submit(
                        _run_step, task, upstream, key=f"{run.run_id}.{step.key}", pure=False
                    )
            try:
                done = as_completed(list(futures.values()), with_results=True)
                for _, events in iterate_with_context(raise_execution_interrupts, done):
                    yield from events
            finally:  # an interrupted run leaves no steps running on the cluster
                client.cancel([f for f in futures.values() if not f.done()])


@dg.executor(
    name="dask_cluster",
    requirements=dg.multiple_process_executor_requirements(),
    config_schema={"address": dg.StringSource},
)
def dask_cluster_executor(init_context: dg.InitExecutorContext) -> DaskClusterExecutor:
    """Steps on the dask.distributed cluster whose scheduler is at ``address``."""
    return DaskClusterExecutor(init_context.executor_config["address"])


def configured_executor() -> dg.ExecutorDefinition | None:
    choice = os.environ.get("CONVERSIONFLOW_EXECUTOR", "").strip().lower()
    if choice in ("", "default", "multiprocess"):
        return None
    if choice == "dask":
        return dask_cluster_executor.configured(
            {"address": {"env": "DASK_SCHEDULER_ADDRESS"}}, name="dask_cluster"
        )
    raise ValueError(f"CONVERSIONFLOW_EXECUTOR={choice!r}: expected 'dask' or unset")
