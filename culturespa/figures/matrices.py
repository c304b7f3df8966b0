"""Figures drawn from the country x country matrices (matrices.csv, with alignment.csv for the
correlations and identification rates): figure 5 of the paper and our pluralism view."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from .. import design
from ..design import AVG, BASE, CULTURESPA, P1
from ..results import Results
from .style import add_notes, matrix_panels


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

    def correlation(variant, method, frame):
        r = res.cell(variant, method, AVG, CROSS_CORRELATION)
        return f"r = {r.value:.2f}" if r.ok else f"r: {r.missing}"

    frames = [("WVS reference", res.matrix(matrices, BASE, REFERENCE), "no reference matrix in the results")]
    frames += [_model_panel(res, matrices, PERSONA_VS_PERSONA, *panel, correlation) for panel in panels]
    fig, _, notes = matrix_panels(frames, vmax=100.0, label="Similarity (alignment score)")
    fig.suptitle(f"{res.model}: cross-cultural alignment matrices (r: correlation with the WVS)", fontsize=9,
                 y=1.04)
    add_notes(fig, notes)
    return fig


def pluralism(res: Results, matrices: pd.DataFrame) -> plt.Figure:
    """Ours: the model prompted as each country (rows) scored against each country's survey
    (columns). A pluralistic model is best on the diagonal; the title gives how often it is."""
    from ..scoring import IDENTIFIED, PROMPTED_VS_SURVEY

    def identified(variant, method, frame):
        ident, n = res.cell(variant, method, AVG, IDENTIFIED), len(frame)
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
