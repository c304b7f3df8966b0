"""The paper's figures (and two of ours), drawn from the tidy results tables only.

Every function takes loaded tables and returns a matplotlib Figure; ``save`` writes PDF and PNG
atomically. A bar, point or panel with no result is never drawn as zero: it is marked and the
reason is printed under the figure. Colours come from seaborn's colour-blind palette, and bars
carry hatches so that the figures also read in greyscale print.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # rules run without a display

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from . import design, io  # noqa: E402
from .design import AVG, BASE, CULTURESPA, P1, PAPER_SCORE  # noqa: E402
from .results import Cell, Results  # noqa: E402

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


def _grouped_bars(ax, groups: Sequence[str], series: Mapping[str, Mapping[str, Cell]], baseline: float = 0.0,
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


def _value_range(series: Mapping[str, Mapping[str, Cell]], pad: float = 5.0) -> tuple[float, float]:
    vals = [v for cells in series.values() for c in cells.values() if c.ok
            for v in (c.value, c.ci_low, c.ci_high) if not math.isnan(v)]
    if not vals:
        return 0.0, 100.0
    return max(0.0, min(vals) - pad), min(100.0, max(vals) + pad)


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
    lo, hi = _value_range(series)
    notes = _grouped_bars(ax, groups, series, baseline=lo)
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


# --- figure 2 -------------------------------------------------------------------------------

STEPS = [  # (label, rule-name pattern) in pipeline order; first match wins
    ("Inputs (fetch, convert)", r"^(get_|convert_)"),
    ("1 Generate questions", r"^(generate_questions|filter_questions)"),
    ("2 Culture-unaware / culture-aware answers", r"^answer_"),
    ("3 Culture-related QA pairs", r"^collect_pairs"),
    ("4 SFT (4-bit QLoRA)", r"^finetune_"),
    ("Evaluation (WVS, MMLU)", r"^(evaluate_|score_|aggregate_|compare_)"),
    ("Figures, tables, report", r"^(figure_|render_|plot_|export_|all$|paper$)"),
]


def parse_rulegraph(dot: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Nodes (id -> rule name) and edges (from, to) of ``snakemake --rulegraph`` output."""
    nodes = dict(re.findall(r'^\s*(\d+)\s*\[\s*label\s*=\s*"([^"]+)"', dot, flags=re.M))
    edges = re.findall(r"^\s*(\d+)\s*->\s*(\d+)", dot, flags=re.M)
    if not nodes:
        raise ValueError("no rules found in the rule graph")
    return nodes, [(a, b) for a, b in edges if a in nodes and b in nodes]


def step_of(rule: str) -> int:
    for k, (_, pattern) in enumerate(STEPS):
        if re.search(pattern, rule):
            return k
    return len(STEPS) - 1


RENDER_STEP = len(STEPS) - 1


def framework(dot: str) -> plt.Figure:
    """Figure 2: the workflow's own rule graph, top to bottom, coloured by CultureSPA step. The
    rendering rules (figures, tables) are summarised in one box to keep the pipeline readable."""
    import networkx as nx

    nodes, edges = parse_rulegraph(dot)
    render = sorted(r for r in nodes.values() if step_of(r) == RENDER_STEP and r not in ("all", "paper"))
    keep = {n for n, r in nodes.items() if step_of(r) != RENDER_STEP}
    g = nx.DiGraph()
    g.add_nodes_from(keep)
    g.add_edges_from((a, b) for a, b in edges if a in keep and b in keep)
    labels = {n: nodes[n] for n in keep}
    if render:
        labels["render"] = f"figures and tables ({len(render)} rules)"
        sinks = [n for n in keep if g.out_degree(n) == 0 and step_of(nodes[n]) == RENDER_STEP - 1]
        g.add_node("render")
        g.add_edges_from((n, "render") for n in sinks)
    layers = [list(layer) for layer in nx.topological_generations(g)]
    # order each layer by the mean position of its inputs (fewer crossings), then pack by label width
    x_of: dict[str, float] = {}
    widths = {n: len(labels[n]) + 4.0 for n in g}
    for layer in layers:
        def key(n):
            preds = [x_of[p] for p in g.predecessors(n) if p in x_of]
            return (sum(preds) / len(preds) if preds else 0.0, step_of(labels[n]), labels[n])
        layer.sort(key=key)
        total = sum(widths[n] for n in layer)
        left = -total / 2
        for n in layer:
            x_of[n] = left + widths[n] / 2
            left += widths[n]
    span = max(sum(widths[n] for n in layer) for layer in layers)
    fig, ax = plt.subplots(figsize=(min(12.0, max(4.0, 0.075 * span + 0.5)), 0.62 * len(layers) + 0.8))
    colors = palette(len(STEPS))
    boxes = {}
    for y, layer in enumerate(layers):
        for n in layer:
            k = RENDER_STEP if n == "render" else step_of(labels[n])
            boxes[n] = ax.text(x_of[n], -y, labels[n], ha="center", va="center", fontsize=7, zorder=3,
                               bbox=dict(boxstyle="round,pad=0.4", fc=(*colors[k], 0.3), ec=colors[k], lw=1.2))
    for a, b in g.edges:
        ax.annotate("", xy=(0.5, 1.0), xycoords=boxes[b], xytext=(0.5, 0.0), textcoords=boxes[a], zorder=1,
                    arrowprops=dict(arrowstyle="-|>", color="0.5", lw=0.7, shrinkA=1, shrinkB=1))
    used = sorted({RENDER_STEP if n == "render" else step_of(labels[n]) for n in g})
    handles = [plt.Rectangle((0, 0), 1, 1, fc=(*colors[k], 0.3), ec=colors[k]) for k in used]
    ax.legend(handles, [STEPS[k][0] for k in used], loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
              fontsize=7, title="CultureSPA step", title_fontsize=7)
    ax.set_xlim(-span / 2 - 1, span / 2 + 1)
    ax.set_ylim(-len(layers) + 0.5, 0.5)
    ax.axis("off")
    ax.set_title("The CultureSPA framework as this workflow runs it (Snakemake rule graph)", fontsize=9)
    if render:
        fig.text(0.01, 0.0, "figures and tables: " + ", ".join(render), fontsize=6, color="0.3", ha="left",
                 va="top", wrap=True)
    return fig


# --- figure 3 -------------------------------------------------------------------------------


def data_distribution(stats: pd.DataFrame, topic_stats: pd.DataFrame) -> plt.Figure:
    """Figure 3: the collected culture-related pairs (CRQPC) per topic and per culture.

    ``stats``/``topic_stats`` are the pair statistics, with a ``setting`` column when several
    answer settings (P1, CCT) were collected."""
    stats = stats.assign(setting=stats.get("setting", "culture_aware"))
    topic_stats = topic_stats.assign(setting=topic_stats.get("setting", "culture_aware"))
    crqpc = topic_stats[topic_stats["set"] == "CRQPC"]
    per_topic = crqpc.groupby(["setting", "topic", "topic_name"], as_index=False)["n_pairs"].sum()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.2), gridspec_kw={"width_ratios": [1.25, 1]})
    sns.barplot(per_topic, y="topic_name", x="n_pairs", hue="setting", ax=ax1, palette="colorblind",
                edgecolor="0.25", linewidth=0.4)
    ax1.set_ylabel("")
    ax1.set_xlabel("Culture-related QA pairs (all cultures)")
    ax1.set_title("(a) Pairs per WVS topic")
    ax1.tick_params(axis="y", labelsize=6.5)
    sns.barplot(stats, x="culture", y="diff", hue="setting", ax=ax2, palette="colorblind", edgecolor="0.25",
                linewidth=0.4)
    for container, (_, sub) in zip(ax2.containers, stats.groupby("setting", sort=False)):
        rates = [f"{r:.0%}" for r in sub["diff_rate"]]
        ax2.bar_label(container, labels=rates, fontsize=5.5, padding=1)
    ax2.set_xlabel("")
    ax2.set_ylabel("Pairs (answers that changed)")
    ax2.set_title("(b) Pairs per culture (label: diff rate)")
    plt.setp(ax2.get_xticklabels(), rotation=90, fontsize=6.5)
    settings = list(dict.fromkeys(stats["setting"]))
    for ax in (ax1, ax2):
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
        if ax.get_legend() is not None:
            if len(settings) > 1:
                ax.legend(fontsize=6, title=None, loc="best")
            else:
                ax.get_legend().remove()
    ax1.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax2.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax2.margins(y=0.12)
    fig.suptitle(f"Collected culture-related data ({', '.join(settings)} answers)", fontsize=9)
    fig.tight_layout()
    notes = []
    if stats["diff"].sum() == 0:
        notes.append("No pairs were collected: the culture-aware answers never differed from the culture-unaware ones.")
    add_notes(fig, notes)
    return fig


# --- figure 4 -------------------------------------------------------------------------------


def _delta(cell: Cell, base: Cell) -> Cell:
    if not cell.ok:
        return cell
    if not base.ok:
        return Cell(missing=f"baseline P1 {base.missing}")
    return Cell(cell.value - base.value)


def sampling_strategies(res: Results) -> plt.Figure:
    """Figure 4: change in alignment per country against the P1 baseline, for each sampling strategy."""
    groups = [*res.countries, AVG]
    base = res.series(BASE, P1, countries=groups)
    series = {
        name: {g: _delta(c, base[g]) for g, c in res.series(variant, P1, countries=groups).items()}
        for name, variant in design.SAMPLING.items()
    }
    fig, ax = plt.subplots(figsize=(max(4.5, min(FULL_WIDTH, 0.38 * len(groups) + 1.2)), 2.5))
    notes = _grouped_bars(ax, groups, series)
    ax.axhline(0, color="0.2", lw=0.8)
    ax.axvline(len(groups) - 1.5, color="0.6", lw=0.6)
    ax.set_ylabel("Δ alignment vs P1")
    ax.set_title(f"{res.model}: data sampling strategies (fine-tuned, answering with P1)")
    ax.legend(ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    plt.setp(ax.get_xticklabels(), fontsize=7)
    add_notes(fig, notes, y=BELOW_LEGEND)
    return fig


# --- figure 5 and the pluralism view -------------------------------------------------------

MATRIX_PANELS = [  # (title, variant, method): the model's country x country answers
    ("Culture-aware (P1)", BASE, P1),
    ("Self-alignment (P3)", BASE, design.P3),
    ("CultureSPA (P1)", CULTURESPA, P1),
]


def _heatmap(ax, frame: pd.DataFrame, title: str, vmin: float, vmax: float, diagonal: bool = False):
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


def _matrix_panels(panels, vmin=None, vmax=None, size: float = 2.2, diagonal: bool = False, label: str = ""):
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
        _heatmap(ax, frame, wrapped, vmin, vmax, diagonal)
    cbar = fig.colorbar(axes[0].collections[0], ax=axes, shrink=0.8, fraction=0.03, pad=0.02)
    cbar.set_label(label, fontsize=7)
    cbar.ax.tick_params(labelsize=6)
    return fig, axes, notes


def _model_panel(res: Results, matrices: pd.DataFrame, kind: str, title: str, variant: str, method: str, subtitle):
    """(title with ``subtitle(variant, method, frame)`` as its second line, matrix, reason) for
    ``_matrix_panels``; the matrix is None, with the reason, where the variant or method was not run."""
    why = res.why_not_run(variant, method)
    frame = None if why else res.matrix(matrices, variant, kind, method)
    if frame is None:
        return title, None, why or "no matrix in the results"
    return f"{title}\n{subtitle(variant, method, frame)}", frame, None


def cross_cultural_matrices(res: Results, matrices: pd.DataFrame,
                            panels: Sequence[tuple[str, str, str]] = MATRIX_PANELS) -> plt.Figure:
    """Figure 5: country x country similarity of the WVS itself and of the model's answers given as
    each country, with each matrix's correlation with the WVS one."""
    from .scoring import CROSS_CORRELATION, PERSONA_VS_PERSONA, REFERENCE

    no_r = defaultdict(list)  # why r is missing -> the panels it is missing for (said once, under the figure)

    def correlation(variant, method, frame):
        r = res.cell(variant, method, AVG, CROSS_CORRELATION)
        if r.ok:
            return f"r = {r.value:.2f}"
        no_r[r.missing].append(next(t for t, v, m in panels if (v, m) == (variant, method)))
        return f"r: {MISSING_MARK} (see below)"

    frames = [("WVS reference", res.matrix(matrices, BASE, REFERENCE), "no reference matrix in the results")]
    frames += [_model_panel(res, matrices, PERSONA_VS_PERSONA, *panel, correlation) for panel in panels]
    fig, _, notes = _matrix_panels(frames, vmax=100.0, label="Similarity (alignment score)")
    fig.suptitle(f"{res.model}: cross-cultural alignment matrices (r: correlation with the WVS)", fontsize=9,
                 y=1.04)
    n_drawn = sum(frame is not None for _, frame, _ in frames[1:])
    for reason, titles in no_r.items():
        where = "every panel" if len(titles) == n_drawn else ", ".join(titles)
        notes.append(f"{MISSING_MARK} r ({where}): {reason}")
    add_notes(fig, notes)
    return fig


def pluralism(res: Results, matrices: pd.DataFrame) -> plt.Figure:
    """Ours: the model prompted as each country (rows) scored against each country's survey
    (columns). A pluralistic model is best on the diagonal; the title gives how often it is."""
    from .scoring import IDENTIFIED, PROMPTED_VS_SURVEY

    def identified(variant, method, frame):
        # the share is over the countries whose own prompt has a score (not those never answered)
        ident, n = res.cell(variant, method, AVG, IDENTIFIED), int(np.isfinite(np.diag(frame.to_numpy(float))).sum())
        return f"own culture best for {round(ident.value * n)}/{n}" if ident.ok else f"identification: {ident.missing}"

    panels = [("Base model, P1", BASE, P1), ("CultureSPA, P1", CULTURESPA, P1)]
    frames = [_model_panel(res, matrices, PROMPTED_VS_SURVEY, *panel, identified) for panel in panels]
    fig, axes, notes = _matrix_panels(frames, size=2.8, diagonal=True, label="Alignment score")
    for ax in axes:
        if ax.collections:
            ax.set_ylabel("prompted as", fontsize=7)
            ax.set_xlabel("scored against (WVS)", fontsize=7)
    fig.suptitle(f"{res.model}: pluralism (outlined: own culture)", fontsize=9, y=1.04)
    add_notes(fig, notes)
    return fig


# --- figure 6 -------------------------------------------------------------------------------


def data_quantity(res: Results) -> plt.Figure:
    """Figure 6: average alignment against the fraction of the culture-related data used."""
    cells = {p: res.cell(design.fraction_variant(p), P1, AVG) for p in design.FRACTIONS}
    ok = {p: c for p, c in cells.items() if c.ok}
    fig, ax = plt.subplots(figsize=(3.4, 2.5))
    colors = palette(3)
    if ok:
        xs = np.array(list(ok))
        ys = np.array([c.value for c in ok.values()])
        lo = np.array([c.ci_low for c in ok.values()])
        hi = np.array([c.ci_high for c in ok.values()])
        ax.plot(xs, ys, "o-", color=colors[0], label="CultureSPA (P1), 95% CI", ms=4)
        if not np.isnan(lo).all():
            ax.errorbar(xs, ys, yerr=[ys - lo, hi - ys], fmt="none", ecolor=colors[0], elinewidth=0.8, capsize=2)
            if len(xs) > 1:
                ax.fill_between(xs, lo, hi, color=colors[0], alpha=0.15, lw=0)
    for k, (label, method) in enumerate((("Culture-aware (P1)", P1), ("Culture-unaware", design.CULTURE_UNAWARE)), 1):
        c = res.cell(BASE, method, AVG)
        if c.ok:
            ax.axhline(c.value, color=colors[k], ls="--" if k == 1 else ":", lw=1, label=f"Base model, {label}")
    ax.set_xlim(0, 105)
    ax.set_xticks(list(design.FRACTIONS))
    ax.set_xlabel("Training data used (%)")
    ax.set_ylabel("Average alignment score")
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
    add_notes(fig, notes)
    return fig


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
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.0), gridspec_kw={"width_ratios": [1.3, 1]})
    _grouped_bars(ax1, [r[0] for r in rows], series)
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("Similarity (AVG over countries)", fontsize=8)
    ax1.set_title("(a) Three scores per method")
    plt.setp(ax1.get_xticklabels(), rotation=20, ha="right", fontsize=7)
    ax1.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=3, frameon=False)
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
        ax2.set_title(f"(b) Per country and method: Spearman ρ = {rho:.2f}")
        ax2.legend(fontsize=6, title=None, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, frameon=False)
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


# --- glue for the figure rules ---------------------------------------------------------------

DRAW = {  # design.ALIGNMENT_FIGURES -> drawing function of (Results, matrices)
    "figure1_alignment": lambda res, mats: alignment_by_country(res),
    "figure4_sampling": lambda res, mats: sampling_strategies(res),
    "figure5_matrices": cross_cultural_matrices,
    "figure6_data_quantity": lambda res, mats: data_quantity(res),
    "figure_pluralism": pluralism,
    "figure_distributional": lambda res, mats: distributional(res),
}


def render(figure: str, inputs, params, outputs, model: str | None = None) -> None:
    """Draw one figure from its rule's named inputs into outputs.pdf / outputs.png."""
    set_style()
    if figure == "figure2_framework":
        fig = framework(Path(inputs.rulegraph).read_text())
    elif figure == "figure3_data":
        stats = pd.concat([io.read_csv(p).assign(setting=s) for p, s in zip(inputs.stats, params.settings)])
        topics = pd.concat([io.read_csv(p).assign(setting=s) for p, s in zip(inputs.topic_stats, params.settings)])
        fig = data_distribution(stats, topics)
    elif figure in DRAW:
        s = params.settings
        res = Results.load(inputs.alignment, model, s["variants"], s["countries"], source=s["source"])
        fig = DRAW[figure](res, io.read_csv(inputs.matrices))
    else:
        raise ValueError(f"unknown figure {figure!r}")
    save(fig, outputs.pdf, outputs.png)
