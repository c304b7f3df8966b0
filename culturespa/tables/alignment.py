"""Tables read from a model's alignment scores (alignment.csv, alignment_by_topic.csv): the
paper's tables 1-5 and our per-topic table; the settings each one needs from the config."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from .. import design, io
from ..design import AVG, BASE, CULTURESPA, PAPER_SCORE
from ..methods import CULTURE_UNAWARE, LABELS as METHOD_LABELS, P1
from ..results import Cell, format_cell
from ..wvs import TOPIC_NAMES
from .cells import (Reasons, as_list, cell_fields, country_columns, csv_frame, display_frame, load_results,
                    score_note, score_rows, signed)
from .formats import MISSING, Table


# --- settings ---------------------------------------------------------------------------------------


def score_settings(evaluation: Mapping, scoring: Mapping, *, variants: Mapping, countries: Sequence[str],
                   source: str) -> dict:
    """What a score table needs besides the scores: the variants run (any other is 'not run'),
    the country order, and what its note says about the runs and the CI."""
    out = {"variants": {k: list(v) for k, v in variants.items()}, "countries": list(countries), "source": source,
           "scoring": {k: scoring.get(k) for k in ("n_boot", "ci_level")}}
    if source != "released":  # the released answers are one run of every item
        out["evaluation"] = {k: evaluation[k] for k in ("runs", "max_items")}
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
        out["evaluation"] = {k: evaluation[k] for k in ("runs", "max_items")}
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
    any_change_missing = False
    for method in design.COMBINED_METHODS:
        name = METHOD_LABELS.get(method, method)
        rows = [(f"{name}: base model", BASE, method), (f"{name}: CultureSPA", CULTURESPA, method)]
        sections.append(len(shown))
        rec, disp, cells = score_rows(res, rows, columns, reasons)
        records += rec
        shown += disp
        label = f"{name}: change (CultureSPA − base)"
        line = {"": label}
        for col in columns:
            base, tuned = cells[(rows[0][0], col)], cells[(rows[1][0], col)]
            if base.ok and tuned.ok:
                delta, why = tuned.value - base.value, ""
                line[col] = signed(delta)
            else:
                delta, why = math.nan, "needs both scores"
                line[col] = MISSING
                any_change_missing = True
            records.append({"row": label, "variant": "change", "method": method, "country": col,
                            "metric": f"{PAPER_SCORE}_change", "value": delta, "ci_low": math.nan,
                            "ci_high": math.nan, "n_valid": pd.NA, "n_invalid": pd.NA,
                            "status": "ok" if not why else "missing", "reason": why})
        shown.append(line)
    notes = [
        score_note(settings),
        "Change: CultureSPA's score minus the base model's with the same method (a difference of means; no CI).",
        *reasons.notes(columns),
        *([f"{MISSING} change: where either score is missing (see above)."] if any_change_missing else []),
    ]
    return Table(csv_frame(records), display_frame(shown, "Method"),
                 notes, sections=sections, stack_ci=True)


# --- 3. culture-joint vs culture-specific vs CCT ------------------------------------------------------


def joint_specific_cct(inputs: Mapping, settings: Mapping) -> Table:
    res = load_results(inputs["alignment"], settings)
    columns = country_columns(settings)
    rows = [("Base model + P1", BASE, P1)] + [(label, v, P1) for label, v in design.TRAINING_VARIANTS.items()]
    reasons = Reasons()
    records, shown, _ = score_rows(res, rows, columns, reasons)
    notes = [
        score_note(settings),
        "Culture-joint: one adapter on the pairs of every culture; culture-specific: one adapter per culture on its "
        "own pairs; CCT: culture-joint on pairs collected with cross-culture thinking (P2) prompts.",
        *reasons.notes(columns),
    ]
    return Table(csv_frame(records), display_frame(shown, "Model"),
                 notes, sections=[1], stack_ci=True)


# --- 4. sampling strategies ------------------------------------------------------------------------


def sampling_strategies(inputs: Mapping, settings: Mapping) -> Table:
    res = load_results(inputs["alignment"], settings)
    columns = country_columns(settings)
    rows = [("Base model + P1", BASE, P1)] + [(name, v, P1) for name, v in design.SAMPLING.items()]
    reasons = Reasons()
    records, shown, cells = score_rows(res, rows, columns, reasons)
    delta_col = f"Δ {AVG} vs base P1"
    delta_missing = False
    for rec in records:
        base = cells[("Base model + P1", rec["country"])]
        mine = cells[(rec["row"], rec["country"])]
        rec["change_vs_base"] = mine.value - base.value if base.ok and mine.ok and rec["variant"] != BASE else math.nan
    for line, (label, variant, _) in zip(shown, rows):
        base, mine = cells[("Base model + P1", AVG)], cells[(label, AVG)]
        if variant == BASE:
            line[delta_col] = ""
        elif base.ok and mine.ok:
            line[delta_col] = signed(mine.value - base.value)
        else:
            line[delta_col] = MISSING
            delta_missing = True
    notes = [
        score_note(settings),
        "CRQPC: pairs where the culture-aware answer differs from the culture-unaware one; RDS: random culture-aware "
        "answers; CDS: culture-aware answers that agree with the culture-unaware one; the same number per culture.",
        f"{delta_col}: the variant's {AVG} minus the base model's with P1 (the CSV has the change per country).",
        *reasons.notes(columns),
        *([f"{MISSING} {delta_col}: where either {AVG} score is missing (see above)."] if delta_missing else []),
    ]
    return Table(csv_frame(records), display_frame(shown, "Training data"), notes, sections=[1], stack_ci=True)


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
    score_col, pairs_col = f"{AVG} score (P1)", "Training pairs"
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
        shown.append({"Training data (%)": label, pairs_col: pairs_text, score_col: format_cell(cell)})
    notes = [
        score_note(settings),
        "Training data: the share of the CRQPC pairs (culture-aware setting) a culture-joint adapter is trained on; "
        "training pairs: the pair records read for training (train_stats.json n_records).",
    ]
    if not_run:
        notes.append(
            f"{MISSING} rows {', '.join(str(p) for p, _ in not_run)} (every column): not run: "
            f"{', '.join(v for _, v in not_run)} {'is' if len(not_run) == 1 else 'are'} not in sft.variants."
        )
    notes += reasons.notes()
    return Table(csv_frame(records), pd.DataFrame(shown), notes,
                 align=["l", "r", "r"], sections=[1])


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
            if not cell.ok and sub.table.empty and cell.missing.startswith("no result row"):
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
