"""The Γ heat map of the probe stage: γ and its interval in every cell, on a diverging
logarithmic colour scale symmetric around 0."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.colors import SymLogNorm

from instructmix.report.figures import plotting, to_svg
from instructmix.report.fmt import as_float, interval, num

LINTHRESH = 0.1  # |γ| below this is on the linear part of the colour scale


def _matrix(rows, n: int) -> np.ndarray:
    """An n×n float matrix from nested lists (None -> NaN); all NaN when absent."""
    if not isinstance(rows, list) or len(rows) != n:
        return np.full((n, n), np.nan)
    return np.array([[as_float(v) for v in (r if isinstance(r, list) else [None] * n)]
                     for r in rows], dtype=float).reshape(n, n)


def gamma_norm(g: np.ndarray) -> SymLogNorm:
    """Diverging, symmetric around 0, logarithmic beyond ±LINTHRESH, up to the largest |γ|
    but at least 2: γ = ±1 (every diagonal entry) sits well inside the scale, and a γ of
    ±30 does not wash out the small entries."""
    values = np.abs(g[np.isfinite(g)])
    top = max(2.0, float(values.max()) if values.size else 1.0)
    return SymLogNorm(linthresh=LINTHRESH, linscale=1.0, vmin=-top, vmax=top, base=10)


def _colorbar_ticks(top: float) -> list[float]:
    pos = [t for t in (0.1, 1.0, 10.0, 100.0, 1000.0) if t < top * 0.8] + [top]
    return [-t for t in reversed(pos)] + [0.0] + pos


def cell_text(v: float, lo: float, hi: float, unidentified: bool) -> str:
    if math.isnan(v):
        return "unidentified" if unidentified else "n/a"
    return f"{num(v, 2)}\n{interval(lo, hi)}"


def gamma_heatmap(cats: list[str], inter: dict, title: str) -> str:
    """Γ (row i = ability scored, column j = category added) coloured on `gamma_norm`, each
    cell printing γ and its interval; unidentified rows grey. The colour bar is the SVG
    group `colorbar`."""
    n = len(cats)
    g, lo, hi = (_matrix(inter.get(k), n) for k in ("gamma", "lo", "hi"))
    bad_rows = set(inter.get("unidentified") or {})
    norm = gamma_norm(g)
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#d9d9d9")
    size = 1.05 if n <= 6 else max(0.6, 6.3 / n)
    fontsize = 7.5 if n <= 6 else max(5.0, 45.0 / n)
    with plotting(size * n + 3.2, size * n + 1.9) as fig:
        ax = fig.add_subplot()
        im = ax.imshow(np.ma.masked_invalid(g), cmap=cmap, norm=norm, aspect="equal")
        for i in range(n):
            for j in range(n):
                v = g[i, j]
                dark = math.isfinite(v) and abs(float(norm(v)) - 0.5) > 0.33
                ax.text(j, i, cell_text(v, lo[i, j], hi[i, j], cats[i] in bad_rows),
                        ha="center", va="center", fontsize=fontsize,
                        color="white" if dark else "#111")
        ax.set_xticks(range(n), cats, rotation=40, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), cats)
        ax.set_xlabel("category j added to the probe's training data (column)")
        ax.set_ylabel("ability i scored (row)")
        ax.set_title(title)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
        cb = fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02)
        ticks = _colorbar_ticks(float(norm.vmax))
        cb.set_ticks(ticks, labels=[f"{t:g}".replace("-", "−") for t in ticks])
        cb.set_label("γ_ij (symmetric log scale; > 0 helps, < 0 hurts)")
        cb.ax.set_gid("colorbar")
        return to_svg(fig, title)
