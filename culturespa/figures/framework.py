"""Figure 2, the framework: the workflow's own rule graph, exported by Snakemake under the run's
config (``export_rulegraph``) and drawn coloured by CultureSPA step."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Mapping


from .. import io
from .lazy import plt
from .style import palette

log = logging.getLogger("culturespa")


STEPS = [  # (label, rule-name pattern) in pipeline order; first match wins
    ("Inputs (fetch, convert)", r"^(get_|convert_)"),
    ("1 Generate questions", r"^(generate_questions|filter_questions)"),
    ("2 Culture-unaware / culture-aware answers", r"^answer_"),
    ("3 Culture-related QA pairs", r"^(collect_pairs|join_pairs)"),
    ("4 SFT (4-bit QLoRA)", r"^(finetune_|summarise_adapters)"),
    ("Evaluation (WVS, MMLU)", r"^(evaluate_|score_|aggregate_|compare_)"),
    ("Figures, tables, report", r"^(figure|table_|released_table_|render_|plot_|export_|all$|paper$)"),
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


def export_rulegraph(snakefile: str, config: Mapping, out_path: str, target: str = "all") -> None:
    """Ask Snakemake for this workflow's rule graph under the run's own config (no lock: it only
    reads the DAG while the calling run holds the lock)."""
    import subprocess
    import sys
    import tempfile

    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        yaml.safe_dump(dict(config), fh)
    cmd = [sys.executable, "-m", "snakemake", target, "--rulegraph", "--nolock", "--snakefile", snakefile,
           "--configfile", fh.name]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        Path(fh.name).unlink(missing_ok=True)
    log.info("%s\n%s", " ".join(cmd), done.stderr)
    if done.returncode != 0 or "digraph" not in done.stdout:
        raise RuntimeError(f"snakemake --rulegraph failed ({done.returncode}): {done.stderr[-2000:]}")
    io.write_text(out_path, done.stdout[done.stdout.index("digraph"):])
