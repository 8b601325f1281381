"""Data a stranger might bring to `conversionflow init`: a weekly panel of total sales with
untidy headers, and a journey log with its spend feed under names of its own."""

from pathlib import Path

import numpy as np
import pandas as pd

# Spend ranges per channel (a week), well away from the sample's levels (8k-45k).
SPEND_RANGES = {
    " TV_Spend": (200_000, 400_000),  # a header with a leading space
    "search_COST": (50_000, 120_000),
    "Social Media Spend": (80_000, 200_000),
    "OOH_Investment": (100_000, 250_000),
}
PANEL_CHANNELS = {"TV": " TV_Spend", "search": "search_COST", "Social": "Social Media Spend",
                  "OOH": "OOH_Investment"}  # fmt: skip
PANEL_WEEKS = 120
PANEL_START = "2022-01-03"  # a Monday; the last week (2024-04-15) ends inside April


def total_sales_panel(seed: int = 3) -> pd.DataFrame:
    """120 weeks of total sales driven by four channels and a holiday flag."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range(PANEL_START, periods=PANEL_WEEKS, freq="7D")
    spend = np.column_stack([rng.uniform(lo, hi, PANEL_WEEKS) for lo, hi in SPEND_RANGES.values()])
    mean = spend.mean(axis=0)
    effect = np.array([600_000.0, 250_000.0, 300_000.0, 200_000.0])
    holiday = np.isin(weeks.isocalendar().week.to_numpy(), [1, 14, 47, 51, 52]).astype(int)
    sales = (
        3_000_000
        + ((1 - np.exp(-spend / mean)) * effect).sum(axis=1)
        + 400_000 * holiday
        + rng.normal(0, 40_000, PANEL_WEEKS)
    )
    frame = pd.DataFrame({"Week": weeks.strftime("%Y-%m-%d")})
    for j, column in enumerate(SPEND_RANGES):
        frame[column] = spend[:, j].round(2)
    frame["Holiday"] = holiday
    frame["Total Sales"] = sales.round(2)
    return frame


def recent_spend(frame: pd.DataFrame, weeks: int = 13) -> float:
    """What the panel spent over its last ``weeks`` weeks: the budget stage 2 should default to."""
    return float(frame[list(SPEND_RANGES)].iloc[-weeks:].to_numpy().sum())


def write_journey_log(sample_dir: Path, folder: Path) -> tuple[Path, Path]:
    """The small sample's events and spend as one file each, with the log's columns renamed."""
    events = pd.concat(
        pd.read_csv(path, dtype=str) for path in sorted((sample_dir / "events").glob("*.csv"))
    )
    events = events.rename(
        columns={
            "customer_id": "user_id",
            "timestamp": "event_time",
            "touchpoint": "channel",
            "conversion": "converted",
            "value": "revenue",
        }
    )
    spend = pd.concat(
        pd.read_csv(path, dtype=str) for path in sorted((sample_dir / "spend").glob("*.csv"))
    )
    folder.mkdir(parents=True, exist_ok=True)
    events.to_csv(folder / "journeys.csv", index=False)
    spend.to_csv(folder / "media_spend.csv", index=False)
    return folder / "journeys.csv", folder / "media_spend.csv"
