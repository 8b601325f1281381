"""Report figures as PNG bytes, drawn with matplotlib's Agg renderer one figure at a time.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through pyplot, so no
global figure registry holds on to them and the report leaves the caller's backend alone. Names
from the data go through :func:`plot_label` so ``$...$`` is drawn as text, never as mathtext.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110
WIDTH = 10.5  # inches; the HTML scales images to the page width
INK, BAND, ACCENT, OBSERVED = "#243b53", "#9fb3c8", "#d9480f", "#102a43"
STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e7eb",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#9aa5b1",
    "xtick.color": "#52606d",
    "ytick.color": "#52606d",
    "legend.frameon": False,
    "text.usetex": False,
}


def plot_label(text: object) -> str:
    """Data text as matplotlib draws it literally: ``$`` escaped, a leading ``_`` kept visible."""
    label = str(text).replace("$", r"\$")
    return " " + label if label.startswith("_") else label


def _new_figure(height: float) -> Figure:
    figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    """Encode and release the figure."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    figure.clear()
    return buffer.getvalue()


def _compact(value: float, _position: object = None) -> str:
    """Tick text: 1.2k, 3.4M."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _band(ax: Axes, x: object, frame: pd.DataFrame, label: str | None = None) -> None:
    ax.fill_between(
        x,
        frame["hdi_low"],
        frame["hdi_high"],
        color=BAND,
        alpha=0.45,
        lw=0,
        label=None if label is None else "94% HDI",
    )
    ax.plot(x, frame["mean"], color=INK, lw=1.4, label=label)


def response_curves_png(
    curves: Mapping[str, pd.DataFrame],
    current_weekly: Mapping[str, float],
    optimised_weekly: Mapping[str, float],
    currency: str = "",
) -> bytes:
    """One small panel per channel: weekly response against weekly spend, plans marked."""
    channels = list(curves)
    columns = min(4, len(channels)) or 1
    rows = max(math.ceil(len(channels) / columns), 1)
    with mpl.rc_context(STYLE):
        figure = _new_figure(2.1 * rows + 0.4)
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for ax, channel in zip(axes, channels, strict=False):
            curve = curves[channel].sort_values("spend")
            _band(ax, curve["spend"], curve)
            for spend, colour, name in (
                (current_weekly.get(channel), "#829ab1", "current"),
                (optimised_weekly.get(channel), ACCENT, "optimised"),
            ):
                if spend is not None:
                    response = np.interp(spend, curve["spend"], curve["mean"])
                    ax.axvline(spend, color=colour, lw=1, ls="--")
                    ax.plot([spend], [response], "o", color=colour, ms=5, label=name)
            ax.set_title(plot_label(channel), loc="left")
            ax.xaxis.set_major_formatter(_compact)
            ax.yaxis.set_major_formatter(_compact)
            ax.set_ylim(bottom=0)
        for ax in axes[len(channels) :]:
            ax.set_visible(False)
        if channels:
            axes[0].legend(loc="lower right", fontsize=7.5)
        unit = f" ({plot_label(currency)})" if currency else ""
        figure.supxlabel(f"Weekly spend{unit}", fontsize=8.5)
        figure.supylabel("Weekly response", fontsize=8.5)
        return _png(figure)


def contributions_png(contributions: pd.DataFrame) -> bytes:
    """Stacked weekly contributions, baseline at the bottom."""
    order = ["baseline", *[c for c in contributions.columns if c != "baseline"]]
    order = [c for c in order if c in contributions.columns]
    colours = ["#d9e2ec", *mpl.colormaps["tab20"].colors]
    with mpl.rc_context(STYLE):
        figure = _new_figure(3.6)
        ax = figure.add_subplot()
        ax.stackplot(
            contributions.index,
            *(contributions[c].clip(lower=0).to_numpy() for c in order),
            labels=[plot_label(c) for c in order],
            colors=[colours[i % len(colours)] for i in range(len(order))],
            lw=0,
        )
        ax.yaxis.set_major_formatter(_compact)
        ax.set_ylabel("Weekly contribution")
        ax.margins(x=0)
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7.5, ncols=1 + len(order) // 14
        )
        return _png(figure)


def _holdout_runs(flags: pd.Series) -> list[tuple[int, int]]:
    """First and last row of each contiguous run of hold-out weeks."""
    flags = flags.astype(bool).to_numpy()
    index = flags.nonzero()[0]
    if index.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(index) > 1)
    starts = np.r_[index[0], index[breaks + 1]]
    ends = np.r_[index[breaks], index[-1]]
    return list(zip(starts, ends, strict=True))


def ppc_png(ppc: pd.DataFrame) -> bytes:
    """Posterior predictive band and mean against the observed weeks; hold-out weeks shaded."""
    x = ppc.index
    with mpl.rc_context(STYLE):
        figure = _new_figure(3.2)
        ax = figure.add_subplot()
        if "holdout" in ppc.columns:
            step = x[1] - x[0] if len(x) > 1 else pd.Timedelta(days=7)
            for i, (start, end) in enumerate(_holdout_runs(ppc["holdout"])):
                ax.axvspan(
                    x[start],
                    x[end] + step,
                    color="#fff3bf",
                    lw=0,
                    label="hold-out weeks" if i == 0 else None,
                )
        _band(ax, x, ppc, label="posterior predictive mean")
        ax.plot(x, ppc["observed"], "o", color=OBSERVED, ms=2.6, label="observed")
        ax.yaxis.set_major_formatter(_compact)
        ax.margins(x=0.01)
        ax.legend(loc="upper left", ncols=4, fontsize=7.5)
        return _png(figure)


def roas_png(roas: pd.DataFrame) -> bytes:
    """ROAS per channel with its 94% HDI as horizontal error bars, best at the top."""
    ordered = roas.sort_values("mean")
    y = np.arange(len(ordered))
    errors = np.vstack(
        [
            (ordered["mean"] - ordered["hdi_low"]).clip(lower=0),
            (ordered["hdi_high"] - ordered["mean"]).clip(lower=0),
        ]
    )
    with mpl.rc_context(STYLE):
        figure = _new_figure(0.75 + 0.28 * len(ordered))
        ax = figure.add_subplot()
        ax.errorbar(
            ordered["mean"],
            y,
            xerr=errors,
            fmt="o",
            color=INK,
            ecolor=BAND,
            elinewidth=2.2,
            capsize=0,
            ms=4,
        )
        ax.set_yticks(y, [plot_label(c) for c in ordered["channel"]])
        ax.set_xlabel("Response per unit of spend (94% HDI)")
        ax.grid(axis="y", visible=False)
        ax.set_xlim(left=0)
        return _png(figure)


def stability_png(stability: pd.DataFrame) -> bytes:
    """Each parameter's posterior across monthly refits, one panel per parameter."""
    months = sorted(stability["as_of_month"].astype(str).unique())
    position = {m: i for i, m in enumerate(months)}
    parameters = list(dict.fromkeys(stability["parameter"].astype(str)))
    channels = list(dict.fromkeys(stability["channel"].astype(str)))
    colours = mpl.colormaps["tab20"].colors
    columns = min(3, len(parameters))
    rows = math.ceil(len(parameters) / columns)
    with mpl.rc_context(STYLE):
        figure = _new_figure(2.5 * rows + 0.5)
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for ax, parameter in zip(axes, parameters, strict=False):
            subset = stability[stability["parameter"].astype(str) == parameter]
            for i, channel in enumerate(channels):
                line = subset[subset["channel"].astype(str) == channel]
                if line.empty:
                    continue
                line = line.assign(x=line["as_of_month"].astype(str).map(position)).sort_values("x")
                colour = colours[i % len(colours)]
                ax.fill_between(
                    line["x"], line["hdi_low"], line["hdi_high"], color=colour, alpha=0.15, lw=0
                )
                ax.plot(
                    line["x"],
                    line["mean"],
                    "o-",
                    color=colour,
                    ms=3,
                    lw=1.2,
                    label=plot_label(channel),
                )
            ax.set_title(plot_label(parameter), loc="left")
            ax.set_xticks(range(len(months)), [plot_label(m) for m in months])
            if len(months) > 6:
                ax.tick_params(axis="x", labelrotation=45)
        for ax in axes[len(parameters) :]:
            ax.set_visible(False)
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside right upper", fontsize=7.5)
        return _png(figure)
