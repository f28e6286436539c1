"""Figures of the report, drawn with matplotlib and inlined as SVG.

No pyplot: every figure is a `matplotlib.figure.Figure` with an Agg canvas (no GUI backend,
no global figure state), saved to SVG in memory with a fixed `svg.hashsalt` and no date, so
the same data gives the same SVG. Text stays text (`svg.fonttype: none`). The SVG is made
fit for inlining in one HTML page: no XML prolog or metadata, no namespace URLs, and ids
prefixed by a hash of the figure so two figures never share one.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from contextlib import contextmanager

import matplotlib
import numpy as np
from markupsafe import escape
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from instructmix.report.fmt import finite, num, slug

RC = {
    "svg.hashsalt": "instructmix-report",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.labelsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
}
COLOURS = matplotlib.colormaps["tab10"].colors
MANY_COLOURS = matplotlib.colormaps["tab20"].colors  # stacks of more than 10 series
BAR = "#4a7ebb"


@contextmanager
def plotting(width: float, height: float, layout: str | None = "constrained"):
    """A new figure (inches) under the report's rc settings; call `to_svg` inside."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), layout=layout)
        FigureCanvasAgg(fig)
        yield fig


def to_svg(fig: Figure, label: str) -> str:
    """The figure as an inline <svg> element (see module doc)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None,
                                              "Type": None})
    return inline_svg(buf.getvalue(), label)


def inline_svg(svg: str, label: str) -> str:
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r"<style[^>]*>.*?</style>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    prefix = "f" + hashlib.sha1(svg.encode()).hexdigest()[:8] + "-"
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', svg)
    return svg.replace("<svg ", f'<svg class="fig" role="img" aria-label="{escape(label)}" ',
                       1).strip()


def tick_text(v, _pos=None) -> str:
    """Axis ticks: thousands separators, no scientific notation for counts."""
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.6g}".replace("-", "−")


def _plain_axis(axis) -> None:
    axis.set_major_formatter(FuncFormatter(tick_text))


def _ticks(ax, positions, labels, axis: str = "x") -> None:
    rotate = axis == "x" and (len(labels) > 4 or max(map(len, labels), default=0) > 8)
    if axis == "x":
        ax.set_xticks(positions, labels, rotation=30 if rotate else 0,
                      ha="right" if rotate else "center", rotation_mode="anchor")
    else:
        ax.set_yticks(positions, labels)


def bar_chart(labels, values, *, title: str, xlabel: str, ylabel: str = "category",
              vmax: float | None = None, integer: bool = False) -> str:
    """Horizontal bars, one per label, the value printed at the end of each; a missing
    value (None, NaN) has no bar and reads "n/a"."""
    labels = [str(x) for x in labels]
    vals = [finite(v) for v in values]
    with plotting(6.5, 1.1 + 0.28 * max(len(labels), 1)) as fig:
        ax = fig.add_subplot()
        y = np.arange(len(labels))
        ax.barh(y, [v or 0.0 for v in vals], height=0.7, color=BAR)
        for yi, v in zip(y, vals, strict=True):
            shown = num(None if v is None else (round(v) if integer else v))
            ax.text(v or 0.0, yi, f" {shown}", va="center", fontsize=8)
        _ticks(ax, y, labels, "y")
        ax.invert_yaxis()
        top = vmax if vmax is not None else max([v for v in vals if v is not None] + [0.0])
        low = min([v for v in vals if v is not None] + [0.0])
        ax.set_xlim(low, (top or 1.0) * 1.18)
        if not labels:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        _plain_axis(ax.xaxis)
        if integer:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        return to_svg(fig, title)


def _mean_std(v) -> tuple[float, float]:
    """(mean, std) of a {"mean", "std"} cell or a plain number; NaN when missing."""
    if isinstance(v, dict):
        m, s = finite(v.get("mean")), finite(v.get("std"))
        return (math.nan if m is None else m, 0.0 if s is None else s)
    m = finite(v)
    return (math.nan if m is None else m, math.nan)


def grouped_bars(groups, series: dict, *, title: str, xlabel: str, ylabel: str,
                 legend_title: str, ylim: tuple[float, float] | None = None,
                 error_bars: bool = True) -> str:
    """One group of bars per label of `groups`, one bar per series (name -> values, each
    a number or {"mean", "std"}), with error bars (± std) when `error_bars`. A missing
    value reads "n/a" in place of its bar. Error bars of series `name` are the SVG group
    `errorbar-<name>`."""
    groups = [str(g) for g in groups]
    n = max(len(series), 1)
    width = min(11.0, max(7.0, 0.3 * len(groups) * n + 3.5))
    with plotting(width, 3.6) as fig:
        ax = fig.add_subplot()
        x = np.arange(len(groups))
        w = 0.8 / n
        for k, (name, values) in enumerate(series.items()):
            ms = np.array([_mean_std(v) for v in values], dtype=float).reshape(-1, 2)
            xs = x + (k - (n - 1) / 2) * w
            yerr = np.where(np.isnan(ms[:, 1]), 0.0, ms[:, 1]) if error_bars else None
            bars = ax.bar(xs, np.nan_to_num(ms[:, 0]), w, yerr=yerr, label=str(name),
                          color=COLOURS[k % len(COLOURS)], capsize=3 if error_bars else 0,
                          error_kw={"elinewidth": 1.0, "ecolor": "#222"})
            if error_bars:
                for coll in bars.errorbar.lines[2]:
                    coll.set_gid(f"errorbar-{slug(name)}")
            for xi, m in zip(xs, ms[:, 0], strict=True):
                if np.isnan(m):
                    ax.text(xi, 0, "n/a", rotation=90, ha="center", va="bottom", fontsize=7)
        _ticks(ax, x, groups)
        if ylim:
            ax.set_ylim(*ylim)
        _plain_axis(ax.yaxis)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        if series:
            ax.legend(title=legend_title, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return to_svg(fig, title)


def _finite_points(xs, ys) -> list[tuple[float, float]]:
    pts = [(finite(a), finite(b)) for a, b in zip(xs, ys, strict=True)]
    return [(a, b) for a, b in pts if a is not None and b is not None]


def line_chart(series: dict, *, title: str, xlabel: str, ylabel: str,
               points: dict | None = None) -> str:
    """Lines (name -> (xs, ys)), and unjoined markers (`points`: name -> (xs, ys)); points
    with a missing x or y are dropped; "no data" when nothing is left."""
    with plotting(8.0, 3.0) as fig:
        ax = fig.add_subplot()
        drawn = 0
        for k, (name, (xs, ys)) in enumerate(series.items()):
            pts = _finite_points(xs, ys)
            if not pts:
                continue
            px, py = zip(*pts, strict=True)
            ax.plot(px, py, label=str(name), color=COLOURS[k % len(COLOURS)], lw=1.5,
                    marker="o" if len(pts) < 3 else None, markersize=4)
            drawn += 1
        for k, (name, (xs, ys)) in enumerate((points or {}).items(), len(series)):
            pts = _finite_points(xs, ys)
            if pts:
                px, py = zip(*pts, strict=True)
                ax.scatter(px, py, s=14, label=str(name), color=COLOURS[k % len(COLOURS)],
                           alpha=0.75, zorder=3)
                drawn += 1
        if drawn:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _plain_axis(ax.xaxis)
        _plain_axis(ax.yaxis)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        return to_svg(fig, title)


def stacked_bars(groups, series: dict, *, title: str, xlabel: str, ylabel: str,
                 legend_title: str) -> str:
    """One bar per label of `groups`, stacked from the series (name -> values, in order,
    first at the bottom; a missing value stacks nothing); "no data" without groups."""
    groups = [str(g) for g in groups]
    with plotting(min(11.0, max(7.0, 0.45 * len(groups) + 4.0)), 3.6) as fig:
        ax = fig.add_subplot()
        x = np.arange(len(groups))
        bottom = np.zeros(len(groups))
        colours = COLOURS if len(series) <= len(COLOURS) else MANY_COLOURS
        for k, (name, values) in enumerate(series.items()):
            v = np.array([finite(a) or 0.0 for a in values], dtype=float).reshape(-1)
            ax.bar(x, v, 0.8, bottom=bottom, label=str(name),
                   color=colours[k % len(colours)], edgecolor="white", linewidth=0.5)
            bottom = bottom + v
        if not groups:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        _ticks(ax, x, groups)
        _plain_axis(ax.yaxis)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        if series and groups:
            ax.legend(title=legend_title, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                      reverse=True)
        return to_svg(fig, title)
