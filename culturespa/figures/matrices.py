"""Figures drawn from the country x country matrices (matrices.csv, with alignment.csv for the
correlations and identification rates): figure 5 of the paper and our pluralism view."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
import pandas as pd

from .. import design
from ..design import AVG, BASE, CULTURESPA, P1
from ..results import Results
from .lazy import plt
from .style import MISSING_MARK, add_notes, matrix_panels


MATRIX_PANELS = [  # (title, variant, method): the model's country x country answers
    ("Culture-aware (P1)", BASE, P1),
    ("Self-alignment (P3)", BASE, design.P3),
    ("CultureSPA (P1)", CULTURESPA, P1),
]


def _model_panel(res: Results, matrices: pd.DataFrame, kind: str, title: str, variant: str, method: str, subtitle):
    """(title with ``subtitle(variant, method, frame)`` as its second line, matrix, reason) for
    ``matrix_panels``; the matrix is None, with the reason, where the variant or method was not run."""
    why = res.why_not_run(variant, method)
    frame = None if why else res.matrix(matrices, variant, kind, method)
    if frame is None:
        return title, None, why or "no matrix in the results"
    return f"{title}\n{subtitle(variant, method, frame)}", frame, None


def cross_cultural_matrices(res: Results, matrices: pd.DataFrame,
                            panels: Sequence[tuple[str, str, str]] = MATRIX_PANELS) -> plt.Figure:
    """Figure 5: country x country similarity of the WVS itself and of the model's answers given as
    each country, with each matrix's correlation with the WVS one."""
    from ..scoring import CROSS_CORRELATION, PERSONA_VS_PERSONA, REFERENCE

    no_r = defaultdict(list)  # why r is missing -> the panels it is missing for (said once, under the figure)

    def correlation(variant, method, frame):
        r = res.cell(variant, method, AVG, CROSS_CORRELATION)
        if r.ok:
            return f"r = {r.value:.2f}"
        no_r[r.missing].append(next(t for t, v, m in panels if (v, m) == (variant, method)))
        return f"r: {MISSING_MARK} (see below)"

    frames = [("WVS reference", res.matrix(matrices, BASE, REFERENCE), "no reference matrix in the results")]
    frames += [_model_panel(res, matrices, PERSONA_VS_PERSONA, *panel, correlation) for panel in panels]
    fig, _, notes = matrix_panels(frames, vmax=100.0, label="Similarity (alignment score)")
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
    from ..scoring import IDENTIFIED, PROMPTED_VS_SURVEY

    def identified(variant, method, frame):
        # the share is over the countries whose own prompt has a score (not those never answered)
        ident, n = res.cell(variant, method, AVG, IDENTIFIED), int(np.isfinite(np.diag(frame.to_numpy(float))).sum())
        return f"own culture best for {round(ident.value * n)}/{n}" if ident.ok else f"identification: {ident.missing}"

    panels = [("Base model, P1", BASE, P1), ("CultureSPA, P1", CULTURESPA, P1)]
    frames = [_model_panel(res, matrices, PROMPTED_VS_SURVEY, *panel, identified) for panel in panels]
    fig, axes, notes = matrix_panels(frames, size=2.8, diagonal=True, label="Alignment score")
    for ax in axes:
        if ax.collections:
            ax.set_ylabel("prompted as", fontsize=7)
            ax.set_xlabel("scored against (WVS)", fontsize=7)
    fig.suptitle(f"{res.model}: pluralism (outlined: own culture)", fontsize=9, y=1.04)
    add_notes(fig, notes)
    return fig
