"""The option-order robustness figure (beyond the paper): per (variant, method), the alignment
score in each option order and the consistency across orders, per country and AVG."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .. import design
from ..design import AVG, PAPER_SCORE
from ..orders import MEAN
from ..results import Cell, Results
from ..robustness import CONSISTENCY
from ..tables.robustness import ORDER_LABELS, _shown_orders
from .style import FULL_WIDTH, MISSING_MARK, add_notes, grouped_bars, palette, plt, value_range


def _points(ax, groups: Sequence[str], label: str, cells: Mapping[str, Cell]) -> list[str]:
    """Shares as points with CI whiskers (a 0 stays visible, unlike a bar); a missing cell gets a
    grey mark. Returns the notes for missing cells (as ``figures._grouped_bars`` words them)."""
    x = np.arange(len(groups))
    ok = np.array([cells[g].ok for g in groups])
    vals = np.array([cells[g].value if cells[g].ok else np.nan for g in groups])
    lo = np.array([cells[g].value - cells[g].ci_low if cells[g].ok else np.nan for g in groups])
    hi = np.array([cells[g].ci_high - cells[g].value if cells[g].ok else np.nan for g in groups])
    if ok.any():
        ax.errorbar(x[ok], vals[ok], yerr=np.nan_to_num([lo[ok], hi[ok]]), fmt="o", ms=3, color=palette(1)[0],
                    ecolor="0.2", elinewidth=0.6, capsize=1.2, label=label)
    reasons: dict[str, list[str]] = {}
    for g, p in zip(groups, x):
        if not cells[g].ok:
            ax.annotate(MISSING_MARK, (p, 0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                        fontsize=7, color="0.45")
            reasons.setdefault(cells[g].missing, []).append(g)
    ax.set_xticks(x, groups)
    ax.set_xlim(-0.5, len(groups) - 0.5)
    return [f"{MISSING_MARK} {label} ({'all' if len(gs) == len(groups) else ', '.join(gs)}): {reason}"
            for reason, gs in reasons.items()]


def order_robustness_figure(res: Results, rows: Sequence[tuple[str, str]] | None = None) -> plt.Figure:
    """One row of panels per (variant, method): (a) the paper score per country and AVG in each
    option order (bars), (b) the consistency across orders (points); whiskers: 95% CIs. A missing
    value is marked and its reason printed under the figure."""
    pairs = [(design.short_label(v, m), v, m) for v, m in (rows or design.MAIN_ROWS)]
    groups = [*res.countries, AVG]
    orders = _shown_orders(res)
    scores = {label: {o: res.series(v, m, PAPER_SCORE, groups, o) for o in orders} for label, v, m in pairs}
    lo, hi = value_range({f"{label} {o}": cells for label, per in scores.items() for o, cells in per.items()})
    width = max(4.5, min(FULL_WIDTH, 0.3 * len(groups) * (1 + 0.5 * len(orders)) + 1.5))
    fig, axes = plt.subplots(len(pairs), 2, figsize=(width, 1.5 * len(pairs) + 0.9), squeeze=False,
                             gridspec_kw={"width_ratios": [2.6, 1]})
    notes = []
    for k, (label, v, m) in enumerate(pairs):
        left, right = axes[k]
        series = {ORDER_LABELS[o].capitalize(): scores[label][o] for o in orders}
        consistency = res.series(v, m, CONSISTENCY, groups, MEAN)
        missing = grouped_bars(left, groups, series, baseline=lo) + _points(right, groups, "Consistency", consistency)
        left.set_ylim(lo, hi)
        left.set_ylabel(label, fontsize=7)
        whole = {c.missing for cells in (*series.values(), consistency) for c in cells.values()}
        if None not in whole and len(whole) == 1:  # nothing of this row: one note
            missing = [f"{MISSING_MARK} all: {whole.pop()}"]
        notes += [f"{label}: {n}" for n in missing]
        right.set_ylim(-0.05, 1.05)
        for ax in (left, right):
            ax.axvline(len(groups) - 1.5, color="0.6", lw=0.6)
            plt.setp(ax.get_xticklabels(), fontsize=5.5, rotation=90)
            ax.tick_params(axis="y", labelsize=6)
            if k < len(pairs) - 1:
                ax.set_xticklabels([])
    axes[0, 0].set_title("(a) Alignment score per option order", fontsize=8)
    axes[0, 1].set_title("(b) Consistency across orders", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=len(orders), loc="upper center", bbox_to_anchor=(0.5, 0.965), frameon=False,
               fontsize=6.5)
    fig.suptitle(f"{res.model}: alignment when the options are listed in another order (95% CI)", fontsize=9, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    add_notes(fig, notes, y=-0.005)
    return fig
