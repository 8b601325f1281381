"""Calendar months as ``YYYY-MM`` text: the unit of data partitions and of every month range.

Plain ``datetime`` arithmetic, so the config and the command line use it without importing
pandas; the datetimes it returns compare with pandas timestamps as they are.
"""

from __future__ import annotations

import datetime as dt


def month_start(month: str) -> dt.datetime:
    """Midnight on the first day of ``month`` (YYYY-MM)."""
    return dt.datetime.strptime(month, "%Y-%m")


def next_month_start(month: str) -> dt.datetime:
    """Midnight on the first day after ``month``: the month's exclusive end."""
    return month_start(shift_month(month, 1))


def shift_month(month: str, months: int) -> str:
    """The month ``months`` calendar months after ``month`` (before it when negative)."""
    start = month_start(month)
    year, index = divmod(start.year * 12 + start.month - 1 + months, 12)
    return f"{year:04d}-{index + 1:02d}"


def months_between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last``, both included; empty when ``last`` comes first."""
    start, end = month_start(first), month_start(last)
    count = (end.year - start.year) * 12 + end.month - start.month + 1
    return [shift_month(first, i) for i in range(max(count, 0))]


def previous_month(day: dt.date) -> str:
    """The calendar month before the one ``day`` lies in."""
    return shift_month(f"{day.year:04d}-{day.month:02d}", -1)
