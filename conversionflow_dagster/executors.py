"""Where steps execute, chosen by configuration: the assets never change.

``CONVERSIONFLOW_EXECUTOR`` selects it: unset (Dagster's default: steps in parallel
subprocesses on this machine), or ``dask`` (steps on a dask.distributed cluster whose scheduler
is at ``DASK_SCHEDULER_ADDRESS``, e.g. ``tcp://10.0.0.5:8786``).
"""

import os

import dagster as dg


def configured_executor() -> dg.ExecutorDefinition | None:
    choice = os.environ.get("CONVERSIONFLOW_EXECUTOR", "").strip().lower()
    if choice in ("", "default", "multiprocess"):
        return None
    if choice == "dask":
        from dagster_dask import dask_executor

        return dask_executor.configured(
            {"cluster": {"existing": {"address": {"env": "DASK_SCHEDULER_ADDRESS"}}}}
        )
    raise ValueError(f"CONVERSIONFLOW_EXECUTOR={choice!r}: expected 'dask' or unset")
