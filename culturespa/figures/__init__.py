"""The paper's figures (and two of ours), drawn from the tidy results tables only.

- ``registry``: one spec per figure (name, caption file, builder, input names, settings),
  ``draw`` and ``render``;
- ``lazy``: pyplot and seaborn imported on first use (the Snakefile imports this package);
- ``style``: the look (``set_style``, ``palette``), ``save``, ``add_notes`` and the shared bars
  and heatmaps;
- the builders, by what they read: ``alignment`` (figures 1, 4, 6, distributional),
  ``matrices`` (figure 5, pluralism), ``data`` (figure 3), ``framework`` (figure 2, with the
  rule-graph export and parsing).

Every builder returns a matplotlib Figure. A bar, point or panel with no result is never drawn as
zero: it is marked and the reason is printed under the figure.
"""

from .alignment import alignment_by_country, data_quantity, distributional, sampling_strategies
from .data import data_distribution
from .framework import STEPS, export_rulegraph, parse_rulegraph, step_of  # the builder: framework.framework
from .matrices import MATRIX_PANELS, cross_cultural_matrices, pluralism
from .registry import (FIGURES, MODEL_FIGURES, REGISTRY, RELEASED_FIGURES, SPECS, FigureSpec, draw, reading, render,
                       settings, spec)
from .style import add_notes, palette, save, set_style

__all__ = ["FIGURES", "MATRIX_PANELS", "MODEL_FIGURES", "REGISTRY", "RELEASED_FIGURES", "SPECS", "STEPS", "FigureSpec",
           "add_notes", "alignment_by_country", "cross_cultural_matrices", "data_distribution", "data_quantity",
           "distributional", "draw", "export_rulegraph", "palette", "parse_rulegraph", "pluralism",
           "reading", "render", "sampling_strategies", "save", "set_style", "settings", "spec", "step_of"]
