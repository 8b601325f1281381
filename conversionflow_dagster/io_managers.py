"""IO managers: asset values as files under ``storage/``, written atomically.

A run that dies mid-write (OOM killer, deploy, Ctrl-C) leaves the previous file of that
partition in place, because every file is written beside its target and renamed over it.
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
from upath import UPath

from conversionflow_dagster.core.atomic import atomic_path, write_text_atomic
from conversionflow_dagster.core.ingest.panel import (
    METADATA_KEY,
    WeeklyPanel,
    read_panel,
    write_panel,
)

# Input metadata: hand this input over as {partition key: value} even when it holds one
# partition (Dagster hands a single partition over as the value itself).
BY_PARTITION = "conversionflow/by_partition"


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

    def load_partitions(self, context: dg.InputContext) -> object:
        """Several partitions as {partition key: value}, and one as well for an input that
        asks for it (``BY_PARTITION``): an input reading every month must not receive a bare
        table, whose column names would pass for partition keys, when there is one month."""
        loaded = super().load_partitions(context)
        keys = context.asset_partition_keys
        if not (context.definition_metadata or {}).get(BY_PARTITION) or len(keys) != 1:
            return loaded
        return {} if loaded is None else {keys[0]: loaded}

    def load_from_path(self, context: dg.InputContext, path: UPath) -> object:
        import pyarrow.parquet as pq

        if METADATA_KEY in (pq.read_schema(path).metadata or {}):
            return read_panel(path)
        return pd.read_parquet(path)


class NetCDFIOManager(dg.UPathIOManager):
    """ArviZ traces as NetCDF, one file per partition; the model code is imported lazily."""

    extension = ".nc"

    def dump_to_path(self, context: dg.OutputContext, obj: object, path: UPath) -> None:
        from conversionflow_dagster.core.model.fitting import save_trace

        save_trace(obj, path)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> object:
        """A step of one market reads only its market of a pooled trace: every market's export
        and report reading the whole file would read it markets x markets times."""
        from conversionflow_dagster.core.model.fitting import load_trace
        from conversionflow_dagster.partitions import market_of  # it imports this module

        market = market_of(context.partition_key) if context.has_partition_key else None
        if market is None:
            return load_trace(path)
        from conversionflow_dagster.core.model.hierarchical import is_pooled, market_trace

        return load_trace(path, lambda t: market_trace(t, market) if is_pooled(t) else t)


class ExportJSONIOManager(dg.UPathIOManager):
    """Parameter exports as JSON, validated on write and again on read."""

    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: object, path: UPath) -> None:
        from conversionflow_dagster.core.parameter_export import write_export

        write_export(obj, path)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> object:
        from conversionflow_dagster.core.parameter_export import read_export

        if not path.exists():  # lets an input that allows missing partitions skip this one
            raise FileNotFoundError(f"{path}: no parameter export stored for this partition")
        return read_export(path)


class JSONDocumentIOManager(dg.UPathIOManager):
    """JSON-able documents (allocations, report summaries) as pretty JSON, written atomically."""

    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: object, path: UPath) -> None:
        write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> object:
        return json.loads(path.read_text(encoding="utf-8"))


FORMATS = {
    "parquet": ContractParquetIOManager,
    "netcdf": NetCDFIOManager,
    "export": ExportJSONIOManager,
    "json": JSONDocumentIOManager,
}


class AssetFilesIOManager(dg.ConfigurableIOManagerFactory):
    """Asset values as files under ``base_dir`` (``storage/assets``), in the named ``format``."""

    base_dir: str
    format: str

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.UPathIOManager:
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format!r}: expected one of {sorted(FORMATS)}")
        return FORMATS[self.format](base_path=UPath(self.base_dir))
