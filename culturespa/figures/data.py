"""Figure 3: the culture-related QA pairs collected (the pair statistics of step 3)."""

from __future__ import annotations

import pandas as pd

from .lazy import plt, sns, ticker
from .style import FULL_WIDTH, add_notes


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
    ax1.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax2.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax2.margins(y=0.12)
    fig.suptitle(f"Collected culture-related data ({', '.join(settings)} answers)", fontsize=9)
    fig.tight_layout()
    notes = []
    if stats["diff"].sum() == 0:
        notes.append("No pairs were collected: the culture-aware answers never differed from the culture-unaware ones.")
    add_notes(fig, notes)
    return fig
