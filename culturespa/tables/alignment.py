"""Tables read from a model's alignment scores (alignment.csv, alignment_by_topic.csv): the
paper's tables 1-5 and our per-topic table; the settings each one needs from the config."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from .. import design, io
from ..cultures import catalogue_from_config, continents_of
from ..design import AVG, BASE, CULTURESPA, PAPER_SCORE
from ..methods import CULTURE_UNAWARE, LABELS as METHOD_LABELS, P1
from ..results import Cell, format_cell
from ..wvs import TOPIC_NAMES
from .cells import (DELTA_NOTE, Reasons, as_list, cell_fields, country_columns, csv_frame, delta_rows, display_frame,
                    load_results, score_note, score_rows)
from .formats import MISSING, Table


# --- settings ---------------------------------------------------------------------------------------


def score_settings(evaluation: Mapping, scoring: Mapping, *, variants: Mapping, countries: Sequence[str],
                   source: str) -> dict:
    """What a score table needs besides the scores: the variants run (any other is 'not run'),
    the country order, and what its note says about the runs and the CI."""
    out = {"variants": {k: list(v) for k, v in variants.items()}, "countries": list(countries), "source": source,
           "scoring": {k: scoring.get(k) for k in ("n_boot", "ci_level")}}
    if source != "released":  # the released answers are one run of every item
        out["evaluation"] = {k: evaluation.get(k) for k in ("runs", "max_items", "max_items_by_method")}
    return out


def main_results_settings(evaluation: Mapping, scoring: Mapping, *, variants: Mapping, countries: Sequence[str],
                          source: str) -> dict:
    """``score_settings``, the country whose survey majority answers are a reference row, and the
    option orders run (the order-robust column)."""
    out = score_settings(evaluation, scoring, variants=variants, countries=countries, source=source)
    out["scoring"]["majority_baseline"] = scoring.get("majority_baseline")
    # the released answers have the original order only: with more orders configured, their cells say so
    out["orders"] = list(evaluation.get("orders", ["original"]))
    return out


def topic_settings(evaluation: Mapping, *, variants: Mapping, countries: Sequence[str], source: str) -> dict:
    """The per-topic table has no CI: the variants, countries and runs only."""
    out = {"variants": {k: list(v) for k, v in variants.items()}, "countries": list(countries), "source": source}
    if source != "released":
        out["evaluation"] = {k: evaluation.get(k) for k in ("runs", "max_items", "max_items_by_method")}
    return out


# --- 1. main results ------------------------------------------------------------------------------


def baseline_methods(settings: Mapping) -> list[tuple[str, str]]:
    majority = (settings.get("scoring") or {}).get("majority_baseline", "USA")
    return [
        ("baseline_uniform", "Uniform random answers (reference)"),
        (f"baseline_majority_{majority}", f"{majority} survey majority answers (reference)"),
    ]


def main_results(inputs: Mapping, settings: Mapping) -> Table:
    baselines = baseline_methods(settings)
    res = load_results(inputs["alignment"], settings, [m for m, _ in baselines])
    columns = country_columns(settings)
    rows = [(design.row_label(v, m), v, m) for v, m in design.MAIN_ROWS]
    rows += [(label, BASE, m) for m, label in baselines]
    reasons = Reasons()
    records, shown, _ = score_rows(res, rows, columns, reasons)
    notes = [
        score_note(settings),
        "Reference rows: uniform random answers (mean over seeded draws; the CI is the spread over draws) and "
        "one country's survey majority answers given for every country.",
        *reasons.notes(columns),
    ]
    table = Table(csv_frame(records), display_frame(shown, "Method"), notes,
                  sections=[len(design.MAIN_ROWS) - 1, len(design.MAIN_ROWS)], stack_ci=True)
    if len(settings.get("orders") or []) < 2:
        return table
    from . import robustness

    return robustness.add_order_robust_column(table, robustness.results(inputs, settings))


# --- 2. CultureSPA combined with P1/P2/P3 -----------------------------------------------------------


def combined_prompting(inputs: Mapping, settings: Mapping) -> Table:
    res = load_results(inputs["alignment"], settings)
    columns = country_columns(settings)
    reasons = Reasons()
    records, shown, sections = [], [], []
    for method in design.COMBINED_METHODS:
        name = METHOD_LABELS.get(method, method)
        rows = [(f"{name}: base model", BASE, method), (f"{name}: CultureSPA", CULTURESPA, method)]
        sections.append(len(shown))
        rec, disp, _ = score_rows(res, rows, columns, reasons)
        delta, delta_disp, _ = delta_rows(res, [(f"{name}: Δ CultureSPA − base", (CULTURESPA, method), (BASE, method))],
                                          columns, reasons)
        records += rec + delta
        shown += disp + delta_disp
    notes = [score_note(settings), DELTA_NOTE, *reasons.notes(columns)]
    return Table(csv_frame(records), display_frame(shown, "Method"), notes, sections=sections, stack_ci=True)


# the paired differences the tables share: each training variant against the base model's P1, joint
# against specific and CCT; CRQPC against its sampling controls
CONTROLS = {name: v for name, v in design.SAMPLING.items() if v != CULTURESPA}
TRAINING_DELTAS = [(f"Δ {label} − base P1", (v, P1), (BASE, P1)) for label, v in design.TRAINING_VARIANTS.items()]
TRAINING_DELTAS += [("Δ Culture-joint − culture-specific", (CULTURESPA, P1), (design.SPECIFIC, P1)),
                    ("Δ Culture-joint − CCT", (CULTURESPA, P1), (design.CCT, P1))]
CONTROL_DELTAS = [(f"Δ CRQPC − {name}", (CULTURESPA, P1), (v, P1)) for name, v in CONTROLS.items()]


# --- 3. culture-joint vs culture-specific vs CCT ------------------------------------------------------


def joint_specific_cct(inputs: Mapping, settings: Mapping) -> Table:
    res = load_results(inputs["alignment"], settings)
    columns = country_columns(settings)
    rows = [("Base model + P1", BASE, P1)] + [(label, v, P1) for label, v in design.TRAINING_VARIANTS.items()]
    reasons = Reasons()
    records, shown, _ = score_rows(res, rows, columns, reasons)
    rec, disp, _ = delta_rows(res, TRAINING_DELTAS, columns, reasons)
    notes = [
        score_note(settings),
        "Culture-joint: one adapter on the pairs of every culture; culture-specific: one adapter per culture on its "
        "own pairs; CCT: culture-joint on pairs collected with cross-culture thinking (P2) prompts.",
        DELTA_NOTE,
        *reasons.notes(columns),
    ]
    return Table(csv_frame(records + rec), display_frame(shown + disp, "Model"),
                 notes, sections=[1, len(rows)], stack_ci=True)


# --- 4. sampling strategies ------------------------------------------------------------------------


def sampling_strategies(inputs: Mapping, settings: Mapping) -> Table:
    res = load_results(inputs["alignment"], settings)
    columns = country_columns(settings)
    rows = [("Base model + P1", BASE, P1)] + [(name, v, P1) for name, v in design.SAMPLING.items()]
    reasons = Reasons()
    records, shown, _ = score_rows(res, rows, columns, reasons)
    deltas = [(f"Δ {name} − base P1", (v, P1), (BASE, P1)) for name, v in design.SAMPLING.items()]
    rec, disp, _ = delta_rows(res, deltas + CONTROL_DELTAS, columns, reasons)
    notes = [
        score_note(settings),
        "CRQPC: pairs where the culture-aware answer differs from the culture-unaware one; RDS: random culture-aware "
        "answers; CDS: culture-aware answers that agree with the culture-unaware one; the same number per culture.",
        DELTA_NOTE,
        *reasons.notes(columns),
    ]
    return Table(csv_frame(records + rec), display_frame(shown + disp, "Training data"), notes,
                 sections=[1, len(rows)], stack_ci=True)


# --- per continent: the main comparisons on each continent's countries -------------------------------


def continent_settings(evaluation: Mapping, scoring: Mapping, cultures: Sequence[Mapping],
                       extra_cultures: Sequence[Mapping], *, variants: Mapping, countries: Sequence[str],
                       source: str) -> dict:
    """``score_settings`` and the continents of the run's countries (name -> codes, from the
    catalogue): the columns of ``by_continent``."""
    out = score_settings(evaluation, scoring, variants=variants, countries=countries, source=source)
    catalogue = catalogue_from_config({"cultures": cultures, "extra_cultures": extra_cultures})
    out["continents"] = continents_of(countries, catalogue)
    return out


def by_continent(inputs: Mapping, settings: Mapping) -> Table:
    """The prompting methods on the base model and every training variant answering with P1, per
    continent and on average, with the paired differences the paper's claims rest on."""
    res = load_results(inputs["alignment"], settings)
    continents = settings["continents"]
    columns = [*continents, AVG]
    rows = [(design.row_label(v, m), v, m) for v, m in design.MAIN_ROWS if v == BASE]
    rows += [(f"{label} + P1", v, P1) for label, v in design.TRAINING_VARIANTS.items()]
    rows += [(f"{name} (joint) + P1", v, P1) for name, v in CONTROLS.items()]
    reasons = Reasons()
    records, shown, _ = score_rows(res, rows, columns, reasons)
    rec, disp, _ = delta_rows(res, TRAINING_DELTAS + CONTROL_DELTAS, columns, reasons)
    groups = "; ".join(f"{name}: {', '.join(codes)}" for name, codes in continents.items())
    # a table aggregated before the continent rows existed: one note, not one per cell
    scored = set(res.table["country"])
    absent = [c for c in continents if c not in scored]
    unaggregated = []
    if absent:
        reasons.drop_no_rows(absent)
        unaggregated = [f"{MISSING} {', '.join(absent)} (every row): no per-continent rows in alignment.csv (it was "
                        "aggregated before they were added; `--forcerun aggregate_alignment` adds them)."]
    notes = [
        score_note(settings),
        f"Continents: the mean over the continent's countries with a score, its CI from the same resampled "
        f"questions for every country, as {AVG}'s ({groups}).",
        DELTA_NOTE,
        *unaggregated,
        *reasons.notes(columns),
    ]
    n_base = sum(1 for _, v, _ in rows if v == BASE)
    return Table(csv_frame(records + rec), display_frame(shown + disp, "Model"), notes,
                 sections=[n_base, len(rows)], stack_ci=True)


# --- 5. data quantity ------------------------------------------------------------------------------


def _train_stats(paths) -> dict[str, dict]:
    """variant -> train_stats.json of a joint adapter (results/{model}/sft/{variant}/train_stats.json)."""
    out = {}
    for p in as_list(paths):
        out[Path(p).parent.name] = io.read_json(p)
    return out


def data_quantity(inputs: Mapping, settings: Mapping) -> Table:
    res = load_results(inputs["alignment"], settings)
    stats = _train_stats(inputs.get("train_stats", []))
    reasons = Reasons(every="every row")
    records, shown, not_run = [], [], []
    rows = [(0, BASE)] + [(p, design.fraction_variant(p)) for p in design.FRACTIONS]
    score_col, pairs_col, delta_col = f"{AVG} score (P1)", "Training pairs", f"Δ {AVG} vs base P1"
    for percent, variant in rows:
        label = "0 (base model)" if variant == BASE else f"{percent}" + (" (CultureSPA)" if variant == CULTURESPA else "")
        cell = res.cell(variant, P1, AVG)
        configured = variant in settings["variants"]
        if variant == BASE:
            n_pairs, pairs_text = 0, "0"
        elif variant in stats and stats[variant].get("n_records") is not None:
            n_pairs = int(stats[variant]["n_records"])
            pairs_text = str(n_pairs)
        else:
            n_pairs, pairs_text = pd.NA, MISSING
            if configured:
                reasons.add(pairs_col, label, "no train_stats.json among the inputs")
        if not configured:
            not_run.append((percent, variant))
        elif not cell.ok:
            reasons.add(score_col, label, cell.missing)
        records.append({"percent": percent, "variant": variant, "method": P1, "country": AVG, "metric": PAPER_SCORE,
                        "n_pairs": n_pairs, **cell_fields(cell)})
        delta_text = ""
        if variant != BASE:
            delta = res.cell(variant, P1, AVG, design.delta_metric(BASE, P1))
            records.append({"percent": percent, "variant": variant, "method": P1, "country": AVG,
                            "metric": design.delta_metric(BASE, P1), "n_pairs": n_pairs, **cell_fields(delta)})
            delta_text = format_cell(delta, sign=True)
            if configured and not delta.ok and cell.ok:
                reasons.add(delta_col, label, delta.missing)
        shown.append({"Training data (%)": label, pairs_col: pairs_text, score_col: format_cell(cell),
                      delta_col: delta_text})
    notes = [
        score_note(settings),
        "Training data: the share of the CRQPC pairs (culture-aware setting) a culture-joint adapter is trained on; "
        "training pairs: the pair records read for training (train_stats.json n_records).",
        DELTA_NOTE,
    ]
    if not_run:
        notes.append(
            f"{MISSING} rows {', '.join(str(p) for p, _ in not_run)} (every column): not run: "
            f"{', '.join(v for _, v in not_run)} {'is' if len(not_run) == 1 else 'are'} not in sft.variants."
        )
    notes += reasons.notes()
    return Table(csv_frame(records), pd.DataFrame(shown), notes,
                 align=["l", "r", "r", "r"], sections=[1])


# --- 13. alignment per topic ---------------------------------------------------------------------


TOPIC_ROWS = [(BASE, CULTURE_UNAWARE), (BASE, P1), (CULTURESPA, P1)]


def alignment_by_topic(inputs: Mapping, settings: Mapping) -> Table:
    res = load_results(inputs["by_topic"], settings)
    columns = [(design.row_label(v, m), v, m) for v, m in TOPIC_ROWS]
    reasons = Reasons(every="every topic")
    table = res.table
    records, shown, empty_topics = [], [], []
    no_items = "no WVS item of this topic was evaluated" + (
        " (the evaluation.max_items sample has none)" if (settings.get("evaluation") or {}).get("max_items") else "")
    topics = [f"{t}: {name}" for t, name in enumerate(TOPIC_NAMES)]
    for t, name in enumerate(TOPIC_NAMES):
        sub = dataclasses.replace(res, table=table[table["topic"].astype(int) == t])
        line = {"Topic": topics[t]}
        for label, v, m in columns:
            cell = sub.cell(v, m, AVG)
            if cell.no_row and sub.table.empty:
                cell = Cell(missing=no_items)
                if t not in empty_topics:
                    empty_topics.append(t)
            line[label] = format_cell(cell, ci=False)
            if not cell.ok and cell.missing != no_items:
                reasons.add(label, str(t), cell.missing)
            rec = cell_fields(cell)
            del rec["ci_low"], rec["ci_high"]
            records.append({"topic": t, "topic_name": name, "variant": v, "method": m, "country": AVG,
                            "metric": PAPER_SCORE, **rec})
        shown.append(line)
    notes = [
        "Cells: the paper's alignment score (0-100) on the WVS items of the topic, averaged over the countries with a "
        "score"
        + (" (the authors' released answers)." if settings.get("source") == "released" else
           f" (mean over {(settings.get('evaluation') or {}).get('runs', 1)} run(s)); no CI."),
        *([f"{MISSING} topic {', '.join(map(str, empty_topics))} (every column): {no_items}."] if empty_topics else []),
        *reasons.notes([str(t) for t in range(len(TOPIC_NAMES))]),
    ]
    return Table(csv_frame(records), pd.DataFrame(shown), notes,
                 align=["l", "r", "r", "r"])
