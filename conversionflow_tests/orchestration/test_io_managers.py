"""The trace IO manager: a step of one market reads its market of a pooled trace."""

import json

import arviz as az
import dagster as dg
import numpy as np
from upath import UPath

from conversionflow_dagster.core.model.fitting import save_trace
from conversionflow_dagster.core.model.hierarchical import (
    MARKET_SCALES_ATTR,
    MARKETS_ATTR,
    is_pooled,
)
from conversionflow_dagster.io_managers import NetCDFIOManager
from conversionflow_dagster.partitions import MARKET, MONTH

MARKETS = ["north", "south", "west"]


def pooled_trace() -> az.InferenceData:
    """A hand-built trace in the pooled layout (what the IO manager reads is the layout)."""
    rng = np.random.default_rng(0)
    idata = az.from_dict(
        posterior={"beta": rng.normal(size=(2, 5, 3, 2)), "sigma": rng.gamma(2, size=(2, 5, 3))},
        log_likelihood={"y": rng.normal(size=(2, 5, 3, 8))},
        coords={"market": MARKETS, "channel": ["tv", "search"]},
        dims={"beta": ["market", "channel"], "sigma": ["market"], "y": ["market", "week"]},
    )
    idata.posterior.attrs[MARKETS_ATTR] = json.dumps(MARKETS)
    idata.posterior.attrs[MARKET_SCALES_ATTR] = json.dumps({m: {"target": 1.0} for m in MARKETS})
    return idata


def test_a_market_step_reads_only_its_market_of_a_pooled_trace(tmp_path):
    idata = pooled_trace()
    path = UPath(save_trace(idata, tmp_path / "2024-01-01.nc"))
    manager = NetCDFIOManager(base_path=UPath(tmp_path))
    key = dg.MultiPartitionKey({MARKET: "south", MONTH: "2024-01-01"})
    view = manager.load_from_path(dg.build_input_context(partition_key=key), path)
    assert view.posterior.attrs["market"] == "south" and not is_pooled(view)
    assert "market" not in view.posterior.dims and "market" not in view.log_likelihood.dims
    np.testing.assert_array_equal(
        view.posterior["beta"].values, idata.posterior["beta"].sel(market="south").values
    )
    whole = manager.load_from_path(dg.build_input_context(partition_key="2024-01-01"), path)
    assert is_pooled(whole) and whole.posterior.sizes["market"] == 3
