"""The option-order robustness tables (beyond the paper), from the tidy alignment table; the
figure (``figures.robustness``) shares this module's loader and notes.

* ``order_robustness_table(inputs, settings)``: per (variant, method), the paper score in each
  option order, the order-robust score (mean over orders) and the order consistency, per country
  and AVG, with CIs.
* ``order_diagnostics_table(inputs, settings)``: AVG only, one row per (variant, method): the
  scores, consistency, the uniform-normalised score, position bias and answer entropy beside the
  survey's.
* ``add_order_robust_column(table, results)``: the main results table with an "Order-robust AVG"
  column (``order_robust_cells`` gives its cells).

``inputs``: {"alignment": path of alignment.csv}; ``settings``: what ``tables.table_settings``
gives the alignment tables plus ``orders`` (``evaluation.orders``). A missing cell (an order not
run, or not released by the authors, who released the original order only) shows as missing
with its reason (``results.Results.cell``).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from .. import design
from ..design import AVG, BASE, PAPER_SCORE
from ..orders import MEAN, ORDERS, ORIGINAL, PERMUTED, REVERSED
from ..results import BASELINE_PREFIX, Cell, Results, format_cell
from ..robustness import (
    ANSWER_ENTROPY, CONSISTENCY, FIRST_SHARE, LAST_SHARE, NORMALISED, SURVEY_ENTROPY, SURVEY_FIRST_SHARE,
    SURVEY_LAST_SHARE,
)
from .cells import Reasons as _Reasons
from .cells import cell_fields as _missing_frame_values
from .cells import csv_frame as _frame
from .cells import display_frame as _display
from .cells import score_note as _score_note
from .formats import Table

ROBUST_COLUMN = f"Order-robust {AVG}"
ORDER_LABELS = {ORIGINAL: "original order", REVERSED: "reversed order", PERMUTED: "permuted order",
                MEAN: "order-robust (mean over orders)"}

CAPTIONS = {
    "order_robustness": (
        "Option-order robustness (beyond the paper): the alignment score with the options listed as in the survey "
        "(original) and in reverse, their mean (order-robust), and the share of questions answered the same in every "
        "order (consistency), per country and on average."
    ),
    "order_diagnostics": (
        "Order and baseline diagnostics (beyond the paper), averaged over countries: alignment per option order, "
        "consistency across orders, the alignment score rescaled so that 0 is uniform random answering, the share "
        "of answers on the first and last listed option and the normalised entropy of the model's answers, each "
        "beside the survey respondents' own value."
    ),
}

GAP_NOTE = (
    "Reading a gap: the answers are mapped back to the original options before scoring, so a model whose answers "
    "depend only on what the options say scores the same in every order, with consistency 1. A gap between the "
    "original and reversed scores, or a low consistency, means that part of the score comes from where the options "
    "are listed (position bias), not from the model's values; the order-robust score is the number that does not "
    "depend on one listing. A gain that holds in the order-robust score is not an artefact of the survey's "
    "option order."
)


def _orders_note(orders: Sequence[str]) -> str:
    run = ", ".join(o for o in ORDERS if o in orders)
    return (
        f"Orders run: {run}. Reversed lists the last option first; permuted lists each question's options in a random "
        "order seeded from evaluation.order_seed and the question id; the displayed options are numbered afresh "
        "(from 0 for the questions the survey numbers from 0), and in the self-alignment prompts (P3) the five "
        "answered examples are listed the same way. Order-robust: the mean over the orders run (its CI resamples the "
        "same questions in every order). Consistency: the share of questions whose mapped-back answer is the same in "
        "every order run."
    )


def order_settings(evaluation: Mapping, scoring: Mapping, *, variants: Mapping, countries: Sequence[str],
                   source: str) -> dict:
    """The main results' settings (with the orders run; the released answers: original only)."""
    from .alignment import main_results_settings

    return main_results_settings(evaluation, scoring, variants=variants, countries=countries, source=source)


def results(inputs: Mapping, settings: Mapping) -> Results:
    """The alignment table with the configured variants, countries and option orders; the
    reference baselines are scored with the base model and do not depend on the order."""
    variants = {k: list(v) for k, v in settings["variants"].items()}
    variants[BASE] = [*variants.get(BASE, []), *(m for m in _baseline_methods(settings) if m not in variants.get(BASE, []))]
    return Results.load(inputs["alignment"], settings.get("model", ""), variants, settings.get("countries"),
                        source=settings.get("source", "pipeline"), orders=settings.get("orders"))


def _baseline_methods(settings: Mapping) -> list[str]:
    from .alignment import baseline_methods

    return [m for m, _ in baseline_methods(settings)]


def _pairs(settings: Mapping) -> list[tuple[str, str, str]]:
    """(label, variant, method) rows: the main comparison (``design.MAIN_ROWS``) or ``settings["rows"]``."""
    pairs = settings.get("rows") or design.MAIN_ROWS
    return [(design.row_label(v, m), v, m) for v, m in pairs]


def _shown_orders(res: Results) -> list[str]:
    """Original and reversed always (a missing one says why), permuted when it was run."""
    return [ORIGINAL, REVERSED] + ([PERMUTED] if PERMUTED in res.orders else [])


def _record(label, variant, method, order, country, metric, cell: Cell) -> dict:
    return {"row": label, "variant": variant, "method": method, "order": order, "country": country,
            "metric": metric, **_missing_frame_values(cell)}


# --- the per-country table ----------------------------------------------------------------------


def order_robustness_table(inputs: Mapping, settings: Mapping) -> Table:
    res = results(inputs, settings)
    columns = [*settings["countries"], AVG]
    reasons = _Reasons()
    records, shown, sections = [], [], []
    lines = [(order, PAPER_SCORE, ORDER_LABELS[order]) for order in _shown_orders(res)]
    lines += [(MEAN, PAPER_SCORE, ORDER_LABELS[MEAN]), (MEAN, CONSISTENCY, "consistency (share of questions)")]
    for name, variant, method in _pairs(settings):
        sections.append(len(shown))
        for order, metric, what in lines:
            label = f"{name}: {what}"
            line = {"": label}
            for col in columns:
                cell = res.cell(variant, method, col, metric, order)
                records.append(_record(label, variant, method, order, col, metric, cell))
                line[col] = format_cell(cell)
                if not cell.ok:
                    reasons.add(label, col, cell.missing)
            shown.append(line)
    notes = [_score_note(settings), _orders_note(res.orders), GAP_NOTE, *reasons.notes(columns)]
    return Table(_frame(records), _display(shown, "Method"), notes, sections=sections[1:], stack_ci=True)


# --- the AVG diagnostics table ---------------------------------------------------------------------

DIAGNOSTIC_COLUMNS = [  # (column, metric, order; None = the summary order)
    ("Original", PAPER_SCORE, ORIGINAL),
    ("Reversed", PAPER_SCORE, REVERSED),
    ("Order-robust", PAPER_SCORE, MEAN),
    ("Consistency", CONSISTENCY, MEAN),
    ("Normalised", NORMALISED, None),
    ("First option", FIRST_SHARE, None),
    ("Survey: first", SURVEY_FIRST_SHARE, None),
    ("Last option", LAST_SHARE, None),
    ("Survey: last", SURVEY_LAST_SHARE, None),
    ("Entropy", ANSWER_ENTROPY, None),
    ("Survey entropy", SURVEY_ENTROPY, None),
]


def order_diagnostics_table(inputs: Mapping, settings: Mapping) -> Table:
    res = results(inputs, settings)
    summary = MEAN if len(res.orders) > 1 and res.source != "released" else ORIGINAL
    reasons = _Reasons()
    records, shown = [], []
    for name, variant, method in _pairs(settings):
        line = {"": name}
        for column, metric, order in DIAGNOSTIC_COLUMNS:
            order = order or summary
            cell = res.cell(variant, method, AVG, metric, order)
            records.append(_record(name, variant, method, order, AVG, metric, cell))
            line[column] = format_cell(cell)
            if not cell.ok:
                reasons.add(name, column, cell.missing)
        shown.append(line)
    where = "the mean over the orders run" if summary == MEAN else "the original order"
    notes = [
        _score_note(settings),
        _orders_note(res.orders),
        f"Normalised: 100 (S - U) / (100 - U), S the paper score and U the expected paper score of uniform random "
        f"answers on the same questions (0 = no better than random, negative = worse); first / last option: the "
        f"share of answers on the option listed first / last, beside the share of the country's respondents who "
        f"chose that option; entropy: of the model's distribution over the options divided by log K (0 = always "
        f"one answer, 1 = uniform; logprob mode: the option probabilities; generate mode: the answers over the "
        f"evaluation runs), beside the survey's. These columns: {where}.",
        GAP_NOTE,
        *reasons.notes([c for c, _, _ in DIAGNOSTIC_COLUMNS]),
    ]
    return Table(_frame(records), _display(shown, "Method"), notes, stack_ci=True)


# --- the main results table's extra column ---------------------------------------------------------


def order_robust_cells(res: Results, rows: Sequence[tuple[str, str]]) -> list[Cell]:
    """The "Order-robust AVG" cell of each (variant, method) row: the AVG paper score averaged
    over the option orders. A reference baseline's answers do not depend on the order: its own
    AVG."""
    out = []
    for variant, method in rows:
        if method.startswith(BASELINE_PREFIX):
            out.append(res.cell(variant, method, AVG, PAPER_SCORE, ORIGINAL))
        else:
            out.append(res.cell(variant, method, AVG, PAPER_SCORE, MEAN))
    return out


def add_order_robust_column(table: Table, res: Results) -> Table:
    """``table`` (``tables.main_results``) with the "Order-robust AVG" column after its columns; its
    frame gains an ``order`` column (``original`` for the cells it had, ``mean`` for the new ones)."""
    frame = table.frame.assign(order=ORIGINAL)
    rows = list(dict.fromkeys(zip(frame["row"], frame["variant"], frame["method"])))
    labels = list(table.display.iloc[:, 0])
    if [r[0] for r in rows] != labels:
        raise ValueError(f"{table.name}: the frame's rows {[r[0] for r in rows]} are not the display's {labels}")
    cells = order_robust_cells(res, [(v, m) for _, v, m in rows])
    display = table.display.copy()
    display[ROBUST_COLUMN] = [format_cell(c) for c in cells]
    reasons = _Reasons(every="every row")
    extra = []
    for (label, variant, method), cell in zip(rows, cells):
        order = ORIGINAL if method.startswith(BASELINE_PREFIX) else MEAN
        extra.append(_record(label, variant, method, order, AVG, PAPER_SCORE, cell))
        if not cell.ok:
            reasons.add(ROBUST_COLUMN, label, cell.missing)
    notes = [*table.notes,
             f"{ROBUST_COLUMN}: the {AVG} score averaged over the option orders run "
             f"({', '.join(o for o in ORDERS if o in res.orders)}); the reference rows do not depend on the order.",
             *reasons.notes(labels)]
    align = None if table.align is None else [*table.align, "r"]
    return dataclasses.replace(table, frame=_frame([*frame.to_dict("records"), *extra]), display=display,
                               notes=notes, align=align)
