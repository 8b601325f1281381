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


# A journey log's traffic sources (GA-style source / medium) and their share of sessions.
SOURCES = {
    "google / cpc": 0.3,
    "facebook / paid_social": 0.2,
    "tiktok / paid": 0.1,
    "google / organic": 0.2,
    "(direct) / (none)": 0.12,
    "newsletter / email": 0.08,
}
PAID_SOURCES = {"google": "google / cpc", "facebook": "facebook / paid_social",
                "tiktok": "tiktok / paid"}  # fmt: skip
JOURNEY_MONTH = "2024-03"


def journey_month(seed: int = 5, users: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One month of journeys in an analytics export's shape, and its daily spend sheet.

    Each user has a few sessions (a page view, sometimes a click) from a traffic source; some
    end in a purchase row under the session's source, the only rows with revenue. There is no
    0/1 conversion column: the interaction type says which rows are purchases.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(f"{JOURNEY_MONTH}-01")
    seconds = pd.Period(JOURNEY_MONTH, "M").days_in_month * 86_400
    rows = []
    for user in range(users):
        stamps = np.sort(rng.integers(0, seconds - 3_600, size=rng.integers(1, 6)))
        sources = rng.choice(list(SOURCES), size=len(stamps), p=list(SOURCES.values()))
        for stamp, source in zip(stamps, sources, strict=True):
            rows.append((user, stamp, source, "page_view", None))
            if rng.random() < 0.4:
                rows.append((user, stamp + 30, source, "click", None))
        if rng.random() < 0.3:
            revenue = round(float(rng.gamma(3.0, 40.0)), 2)
            rows.append((user, stamps[-1] + 600, sources[-1], "purchase", revenue))
    frame = pd.DataFrame(rows, columns=["user", "second", "source_medium", "interaction", "rev"])
    frame = frame.sort_values("second", kind="stable")
    events = pd.DataFrame(
        {
            "user_id": [f"U{u:05d}" for u in frame["user"]],
            "event_time": (start + pd.to_timedelta(frame["second"], unit="s")).dt.strftime(
                "%Y-%m-%dT%H:%M:%S"
            ),
            "source_medium": frame["source_medium"],
            "interaction": frame["interaction"],
            "revenue": frame["rev"],  # blank where there was no purchase
        }
    )
    days = pd.date_range(start, periods=seconds // 86_400, freq="D")
    spend = pd.DataFrame({"date": days.strftime("%Y-%m-%d")})
    for channel in PAID_SOURCES:
        spend[f"{channel}_cost"] = rng.uniform(200, 900, len(days)).round(2)
    return events, spend


# A monthly media-investment sheet: monthly spend per channel, a few cells left blank (no print
# that month), one header with a leading space, monthly total sales.
SHEET_RANGES = {"TV": (120_000, 300_000), " Radio": (20_000, 60_000), "Print": (10_000, 40_000),
                "Facebook": (30_000, 90_000), "Google Search": (40_000, 110_000)}  # fmt: skip
SHEET_BLANKS = {"Print": (3, 11, 17, 25), " Radio": (8,)}  # row numbers left blank
SHEET_MONTHS = 31  # 2022-01 .. 2024-07: the last 13 weeks cut into April and July


def monthly_investment_sheet(seed: int = 11) -> pd.DataFrame:
    """Monthly spend and total sales, dated by each month's first day in a 'month' column."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2022-01-01", periods=SHEET_MONTHS, freq="MS")
    frame = pd.DataFrame({"month": months.strftime("%Y-%m-%d")})
    effect = {"TV": 900_000.0, " Radio": 150_000.0, "Print": 80_000.0, "Facebook": 300_000.0,
              "Google Search": 400_000.0}  # fmt: skip
    sales = np.full(SHEET_MONTHS, 4_000_000.0) + rng.normal(0, 60_000, SHEET_MONTHS)
    for column, (lo, hi) in SHEET_RANGES.items():
        spend = rng.uniform(lo, hi, SHEET_MONTHS)
        spend[list(SHEET_BLANKS.get(column, ()))] = np.nan
        filled = np.nan_to_num(spend)
        sales += effect[column] * (1 - np.exp(-filled / np.nanmean(spend)))
        frame[column] = spend.round(2)
    frame["Sales"] = sales.round(2)
    return frame


def spread_recent_spend(sheet: pd.DataFrame, weeks: int = 13) -> float:
    """The sheet's spend over its last ``weeks`` complete Monday weeks, each month's spend
    spread evenly over its days (blanks as 0): the budget stage 2 should default to."""
    months = pd.to_datetime(sheet["month"])
    total = sheet[list(SHEET_RANGES)].fillna(0).sum(axis=1).to_numpy()
    days = pd.date_range(months.iloc[0], months.iloc[-1] + pd.offsets.MonthEnd(0), freq="D")
    row = np.searchsorted(months.to_numpy(), days.to_numpy(), side="right") - 1
    daily = total[row] / days.days_in_month.to_numpy()
    end = days[-1] + pd.Timedelta(days=1)
    last_monday = end - pd.Timedelta(days=end.weekday())  # the end of the last complete week
    recent = (days >= last_monday - pd.Timedelta(weeks=weeks)) & (days < last_monday)
    return float(daily[recent].sum())
