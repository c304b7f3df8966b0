"""How every figure looks, and the drawing pieces they share.

Colours come from seaborn's colour-blind palette, and bars carry hatches so that the figures also
read in greyscale print. A bar, point or panel with no result is never drawn as zero: it is marked
(``MISSING_MARK``) and the reason is printed under the figure (``add_notes``). ``save`` writes PDF
and PNG atomically.
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import io
from ..results import Cell
from .lazy import plt, sns

HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "++"]
FULL_WIDTH = 7.0  # inches: a two-column paper's text width
MISSING_MARK = "×"
BELOW_LEGEND = -0.12  # notes start under a legend placed below the axes


def set_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.0)
    plt.rcParams.update({"pdf.fonttype": 42, "savefig.bbox": "tight", "axes.titlesize": 9, "legend.fontsize": 7})


def palette(n: int) -> list:
    return sns.color_palette("colorblind", n)


def save(fig, pdf_path, png_path, dpi: int = 200) -> None:
    for path, fmt in ((pdf_path, "pdf"), (png_path, "png")):
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
    plt.close(fig)


def add_notes(fig, notes: Sequence[str], y: float = -0.06) -> None:
    """Why something is missing, under the figure (deduplicated, in order); ``y`` in figure
    coordinates, lower where a legend sits under the axes."""
    lines = list(dict.fromkeys(n for n in notes if n))
    if lines:
        text = "\n".join(lines[:8] + ([f"... and {len(lines) - 8} more"] if len(lines) > 8 else []))
        fig.text(0.01, y, text, ha="left", va="top", fontsize=6.5, color="0.3", wrap=True)


def grouped_bars(ax, groups: Sequence[str], series: Mapping[str, Mapping[str, Cell]], baseline: float = 0.0,
                  value=lambda c: c.value) -> list[str]:
    """Bars per group (x) and series (hue) with CI whiskers; a missing cell gets a grey mark.
    Returns the notes for missing cells."""
    notes = []
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(groups))
    colors = palette(n)
    for k, (label, cells) in enumerate(series.items()):
        pos = x - 0.4 + width * (k + 0.5)
        vals = np.array([value(cells[g]) if cells[g].ok else np.nan for g in groups])
        lo = np.array([cells[g].ci_low - cells[g].value if cells[g].ok else np.nan for g in groups])
        hi = np.array([cells[g].ci_high - cells[g].value if cells[g].ok else np.nan for g in groups])
        ok = ~np.isnan(vals)
        if ok.any():
            ax.bar(pos[ok], vals[ok] - baseline, width * 0.95, bottom=baseline, color=colors[k],
                   hatch=HATCHES[k % 7], edgecolor="0.25", linewidth=0.4, label=label)
        else:  # a legend entry that cannot be mistaken for a bar
            ax.bar([np.nan], [np.nan], color="white", edgecolor="0.6", linestyle="--", linewidth=0.6,
                   label=f"{label}: missing ({MISSING_MARK})")
        err = ok & ~np.isnan(lo)
        if err.any():
            ax.errorbar(pos[err], vals[err], yerr=[-lo[err], hi[err]], fmt="none", ecolor="0.2", elinewidth=0.6,
                        capsize=1.2)
        for g, p in zip(groups, pos):
            if not cells[g].ok:
                ax.annotate(MISSING_MARK, (p, 0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                            fontsize=7, color="0.45")
        reasons = defaultdict(list)
        for g in groups:
            if not cells[g].ok:
                reasons[cells[g].missing].append(g)
        for reason, gs in reasons.items():
            where = "all" if len(gs) == len(groups) else ", ".join(gs)
            notes.append(f"{MISSING_MARK} {label} ({where}): {reason}")
    ax.set_xticks(x, groups)
    ax.set_xlim(-0.5, len(groups) - 0.5)
    return notes


def value_range(series: Mapping[str, Mapping[str, Cell]], pad: float = 5.0) -> tuple[float, float]:
    vals = [v for cells in series.values() for c in cells.values() if c.ok
            for v in (c.value, c.ci_low, c.ci_high) if not math.isnan(v)]
    if not vals:
        return 0.0, 100.0
    return max(0.0, min(vals) - pad), min(100.0, max(vals) + pad)


def heatmap(ax, frame: pd.DataFrame, title: str, vmin: float, vmax: float, diagonal: bool = False):
    n = len(frame)
    sns.heatmap(frame, ax=ax, cmap="cividis", vmin=vmin, vmax=vmax, square=True, annot=n <= 6, fmt=".0f",
                annot_kws={"fontsize": 6}, cbar=False, xticklabels=True, yticklabels=True,
                linewidths=0.2 if n <= 6 else 0)
    ax.set_title(title)
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(labelsize=5.5 if n > 10 else 7)
    if diagonal:
        for i in range(n):
            ax.add_patch(plt.Rectangle((i, i), 1, 1, fill=False, ec="black", lw=1.4))


def matrix_panels(panels, vmin=None, vmax=None, size: float = 2.2, diagonal: bool = False, label: str = ""):
    """Heatmaps side by side on one colour scale; panels without a matrix are left out and
    named in the notes. ``panels``: (title, frame or None, reason)."""
    present = [(t, f) for t, f, _ in panels if f is not None]
    notes = [f"{MISSING_MARK} {t.splitlines()[0]}: {why}" for t, f, why in panels if f is None]
    n = max(1, len(present))
    fig, axes = plt.subplots(1, n, figsize=(min(FULL_WIDTH * 1.3, size * n + 0.9), size + 0.4), squeeze=False)
    axes = list(axes[0])
    if not present:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "no matrix in the results", ha="center", va="center", transform=axes[0].transAxes)
        return fig, axes, notes
    values = np.concatenate([f.values.ravel() for _, f in present])
    vmin = float(np.nanmin(values)) if vmin is None else vmin
    vmax = float(np.nanmax(values)) if vmax is None else vmax
    for ax, (title, frame) in zip(axes, present):
        # wrapped to the panel's width: side by side, long titles would run into each other
        wrapped = "\n".join(textwrap.fill(line, width=int(size * 14)) for line in title.splitlines())
        heatmap(ax, frame, wrapped, vmin, vmax, diagonal)
    cbar = fig.colorbar(axes[0].collections[0], ax=axes, shrink=0.8, fraction=0.03, pad=0.02)
    cbar.set_label(label, fontsize=7)
    cbar.ax.tick_params(labelsize=6)
    return fig, axes, notes
