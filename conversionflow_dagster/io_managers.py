"""IO managers: asset values as files under ``storage/``, written atomically.

A run that dies mid-write (OOM killer, deploy, Ctrl-C) leaves the previous file of that
partition in place, because every file is written beside its target and renamed over it.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
from upath import UPath

from conversionflow_dagster.core.atomic import atomic_path
from conversionflow_dagster.core.panel import METADATA_KEY, WeeklyPanel, read_panel, write_panel


class ContractParquetIOManager(dg.UPathIOManager):
    """DataFrames and weekly panels as Parquet, one file per asset partition."""

    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: object, path: UPath) -> None:
        if isinstance(obj, WeeklyPanel):
            write_panel(obj, path)
        elif isinstance(obj, pd.DataFrame):
            with atomic_path(path) as tmp:
                obj.to_parquet(tmp, index=False)
        else:
            raise TypeError(f"cannot store {type(obj).__name__} as Parquet")

    def load_from_path(self, context: dg.InputContext, path: UPath) -> object:
        import pyarrow.parquet as pq

        if METADATA_KEY in (pq.read_schema(path).metadata or {}):
            return read_panel(path)
        return pd.read_parquet(path)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Stores asset values under ``base_dir`` (default ``storage/assets``)."""

    base_dir: str

    def create_io_manager(self, context: dg.InitResourceContext) -> ContractParquetIOManager:
        return ContractParquetIOManager(base_path=UPath(self.base_dir))
