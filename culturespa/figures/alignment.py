"""Figures drawn from a model's alignment scores alone (alignment.csv): figures 1, 4 and 6 of the
paper, and ours comparing the paper's score with distributional ones."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from .. import design
from ..design import AVG, BASE, CULTURESPA, P1, PAPER_SCORE
from ..results import Cell, Results
from .lazy import plt, sns
from .style import BELOW_LEGEND, FULL_WIDTH, MISSING_MARK, add_notes, grouped_bars, palette, value_range


# --- figure 1 -------------------------------------------------------------------------------


def alignment_by_country(res: Results) -> plt.Figure:
    """Figure 1: alignment per country for culture-unaware prompting, P1, and CultureSPA."""
    groups = [*res.countries, AVG]
    series = {
        "Culture-unaware": res.series(BASE, design.CULTURE_UNAWARE, countries=groups),
        "Culture-aware (P1)": res.series(BASE, P1, countries=groups),
        "CultureSPA": res.series(CULTURESPA, P1, countries=groups),
    }
    fig, ax = plt.subplots(figsize=(max(4.5, min(FULL_WIDTH, 0.38 * len(groups) + 1.2)), 2.6))
    lo, hi = value_range(series)
    notes = grouped_bars(ax, groups, series, baseline=lo)
    uniform = res.cell(BASE, "baseline_uniform", AVG)
    if uniform.ok:
        ax.axhline(uniform.value, color="0.4", ls="--", lw=0.8, label="Uniform random (AVG)")
        lo = min(lo, uniform.value - 2)
    ax.set_ylim(lo, hi)
    ax.set_ylabel("Alignment score")
    ax.set_title(f"{res.model}: alignment with the WVS (95% CI)")
    ax.axvline(len(groups) - 1.5, color="0.6", lw=0.6)
    ax.legend(ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    plt.setp(ax.get_xticklabels(), fontsize=7)
    add_notes(fig, notes, y=BELOW_LEGEND)
    return fig


# --- figure 4 -------------------------------------------------------------------------------


def sampling_strategies(res: Results) -> plt.Figure:
    """Figure 4: change in alignment per country against the P1 baseline, for each sampling strategy."""
    groups = [*res.countries, AVG]
    series = {name: res.series(variant, P1, design.delta_metric(BASE, P1), groups)
              for name, variant in design.SAMPLING.items()}
    fig, ax = plt.subplots(figsize=(max(4.5, min(FULL_WIDTH, 0.38 * len(groups) + 1.2)), 2.5))
    notes = grouped_bars(ax, groups, series)
    ax.axhline(0, color="0.2", lw=0.8)
    ax.axvline(len(groups) - 1.5, color="0.6", lw=0.6)
    ax.set_ylabel("Δ alignment vs P1 (paired 95% CI)")
    ax.set_title(f"{res.model}: data sampling strategies (fine-tuned, answering with P1)")
    ax.legend(ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    plt.setp(ax.get_xticklabels(), fontsize=7)
    add_notes(fig, notes, y=BELOW_LEGEND)
    return fig


# --- figure 6 -------------------------------------------------------------------------------


def data_quantity(res: Results) -> plt.Figure:
    """Figure 6: average alignment against the fraction of the culture-related data used (top), and
    its paired difference from the base model with P1 (bottom), each with a 95% CI."""
    cells = {p: res.cell(design.fraction_variant(p), P1, AVG) for p in design.FRACTIONS}
    deltas = {p: res.cell(design.fraction_variant(p), P1, AVG, design.delta_metric(BASE, P1)) for p in design.FRACTIONS}
    ok = {p: c for p, c in cells.items() if c.ok}
    fig, (ax, dax) = plt.subplots(2, 1, figsize=(3.4, 3.6), sharex=True, gridspec_kw={"height_ratios": [1.6, 1]})
    colors = palette(3)
    _line_with_ci(ax, ok, colors[0], "CultureSPA (P1), 95% CI")
    for k, (label, method) in enumerate((("Culture-aware (P1)", P1), ("Culture-unaware", design.CULTURE_UNAWARE)), 1):
        c = res.cell(BASE, method, AVG)
        if c.ok:
            ax.axhline(c.value, color=colors[k], ls="--" if k == 1 else ":", lw=1, label=f"Base model, {label}")
    _line_with_ci(dax, {p: c for p, c in deltas.items() if c.ok}, colors[0], "Δ vs base P1, paired 95% CI")
    dax.axhline(0, color="0.3", lw=0.8)
    dax.set_xlim(0, 105)
    dax.set_xticks(list(design.FRACTIONS))
    dax.set_xlabel("Training data used (%)")
    ax.set_ylabel("Average alignment score")
    dax.set_ylabel("Δ vs P1", fontsize=7)
    ax.set_title(f"{res.model}: data quantity")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    missing = [p for p in cells if p not in ok]
    notes = []
    if missing:
        reasons = defaultdict(list)
        for p in missing:
            reasons[cells[p].missing.replace(design.fraction_variant(p), "the variant")].append(f"{p}%")
            ax.annotate(MISSING_MARK, (p, 0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                        fontsize=7, color="0.45")
        notes = [f"{MISSING_MARK} {', '.join(ps)}: {reason}" for reason, ps in reasons.items()]
    no_delta = [p for p in ok if not deltas[p].ok]
    if no_delta:
        notes.append(f"{MISSING_MARK} Δ at {', '.join(f'{p}%' for p in no_delta)}: {deltas[no_delta[0]].missing}")
    add_notes(fig, notes)
    return fig


def _line_with_ci(ax, cells: dict, color, label: str) -> None:
    """Points joined by a line, with CI whiskers and a band (cells: x -> Cell, all present)."""
    if not cells:
        return
    xs = np.array(list(cells))
    ys = np.array([c.value for c in cells.values()])
    lo = np.array([c.ci_low for c in cells.values()])
    hi = np.array([c.ci_high for c in cells.values()])
    ax.plot(xs, ys, "o-", color=color, label=label, ms=4)
    if not np.isnan(lo).all():
        ax.errorbar(xs, ys, yerr=[ys - lo, hi - ys], fmt="none", ecolor=color, elinewidth=0.8, capsize=2)
        if len(xs) > 1:
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)


# --- distributional scores ---------------------------------------------------------------

METRICS = [(PAPER_SCORE, "Paper score / 100"), ("js_similarity", "1 − JS distance"),
           ("wasserstein_similarity", "1 − W1 / range")]


def distributional(res: Results) -> plt.Figure:
    """Ours: the paper's majority-answer score next to two scores against the full answer
    distribution, (a) averaged over countries per method, (b) per country."""
    rows = [(design.short_label(v, m), v, m) for v, m in design.MAIN_ROWS]
    rows += [("Uniform random", BASE, "baseline_uniform")]
    series = {}
    for metric, label in METRICS:
        scale = 100.0 if metric == PAPER_SCORE else 1.0
        cells = {}
        for name, v, m in rows:
            c = res.cell(v, m, AVG, metric)
            cells[name] = Cell(c.value / scale, c.ci_low / scale, c.ci_high / scale) if c.ok else c
        series[label] = cells
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.4), gridspec_kw={"width_ratios": [1.3, 1]})
    grouped_bars(ax1, [r[0] for r in rows], series)
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("Similarity (AVG over countries)", fontsize=8)
    ax1.set_title("(a) Three scores per method")
    plt.setp(ax1.get_xticklabels(), rotation=20, ha="right", fontsize=7)
    # legends below the tick and axis labels (closer, they overlap the longest method names)
    ax1.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.36), ncol=3, frameon=False)
    points = []
    for name, v, m in rows[:-1]:
        for c in res.countries:
            a, b = res.cell(v, m, c, PAPER_SCORE), res.cell(v, m, c, "js_similarity")
            if a.ok and b.ok:
                points.append((name, a.value, b.value))
    if points:
        pts = pd.DataFrame(points, columns=["method", "paper", "js"])
        sns.scatterplot(pts, x="paper", y="js", hue="method", style="method", ax=ax2, palette="colorblind", s=20)
        rho = pts[["paper", "js"]].corr(method="spearman").iloc[0, 1] if len(pts) > 2 else float("nan")
        ax2.set_title(f"(b) Per country and method (Spearman ρ = {rho:.2f})", fontsize=9)
        ax2.legend(fontsize=6, title=None, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, frameon=False)
    else:
        ax2.text(0.5, 0.5, "no per-country scores", ha="center", transform=ax2.transAxes)
        ax2.set_title("(b) Per country and method")
    ax2.set_xlabel("Paper score (majority answer)", fontsize=8)
    ax2.set_ylabel("1 − JS distance (distribution)", fontsize=8)
    fig.suptitle(f"{res.model}: majority-answer vs distributional alignment", fontsize=9)
    fig.tight_layout()
    notes = []
    for name, v, m in rows:
        c = res.cell(v, m, AVG, PAPER_SCORE)
        if not c.ok:
            notes.append(f"{MISSING_MARK} {name}: {c.missing}")
    add_notes(fig, notes, y=0.0)
    return fig
