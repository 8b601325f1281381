"""Allocation across markets: the markets' exports joined into one market x channel problem.

Pairing the markets' draws by index gives draws of the joint posterior either way: fitted on
their own, the markets' posteriors are independent; fitted as one hierarchical model, every
market's export thins the month's one trace at the same draw indices (the same seed and draw
count), so draw i of every market is the same joint draw. The joined export names
its channels ``<market>/<channel>`` and carries every market's target scale inside ``beta``
(the target scale becomes 1), so the allocation engine needs no notion of markets.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from conversionflow_dagster.core.errors import ContractError
from conversionflow_dagster.core.parameter_export import ChannelExport, ParameterExport, Scales

SEPARATOR = "/"


def market_channel(market: str, channel: str) -> str:
    return f"{market}{SEPARATOR}{channel}"


def split_market_channel(name: str) -> tuple[str, str]:
    market, _, channel = name.partition(SEPARATOR)
    return market, channel


def join_market_exports(exports: Mapping[str, ParameterExport]) -> ParameterExport:
    """One export over every market's channels; refuses markets fitted with other curves."""
    if not exports:
        raise ContractError("cross-market allocation: no market has a parameter export")
    markets = sorted(exports)
    first = exports[markets[0]]
    shape = (first.saturation, first.model["adstock"])
    for market in markets[1:]:
        other = exports[market]
        if (other.saturation, other.model["adstock"]) != shape:
            raise ContractError(
                f"cross-market allocation: market {market!r} was fitted with saturation "
                f"{other.saturation!r} and adstock {other.model['adstock']}, market "
                f"{markets[0]!r} with {first.saturation!r} and {first.model['adstock']}; "
                "refit them with one model configuration"
            )
    n_draws = min(exports[m].n_draws for m in markets)
    draws = {
        name: np.concatenate(
            [_market_draws(exports[m], name)[:n_draws] for m in markets], axis=1
        )  # (D, sum of channels)
        for name in first.draws
    }
    channels = tuple(
        ChannelExport(
            name=market_channel(m, c.name),
            current_weekly_spend=c.current_weekly_spend,
            parameters=c.parameters,
            roas=c.roas,
        )
        for m in markets
        for c in exports[m].channels
    )
    return ParameterExport(
        schema_version=first.schema_version,
        created_at=max(exports[m].created_at for m in markets),
        model=first.model,
        data_window={m: exports[m].data_window for m in markets},
        scales=Scales(
            target=1.0,
            spend={
                market_channel(m, name): scale
                for m in markets
                for name, scale in exports[m].scales.spend.items()
            },
        ),
        channels=channels,
        diagnostics={m: exports[m].diagnostics for m in markets},
        draws=draws,
    )


def _market_draws(export: ParameterExport, name: str) -> np.ndarray:
    """(D, C) draws of ``name``; ``beta`` in target units (the joined target scale is 1)."""
    values = np.asarray(export.draws[name])
    return values * export.scales.target if name == "beta" else values


def market_totals(channels: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Current and optimised spend per market of a joined plan (``<market>/<channel>`` rows)."""
    market = channels["channel"].map(lambda name: split_market_channel(str(name))[0])
    sums = channels.groupby(market, sort=True)[["current_spend", "optimised_spend"]].sum()
    return {str(m): {k: float(v) for k, v in row.items()} for m, row in sums.iterrows()}
