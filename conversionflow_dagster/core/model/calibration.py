"""Lift tests as observations of the model's response curve (calibration of the MMM).

A randomised lift test that raised a channel's spend by ``dx`` per week on top of ``x`` and
measured ``dy`` incremental conversions per week observes the response curve directly:

    dy ~ Normal(beta_c * (s_c(x + dx) - s_c(x)), sd)

with ``s_c`` the channel's saturation at steady state (see :func:`model.lift_prediction`). This
module turns a lift-test table (:func:`lift_tests.read_lift_tests`) into those per-week
quantities in raw units, one entry per usable test; :func:`model.prepare_inputs` scales them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from conversionflow_dagster.core.errors import InputDataError

WEEK = pd.Timedelta(days=7)

SD_FLOOR = 1e-6  # relative floor of a test's sd, so an arm without conversions still works


@dataclass(frozen=True)
class LiftObservations:
    """Usable lift tests, per week and in raw units; one entry per test (L,)."""

    test_ids: tuple[str, ...]
    channel_index: np.ndarray  # (L,) int, position in the model's channels
    weeks: np.ndarray  # (L,) int, weeks of the panel's weekly grid that start in [start, end]
    spend: np.ndarray  # (L,) x: mean weekly spend of the channel over the test weeks
    spend_change: np.ndarray  # (L,) dx: extra spend per test week
    lift: np.ndarray  # (L,) dy: incremental target per test week
    lift_sd: np.ndarray  # (L,) standard error of dy
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (test_id, reason)

    def __len__(self) -> int:
        return len(self.test_ids)

    @classmethod
    def empty(cls, skipped: tuple[tuple[str, str], ...] = ()) -> LiftObservations:
        none = np.zeros(0)
        return cls((), np.zeros(0, int), np.zeros(0, int), none, none, none, none, skipped)

    def summary(self, channel_names: Sequence[str]) -> dict[str, list[dict]]:
        """Used and skipped tests as plain JSON-ready records (raw units, per week)."""
        used = [
            {
                "test_id": test_id,
                "channel": channel_names[int(c)],
                "weeks": int(n),
                "spend": float(x),
                "spend_change": float(dx),
                "lift": float(dy),
                "lift_sd": float(sd),
            }
            for test_id, c, n, x, dx, dy, sd in zip(
                self.test_ids,
                self.channel_index,
                self.weeks,
                self.spend,
                self.spend_change,
                self.lift,
                self.lift_sd,
                strict=True,
            )
        ]
        skipped = [{"test_id": test_id, "reason": reason} for test_id, reason in self.skipped]
        return {"used": used, "skipped": skipped}


def _weeks_on_grid(origin: pd.Timestamp, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Week starts (origin + 7k, k any integer) in [start, end]: the test's length in weeks,
    also where part of it lies outside the fit window, so that its total lift and spend are
    spread over all of its weeks, not squeezed into those the window shows."""
    first = math.ceil((start - origin) / WEEK)
    last = math.floor((end - origin) / WEEK)
    return max(last - first + 1, 1)


def lift_observations(
    tests: pd.DataFrame,
    spend: np.ndarray,
    week_start: pd.DatetimeIndex,
    channel_names: Sequence[str],
) -> LiftObservations:
    """Per-week lift observations of ``tests`` against the panel's spend (T, C) and weeks (T,).

    A test is used when it has a positive ``spend_change`` and at least one panel week starts
    inside [start, end]; the others are returned in ``skipped`` with the reason. A test on a
    channel the model does not have is an error.
    """
    index = {name: i for i, name in enumerate(channel_names)}
    unknown = tests.loc[~tests["channel"].isin(list(index))]
    if len(unknown):
        first = unknown.iloc[0]
        raise InputDataError(
            None,
            f"lift test {first['test_id']!r} is on channel {first['channel']!r}, which the model "
            f"does not have; expected one of {list(channel_names)}",
            column="channel",
        )
    week_start = pd.DatetimeIndex(week_start)
    change = (
        pd.to_numeric(tests["spend_change"], errors="coerce").fillna(0.0).to_numpy(float)
        if "spend_change" in tests
        else np.zeros(len(tests))
    )
    used, skipped = [], []
    for row, dx in zip(tests.itertuples(index=False), change, strict=True):
        test_id = str(row.test_id)
        in_test = np.asarray((week_start >= row.start) & (week_start <= row.end))  # (T,)
        if not dx > 0:
            skipped.append((test_id, "no positive spend_change"))
        elif not in_test.any():
            skipped.append(
                (test_id, f"no panel week starts in {row.start:%Y-%m-%d}..{row.end:%Y-%m-%d}")
            )
        else:
            weeks = _weeks_on_grid(week_start[0], row.start, row.end)
            used.append((test_id, row, index[row.channel], weeks, in_test, dx))
    if not used:
        return LiftObservations.empty(skipped=tuple(skipped))

    test_ids, rows, channel, weeks, masks, dx = zip(*used, strict=True)
    channel, weeks, dx = np.array(channel), np.array(weeks), np.array(dx, float)
    x = np.array([spend[m, c].mean() for m, c in zip(masks, channel, strict=True)])  # (L,)
    counts = pd.DataFrame(rows)
    nt, nc = counts["test_size"].to_numpy(float), counts["control_size"].to_numpy(float)
    pt = counts["test_conversions"].to_numpy(float) / nt
    pc = counts["control_conversions"].to_numpy(float) / nc
    lift = (pt - pc) * nt / weeks
    sd = np.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc) * nt / weeks
    return LiftObservations(
        test_ids=test_ids,
        channel_index=channel,
        weeks=weeks,
        spend=x,
        spend_change=dx / weeks,
        lift=lift,
        lift_sd=np.maximum(sd, SD_FLOOR * (np.abs(lift) + 1)),
        skipped=tuple(skipped),
    )
