"""How much history the model needs: one rule for the fit, ``validate`` and ``run``.

Import-light on purpose (no JAX): the command line checks a project's history with it before
any run starts, and the fit refuses with the same words when it is called directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Fewest weeks the sampler is given: fewer leave the baseline, trend, seasonality and channel
# effects with almost nothing to be told apart by (fitting.fit_mmm refuses them).
MIN_FIT_WEEKS = 9


def weeks_needed(holdout_weeks: int) -> int:
    """Complete weeks a fit needs: the weeks it fits plus the weeks held out after them."""
    return MIN_FIT_WEEKS + holdout_weeks


def short_history(n_weeks: int, holdout_weeks: int, what: str = "the data has") -> str | None:
    """Why ``n_weeks`` complete weeks are too few to fit, or None when they are enough.

    ``what`` names where the weeks were counted (the data, a month range, a window).
    """
    needed = weeks_needed(holdout_weeks)
    if n_weeks >= needed:
        return None
    if holdout_weeks:
        how = (
            f"{MIN_FIT_WEEKS} to fit + {holdout_weeks} held out by model.holdout_weeks; "
            "lower model.holdout_weeks or add weeks of data"
        )
    else:
        how = f"{MIN_FIT_WEEKS} to fit; each week model.holdout_weeks holds out adds one"
    return f"{what} {n_weeks} complete week(s); the model needs at least {needed} ({how})"


def unspent_channels(
    spend: np.ndarray, channel_names: Sequence[str], what: str = "the fitted weeks"
) -> str | None:
    """Why channels with no spend in any of the fitted weeks (``spend``, (T, C)) cannot be
    fitted, or None when every channel spends in some week.

    Such a channel's contribution is zero whatever its parameters: the data say nothing of
    it, the flat coordinates the sampler moves in (``mmm``) are undefined, and every
    transition diverges.
    """
    unspent = [
        c for c, total in zip(channel_names, np.abs(spend).sum(axis=0), strict=True) if not total
    ]
    if not unspent:
        return None
    one = len(unspent) == 1
    who = f"channel {unspent[0]} spends" if one else f"channels {', '.join(unspent)} spend"
    it, its, they = ("it", "it spends", "it adds") if one else ("them", "they spend", "they add")
    return (
        f"{who} nothing in {what}: the data cannot tell what {they}. Remove {it} from "
        f"`channels`, or fit weeks in which {its} (weeks held out by model.holdout_weeks are "
        "not fitted)"
    )
