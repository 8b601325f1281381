"""Randomised campaign lift tests: frequentist and Bayesian reads of test vs control cohorts.

A lift test is the strongest evidence a marketing team has about a channel, so each one is
read twice: a chi-square test of two proportions (with the confidence levels at which the
difference is significant) and a beta-binomial posterior of the relative lift with
P(test > control).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from conversionflow_dagster.core.ingest.tables import (
    Table,
    parse_labels,
    parse_numbers,
    parse_timestamps,
    read_table,
    refuse_duplicates,
    require_columns,
)
from conversionflow_dagster.core.stats import hdi

LIFT_COLUMNS = {
    "test_id": "test_id",
    "channel": "channel",
    "start": "start",
    "end": "end",
    "test_size": "test_size",
    "test_conversions": "test_conversions",
    "control_size": "control_size",
    "control_conversions": "control_conversions",
}
OPTIONAL_COLUMNS = ("spend_change",)
CONFIDENCE_LEVELS = (0.90, 0.95, 0.99)
PRIOR = (1.0, 1.0)  # Beta(1, 1): uniform on each conversion rate


@dataclass(frozen=True)
class ChiSquare:
    statistic: float
    p_value: float


def chi_square_two_proportions(
    test_conversions: int, test_size: int, control_conversions: int, control_size: int
) -> ChiSquare:
    """Pearson's chi-square on the 2x2 table (no continuity correction), 1 degree of freedom.

    Written out rather than delegated so the statistic is visible: pooled rate p, expected
    counts n*p and n*(1-p) per arm, sum of (observed - expected)^2 / expected.
    """
    observed = np.array(
        [
            [test_conversions, test_size - test_conversions],
            [control_conversions, control_size - control_conversions],
        ],
        dtype=float,
    )
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0) / observed.sum()
    if (expected == 0).any():  # everyone or no one converted: no evidence of a difference
        return ChiSquare(0.0, 1.0)
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return ChiSquare(statistic, float(stats.chi2.sf(statistic, df=1)))


@dataclass(frozen=True)
class BetaPosterior:
    """Beta(alpha, beta) posterior of a conversion rate."""

    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def variance(self) -> float:
        total = self.alpha + self.beta
        return self.alpha * self.beta / (total**2 * (total + 1))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.beta(self.alpha, self.beta, n)


def rate_posterior(
    conversions: int, size: int, prior: tuple[float, float] = PRIOR
) -> BetaPosterior:
    return BetaPosterior(prior[0] + conversions, prior[1] + size - conversions)


def read_lift_tests(path: str | Path, channels: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and validate a lift-test file: one row per test, impossible counts refused, and
    (given ``channels``) a test of a channel that is not configured refused."""
    table = read_table(path)
    require_columns(table, LIFT_COLUMNS, "lift test file")
    frame = pd.DataFrame(
        {
            "test_id": parse_labels(table, "test_id", refuse_null_text=True),
            "channel": parse_labels(table, "channel"),
            "start": parse_timestamps(table, "start"),
            "end": parse_timestamps(table, "end"),
            **{
                name: parse_numbers(table, name, non_negative=True)
                for name in ("test_size", "test_conversions", "control_size", "control_conversions")
            },
        }
    )
    if "spend_change" in table.frame:
        frame["spend_change"] = parse_numbers(table, "spend_change", blank_as_zero=True)
    _refuse_impossible(table, frame)
    _refuse_repeats(table, frame)
    if channels is not None:
        unknown = ~frame["channel"].isin(list(channels)).to_numpy()
        if unknown.any():
            index = int(np.flatnonzero(unknown)[0])
            raise table.error(
                f"unknown channel {frame['channel'].iloc[index]!r}; expected one of the "
                f"configured channels {list(channels)}",
                index=index,
                column="channel",
            )
    return frame


def _refuse_impossible(table: Table, frame: pd.DataFrame) -> None:
    for arm in ("test", "control"):
        size, conversions = frame[f"{arm}_size"], frame[f"{arm}_conversions"]
        rules = [
            (size <= 0, f"{arm}_size", f"expected a non-empty {arm} cohort (size > 0)"),
            (size % 1 != 0, f"{arm}_size", "expected a whole number of people"),
            (conversions % 1 != 0, f"{arm}_conversions", "expected a whole number"),
            (conversions > size, f"{arm}_conversions", f"expected at most {arm}_size conversions"),
        ]
        for bad, column, problem in rules:
            if bad.any():
                index = int(np.flatnonzero(bad.to_numpy())[0])
                raise table.error(
                    f"{problem}, got {table.frame[column].iloc[index]!r}",
                    index=index,
                    column=column,
                )
    backwards = (frame["end"] < frame["start"]).to_numpy()
    if backwards.any():
        index = int(np.flatnonzero(backwards)[0])
        raise table.error("expected end on or after start", index=index, column="end")


def _refuse_repeats(table: Table, frame: pd.DataFrame) -> None:
    """Refuse a test listed twice (same test_id, or the same figures under another id): its
    evidence would count twice in the analysis and the calibration."""
    refuse_duplicates(table, frame[["test_id"]], "test_id", "one row per test_id")
    refuse_duplicates(
        table,
        frame.drop(columns="test_id"),
        "test_id",
        "each test once (this row has the same channel, dates and counts under another test_id)",
    )


def analyse_lift_tests(
    tests: pd.DataFrame, *, seed: int = 0, n_draws: int = 100_000
) -> pd.DataFrame:
    """One row per test: rates, absolute and relative lift, chi-square, Bayesian lift."""
    rng = np.random.default_rng(seed)
    rows = []
    for test in tests.itertuples(index=False):
        args = (
            int(test.test_conversions),
            int(test.test_size),
            int(test.control_conversions),
            int(test.control_size),
        )
        chi = chi_square_two_proportions(*args)
        test_post = rate_posterior(args[0], args[1])
        control_post = rate_posterior(args[2], args[3])
        p_test, p_control = test_post.sample(rng, n_draws), control_post.sample(rng, n_draws)
        lift = p_test / p_control - 1.0
        low, high = hdi(lift)
        rate_test, rate_control = args[0] / args[1], args[2] / args[3]
        rows.append(
            {
                "test_id": test.test_id,
                "channel": test.channel,
                "start": test.start,
                "end": test.end,
                "test_rate": rate_test,
                "control_rate": rate_control,
                "absolute_lift": rate_test - rate_control,
                "relative_lift": rate_test / rate_control - 1 if rate_control > 0 else np.nan,
                "chi_square": chi.statistic,
                "p_value": chi.p_value,
                **{
                    f"significant_{int(level * 100)}": chi.p_value < 1 - level
                    for level in CONFIDENCE_LEVELS
                },
                "posterior_lift_mean": float(lift.mean()),
                "posterior_lift_hdi_low": low,
                "posterior_lift_hdi_high": high,
                "p_test_better": float((p_test > p_control).mean()),
                "incremental_conversions": (rate_test - rate_control) * args[1],
                "spend_change": getattr(test, "spend_change", np.nan),
            }
        )
    return pd.DataFrame(rows)
