"""Figure 3: the culture-related QA pairs collected (the pair statistics of step 3)."""

from __future__ import annotations

import pandas as pd

from ..methods import LABELS as METHOD_LABELS
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
    # one colour per setting in both panels, in the order the rule lists them
    settings = list(dict.fromkeys(stats["setting"]))
    names = {s: METHOD_LABELS.get(s, s) for s in settings}
    stats = stats.assign(setting=stats["setting"].map(names))
    per_topic = per_topic.assign(setting=per_topic["setting"].map(names))
    order = list(names.values())
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.2), gridspec_kw={"width_ratios": [1.25, 1]})
    sns.barplot(per_topic, y="topic_name", x="n_pairs", hue="setting", hue_order=order, ax=ax1,
                palette="colorblind", edgecolor="0.25", linewidth=0.4)
    ax1.set_ylabel("")
    ax1.set_xlabel("Culture-related QA pairs (all cultures)")
    ax1.set_title("(a) Pairs per WVS topic")
    ax1.tick_params(axis="y", labelsize=6.5)
    sns.barplot(stats, x="culture", y="diff", hue="setting", hue_order=order, ax=ax2, palette="colorblind",
                edgecolor="0.25", linewidth=0.4)
    crowded = len(stats) > 12  # 18 cultures x 2 settings: upright labels would overlap
    for container, name in zip(ax2.containers, order):
        rates = [f"{r:.0%}" for r in stats.loc[stats["setting"] == name, "diff_rate"]]
        ax2.bar_label(container, labels=rates, fontsize=4.5 if crowded else 5.5, padding=1,
                      rotation=90 if crowded else 0)
    ax2.set_xlabel("")
    ax2.set_ylabel("Pairs (answers that changed)")
    ax2.set_title("(b) Pairs per culture (label: diff rate)")
    plt.setp(ax2.get_xticklabels(), rotation=90, fontsize=6.5)
    handles, labels = ax2.get_legend_handles_labels()
    for ax in (ax1, ax2):
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    ax1.xaxis.set_major_locator(ticker.MaxNLocator(nbins=5, integer=True))
    ax2.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax2.margins(y=0.18 if crowded else 0.12)
    fig.suptitle(f"Collected culture-related data ({', '.join(order)} answers)", fontsize=9)
    if len(order) > 1:  # one legend for both panels, below them (inside, it covers bars and labels)
        fig.legend(handles, labels, loc="lower center", ncol=len(order), fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    else:
        fig.tight_layout()
    notes = []
    if stats["diff"].sum() == 0:
        notes.append("No pairs were collected: the culture-aware answers never differed from the culture-unaware ones.")
    add_notes(fig, notes)
    return fig
