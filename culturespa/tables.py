"""Every table of the paper, rendered from the results files (never by re-running a model).

One builder per table turns its inputs (paths of results files) and settings (from the config,
passed by the rule) into a ``Table``:

- ``frame``: what the CSV holds, for machines: numbers, an empty cell where a value is missing,
  and ``status`` / ``reason`` columns saying why;
- ``display``: the cells Markdown and LaTeX show, with "—" for a missing value;
- ``caption`` and ``notes``: what the numbers are, and why each missing cell is missing.

Nothing is filled in: a missing cell is never a zero. Missing means the variant or method was not
run (not in the config), the run left no row, or every answer was invalid (``results.Cell``).

Writers: ``write_csv``, ``write_markdown`` (a caption line, a pipe table, notes) and
``write_latex`` (a ``table`` float with booktabs rules, escaped text, notes in footnote size);
``render`` builds one table by name and writes all three.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from . import design, io
from .design import AVG, BASE, CULTURESPA, PAPER_SCORE
from .errors import CultureSPAError
from .methods import CULTURE_UNAWARE, LABELS as METHOD_LABELS, P1
from .results import Cell, Results, format_cell
from .wvs import TOPIC_NAMES

MISSING = "—"
FORMATS = ("csv", "md", "tex")

TABLES = [
    "main_results",
    "combined_prompting",
    "joint_specific_cct",
    "sampling_strategies",
    "data_quantity",
    "general_ability",
    "collected_pairs",
    "question_filtering",
    "topic_distribution",
    "example_questions",
    "hyperparameters",
    "prompt_templates",
    "alignment_by_topic",
]
# the tables that the authors' released answers (results/released/{model}/) can fill
RELEASED_TABLES = ["main_results", "alignment_by_topic"]
# tables read from alignment.csv alone
ALIGNMENT_TABLES = ("main_results", "combined_prompting", "joint_specific_cct", "sampling_strategies")

CAPTIONS = {
    "main_results": (
        "Culture alignment of the base model with the prompting methods (culture-unaware, P1, P2, P3) and of "
        "CultureSPA answering with P1, per country and on average; reference rows: uniform random answers and "
        "one country's survey majority answers given for every country."
    ),
    "combined_prompting": (
        "CultureSPA combined with the prompting methods: each method on the base model and on CultureSPA "
        "(culture-joint), and the change."
    ),
    "joint_specific_cct": (
        "Culture-joint vs culture-specific CultureSPA, and culture-joint training on pairs collected with "
        "cross-culture thinking (CCT, P2); every model answers with P1."
    ),
    "sampling_strategies": (
        "Training data sampling: culture-related QA pairs (CRQPC) vs random (RDS) and culture-unrelated (CDS) "
        "samples of the same size per culture; culture-joint models answering with P1."
    ),
    "data_quantity": (
        "Alignment of culture-joint CultureSPA trained on a growing share of the CRQPC pairs (answering with P1)."
    ),
    "general_ability": (
        "General ability: MMLU accuracy per category of the base model and of the fine-tuned models, and the change."
    ),
    "collected_pairs": (
        "Culture-related QA pairs collected per culture: questions with a valid culture-unaware and culture-aware "
        "answer, how many of the two answers agree and differ, and the size of each pair set."
    ),
    "question_filtering": "Generated questions kept after each filter: the paper's four filters, then ours.",
    "topic_distribution": (
        "Generated questions per WVS topic through the filters and in the final pool, and the culture-related "
        "QA pairs (CRQPC) collected per topic."
    ),
    "example_questions": (
        "One generated question per WVS topic (the first of the topic in the final pool) with its options."
    ),
    "hyperparameters": (
        "Settings of this run: fine-tuning, answering, question generation, pair collection, evaluation and scoring."
    ),
    "prompt_templates": (
        "Prompt templates of answering (per method) and of question generation; {name} marks a placeholder."
    ),
    "alignment_by_topic": (
        "Culture alignment per WVS topic, averaged over the countries: the base model culture-unaware and with "
        "P1, and CultureSPA answering with P1."
    ),
}

SETTING_LABELS = {"culture_aware": "Culture-aware (P1)", "cross_culture": "Cross-culture thinking (P2)"}


# --- the table object and its writers -------------------------------------------------------------


@dataclass
class Table:
    """One table: ``frame`` for the CSV, ``display`` (strings) for Markdown and LaTeX."""

    name: str
    frame: pd.DataFrame
    display: pd.DataFrame
    caption: str
    notes: list[str] = field(default_factory=list)
    # LaTeX column types, one per display column (default: l for text, r for numbers)
    align: list[str] | None = None
    # display row positions that start a new group (a \midrule before them)
    sections: list[int] = field(default_factory=list)
    # LaTeX: "value [lo, hi]" cells as the value over a small CI line (keeps wide tables legible)
    stack_ci: bool = False

    def column_types(self) -> list[str]:
        if self.align is not None:
            return list(self.align)
        return ["l" if i == 0 or not _numeric_column(self.display[c]) else "r"
                for i, c in enumerate(self.display.columns)]


def _numeric_column(values: pd.Series) -> bool:
    shown = [v for v in values if v not in (MISSING, "")]
    return bool(shown) and all(re.fullmatch(r"[+\-−]?[0-9.,]+( \[.*\])?%?", str(v)) for v in shown)


def write_csv(table: Table, path) -> None:
    io.write_csv(path, table.frame)


def markdown(table: Table) -> str:
    cols = list(table.display.columns)
    types = table.column_types()
    lines = [f"**{_md(table.caption)}**", ""]
    lines.append("| " + " | ".join(_md(c) for c in cols) + " |")
    lines.append("| " + " | ".join("---:" if t == "r" else "---" for t in types) + " |")
    for _, row in table.display.iterrows():
        lines.append("| " + " | ".join(_md(row[c]) for c in cols) + " |")
    if table.notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {_md(n, cell=False)}" for n in table.notes]
    return "\n".join(lines) + "\n"


def write_markdown(table: Table, path) -> None:
    io.write_text(path, markdown(table))


def _md(text, cell: bool = True) -> str:
    text = str(text)
    if cell:
        text = text.replace("|", r"\|").replace("\r\n", "\n").replace("\n", "<br>")
    return text


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "Δ": r"$\Delta$",
    "±": r"$\pm$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "−": r"$-$",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_escape(text) -> str:
    """Text safe in LaTeX's text mode: the ten special characters, <, >, a few symbols; newlines
    become \\newline (for p columns)."""
    out = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(text))
    return out.replace("\r\n", "\n").replace("\n", r"\newline ")


def latex(table: Table) -> str:
    cols = list(table.display.columns)
    types = table.column_types()
    wide = len(cols) > 7 and not any(t.startswith("p") for t in types)
    out = [
        f"% {table.name}: generated by culturespa from the results files; needs \\usepackage{{booktabs}}"
        + (" and graphicx" if wide else ""),
        r"\begin{table}[htbp]",
        r"\centering",
        f"\\caption{{{latex_escape(table.caption)}}}",
        f"\\label{{tab:{table.name}}}",
    ]
    if wide:
        out.append(r"\resizebox{\textwidth}{!}{%")
    out.append(f"\\begin{{tabular}}{{{''.join(types)}}}")
    out.append(r"\toprule")
    out.append(" & ".join(latex_escape(c) for c in cols) + r" \\")
    out.append(r"\midrule")
    cell = _latex_stacked if table.stack_ci else latex_escape
    for i, (_, row) in enumerate(table.display.iterrows()):
        if i in table.sections and i > 0:
            out.append(r"\midrule")
        out.append(" & ".join(cell(row[c]) for c in cols) + r" \\")
    out.append(r"\bottomrule")
    out.append(r"\end{tabular}" + ("%" if wide else ""))
    if wide:
        out.append("}")
    if table.notes:
        out.append(r"\par\smallskip")
        body = r" \newline ".join(latex_escape(n) for n in table.notes)
        out.append(f"{{\\footnotesize\\raggedright Notes: {body}\\par}}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


_WITH_CI = re.compile(r"^(\S+) (\[[^\]]+\])$")


def _latex_stacked(text) -> str:
    m = _WITH_CI.match(str(text))
    if not m:
        return latex_escape(text)
    return (r"\begin{tabular}[t]{@{}r@{}}" + latex_escape(m.group(1)) + r"\\{\scriptsize "
            + latex_escape(m.group(2)) + r"}\end{tabular}")


def write_latex(table: Table, path) -> None:
    io.write_text(path, latex(table))


# --- missing cells and their reasons --------------------------------------------------------------


class _Reasons:
    """Why cells are missing, grouped: '<what>, <where>: <reason>' with 'where' shortened to
    'every column' (or row) when the reason covers them all."""

    def __init__(self, every: str = "every column"):
        self.every = every
        self.found: dict[tuple[str, str], list[str]] = {}

    def add(self, what: str, where: str, reason: str) -> None:
        self.found.setdefault((what, reason), []).append(where)

    def notes(self, all_where: Sequence[str] | None = None) -> list[str]:
        out = []
        for (what, reason), wheres in self.found.items():
            if all_where is not None and list(wheres) == list(all_where):
                place = self.every
            else:
                place = ", ".join(wheres)
            out.append(f"{MISSING} {what} ({place}): {reason}.")
        return out


def _missing_frame_values(cell: Cell) -> dict:
    """CSV fields of a cell: numbers when present, empty (NA) when missing; counts only when a
    run counted answers (an all-invalid cell), never a zero for a cell that was not run."""
    counted = cell.ok or cell.n_valid or cell.n_invalid
    return {
        "value": cell.value if cell.ok else math.nan,
        "ci_low": cell.ci_low if cell.ok else math.nan,
        "ci_high": cell.ci_high if cell.ok else math.nan,
        "n_valid": cell.n_valid if counted else pd.NA,
        "n_invalid": cell.n_invalid if counted else pd.NA,
        "status": "ok" if cell.ok else "missing",
        "reason": "" if cell.ok else cell.missing,
    }


def _frame(records: list[dict], columns: Sequence[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=columns)
    for c in ("n_valid", "n_invalid", "n", "n_pairs"):
        if c in frame.columns:
            frame[c] = frame[c].astype("Int64")
    return frame


def _signed(x: float, digits: int = 2) -> str:
    return f"{x:+.{digits}f}"


# --- settings and inputs ----------------------------------------------------------------------


def _results(path, settings: Mapping, extra_methods: Sequence[str] = ()) -> Results:
    """The alignment table with the configured variants (plus ``extra_methods`` on the base
    model: the baselines, which scoring adds to every run)."""
    variants = {k: list(v) for k, v in settings["variants"].items()}
    if extra_methods:
        variants[BASE] = [*variants.get(BASE, []), *extra_methods]
    return Results.load(path, settings.get("model", ""), variants, settings.get("countries"),
                        source=settings.get("source", "pipeline"))


def _columns(settings: Mapping) -> list[str]:
    return [*settings["countries"], AVG]


def _score_note(settings: Mapping) -> str:
    scoring = settings.get("scoring") or {}
    ci = scoring.get("ci_level", 0.95)
    boot = scoring.get("n_boot")
    if settings.get("source") == "released":
        runs = "the answers the authors released (one run, every WVS item with survey data)"
    else:
        ev = settings.get("evaluation") or {}
        runs_n = ev.get("runs", 1)
        items = ev.get("max_items")
        sample = f"a seeded sample of {items} WVS items" if items else "every WVS item with survey data"
        runs = f"the mean over {runs_n} evaluation run{'s' if runs_n != 1 else ''} on {sample}"
    return (
        f"Cells: the paper's alignment score (0-100; 100 = the country's WVS majority answers), {runs}; in "
        f"brackets the {ci:.0%} percentile bootstrap CI over questions"
        + (f" ({boot} resamples)" if boot else "")
        + f". {AVG}: the mean over the countries with a score (its CI resamples the same questions for every country)."
    )


def _score_rows(results: Results, rows: Sequence[tuple[str, str, str]], columns: Sequence[str],
                reasons: _Reasons, ci: bool = True) -> tuple[list[dict], list[dict], dict]:
    """CSV records and display rows for (label, variant, method) rows over ``columns``; also the
    cells by (label, column)."""
    records, shown, cells = [], [], {}
    for label, variant, method in rows:
        line = {"": label}
        for col in columns:
            cell = results.cell(variant, method, col)
            cells[(label, col)] = cell
            records.append({"row": label, "variant": variant, "method": method, "country": col,
                            "metric": PAPER_SCORE, **_missing_frame_values(cell)})
            line[col] = format_cell(cell, ci=ci)
            if not cell.ok:
                reasons.add(label, col, cell.missing)
        shown.append(line)
    return records, shown, cells


def _display(rows: list[dict], first: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame.rename(columns={"": first})


# --- 1. main results ------------------------------------------------------------------------------


def baseline_methods(settings: Mapping) -> list[tuple[str, str]]:
    majority = (settings.get("scoring") or {}).get("majority_baseline", "USA")
    return [
        ("baseline_uniform", "Uniform random answers (reference)"),
        (f"baseline_majority_{majority}", f"{majority} survey majority answers (reference)"),
    ]


def main_results(inputs: Mapping, settings: Mapping) -> Table:
    baselines = baseline_methods(settings)
    res = _results(inputs["alignment"], settings, [m for m, _ in baselines])
    columns = _columns(settings)
    rows = [(design.row_label(v, m), v, m) for v, m in design.MAIN_ROWS]
    rows += [(label, BASE, m) for m, label in baselines]
    reasons = _Reasons()
    records, shown, _ = _score_rows(res, rows, columns, reasons)
    notes = [
        _score_note(settings),
        "Reference rows: uniform random answers (mean over seeded draws; the CI is the spread over draws) and "
        "one country's survey majority answers given for every country.",
        *reasons.notes(columns),
    ]
    return Table("main_results", _frame(records), _display(shown, "Method"), CAPTIONS["main_results"], notes,
                 sections=[len(design.MAIN_ROWS) - 1, len(design.MAIN_ROWS)], stack_ci=True)


# --- 2. CultureSPA combined with P1/P2/P3 -----------------------------------------------------------


def combined_prompting(inputs: Mapping, settings: Mapping) -> Table:
    res = _results(inputs["alignment"], settings)
    columns = _columns(settings)
    reasons = _Reasons()
    records, shown, sections = [], [], []
    any_change_missing = False
    for method in design.COMBINED_METHODS:
        name = METHOD_LABELS.get(method, method)
        rows = [(f"{name}: base model", BASE, method), (f"{name}: CultureSPA", CULTURESPA, method)]
        sections.append(len(shown))
        rec, disp, cells = _score_rows(res, rows, columns, reasons)
        records += rec
        shown += disp
        label = f"{name}: change (CultureSPA − base)"
        line = {"": label}
        for col in columns:
            base, tuned = cells[(rows[0][0], col)], cells[(rows[1][0], col)]
            if base.ok and tuned.ok:
                delta, why = tuned.value - base.value, ""
                line[col] = _signed(delta)
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
        _score_note(settings),
        "Change: CultureSPA's score minus the base model's with the same method (a difference of means; no CI).",
        *reasons.notes(columns),
        *([f"{MISSING} change: where either score is missing (see above)."] if any_change_missing else []),
    ]
    return Table("combined_prompting", _frame(records), _display(shown, "Method"), CAPTIONS["combined_prompting"],
                 notes, sections=sections, stack_ci=True)


# --- 3. culture-joint vs culture-specific vs CCT ------------------------------------------------------


def joint_specific_cct(inputs: Mapping, settings: Mapping) -> Table:
    res = _results(inputs["alignment"], settings)
    columns = _columns(settings)
    rows = [("Base model + P1", BASE, P1)] + [(label, v, P1) for label, v in design.TRAINING_VARIANTS.items()]
    reasons = _Reasons()
    records, shown, _ = _score_rows(res, rows, columns, reasons)
    notes = [
        _score_note(settings),
        "Culture-joint: one adapter on the pairs of every culture; culture-specific: one adapter per culture on its "
        "own pairs; CCT: culture-joint on pairs collected with cross-culture thinking (P2) prompts.",
        *reasons.notes(columns),
    ]
    return Table("joint_specific_cct", _frame(records), _display(shown, "Model"), CAPTIONS["joint_specific_cct"],
                 notes, sections=[1], stack_ci=True)


# --- 4. sampling strategies ------------------------------------------------------------------------


def sampling_strategies(inputs: Mapping, settings: Mapping) -> Table:
    res = _results(inputs["alignment"], settings)
    columns = _columns(settings)
    rows = [("Base model + P1", BASE, P1)] + [(name, v, P1) for name, v in design.SAMPLING.items()]
    reasons = _Reasons()
    records, shown, cells = _score_rows(res, rows, columns, reasons)
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
            line[delta_col] = _signed(mine.value - base.value)
        else:
            line[delta_col] = MISSING
            delta_missing = True
    notes = [
        _score_note(settings),
        "CRQPC: pairs where the culture-aware answer differs from the culture-unaware one; RDS: random culture-aware "
        "answers; CDS: culture-aware answers that agree with the culture-unaware one; the same number per culture.",
        f"{delta_col}: the variant's {AVG} minus the base model's with P1 (the CSV has the change per country).",
        *reasons.notes(columns),
        *([f"{MISSING} {delta_col}: where either {AVG} score is missing (see above)."] if delta_missing else []),
    ]
    return Table("sampling_strategies", _frame(records), _display(shown, "Training data"),
                 CAPTIONS["sampling_strategies"], notes, sections=[1], stack_ci=True)


# --- 5. data quantity ------------------------------------------------------------------------------


def _train_stats(paths) -> dict[str, dict]:
    """variant -> train_stats.json of a joint adapter (results/{model}/sft/{variant}/train_stats.json)."""
    out = {}
    for p in _as_list(paths):
        out[Path(p).parent.name] = io.read_json(p)
    return out


def data_quantity(inputs: Mapping, settings: Mapping) -> Table:
    res = _results(inputs["alignment"], settings)
    stats = _train_stats(inputs.get("train_stats", []))
    reasons = _Reasons(every="every row")
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
                        "n_pairs": n_pairs, **_missing_frame_values(cell)})
        shown.append({"Training data (%)": label, pairs_col: pairs_text, score_col: format_cell(cell)})
    notes = [
        _score_note(settings),
        "Training data: the share of the CRQPC pairs (culture-aware setting) a culture-joint adapter is trained on; "
        "training pairs: the pair records read for training (train_stats.json n_records).",
    ]
    if not_run:
        notes.append(
            f"{MISSING} rows {', '.join(str(p) for p, _ in not_run)} (every column): not run: "
            f"{', '.join(v for _, v in not_run)} {'is' if len(not_run) == 1 else 'are'} not in sft.variants."
        )
    notes += reasons.notes()
    return Table("data_quantity", _frame(records), pd.DataFrame(shown), CAPTIONS["data_quantity"], notes,
                 align=["l", "r", "r"], sections=[1])


# --- 6. general ability (MMLU) -----------------------------------------------------------------------


def general_ability(inputs: Mapping, settings: Mapping) -> Table:
    mmlu = settings.get("mmlu") or {}
    variants = list(mmlu.get("variants") or [])
    reasons = _Reasons(every="every category")
    path = inputs.get("mmlu")
    if not path:
        why = "MMLU not configured (mmlu.zip is null)"
        frame = _frame([{"variant": v, "category": "", "metric": "", "value": math.nan, "ci_low": math.nan,
                         "ci_high": math.nan, "n": pd.NA, "status": "missing", "reason": why} for v in variants or [""]])
        display = pd.DataFrame([{"Category": MISSING, "Base model": MISSING,
                                 **{design.variant_label(v): MISSING for v in variants}}])
        return Table("general_ability", frame, display, CAPTIONS["general_ability"],
                     [f"{MISSING} every cell: {why}; set mmlu.zip and mmlu.mapping to run it."])
    table = io.read_csv(path, required=["variant", "category", "metric", "value", "ci_low", "ci_high", "n"])
    categories = list(dict.fromkeys(table["category"]))
    records, shown = [], []
    for cat in categories:
        line = {"Category": cat}
        sub = table[table.category == cat]
        base_rows = sub[sub.metric == "accuracy_base"]
        n = int(sub["n"].iloc[0]) if len(sub) else pd.NA
        line["n"] = str(n)
        if base_rows.empty or pd.isna(base_rows["value"].iloc[0]):
            line["Base model"] = MISSING
            reasons.add("Base model", cat, "no base accuracy in mmlu.csv")
            records.append({"variant": BASE, "category": cat, "metric": "accuracy", "value": math.nan,
                            "ci_low": math.nan, "ci_high": math.nan, "n": n, "status": "missing",
                            "reason": "no base accuracy in mmlu.csv"})
        else:
            b = base_rows.iloc[0]
            line["Base model"] = _pct(b.value, b.ci_low, b.ci_high)
            records.append({"variant": BASE, "category": cat, "metric": "accuracy", "value": b.value,
                            "ci_low": b.ci_low, "ci_high": b.ci_high, "n": n, "status": "ok", "reason": ""})
        for v in variants:
            label = design.variant_label(v)
            for metric, col in (("accuracy", label), ("delta", f"Δ {label}")):
                rows = sub[(sub.variant == v) & (sub.metric == metric)]
                if v not in settings.get("variants", {v: []}):
                    why = f"not run: {v} is not in sft.variants"
                elif rows.empty:
                    why = f"no result row for {v}/{cat}/{metric} in mmlu.csv"
                elif pd.isna(rows["value"].iloc[0]):
                    reason = rows["reason"].iloc[0] if "reason" in rows else None  # mmlu.compare's (not trained)
                    why = reason if isinstance(reason, str) and reason else "no scored questions"
                else:
                    why = ""
                if why:
                    line[col] = MISSING
                    reasons.add(col, cat, why)
                    records.append({"variant": v, "category": cat, "metric": metric, "value": math.nan,
                                    "ci_low": math.nan, "ci_high": math.nan, "n": n, "status": "missing",
                                    "reason": why})
                    continue
                r = rows.iloc[0]
                line[col] = _pct(r.value, r.ci_low, r.ci_high, signed=metric == "delta")
                records.append({"variant": v, "category": cat, "metric": metric, "value": r.value,
                                "ci_low": r.ci_low, "ci_high": r.ci_high, "n": int(r.n), "status": "ok",
                                "reason": ""})
        shown.append(line)
    subjects = mmlu.get("subjects")
    notes = [
        "Accuracy in % (the CSV holds proportions) on MMLU test questions, "
        f"{mmlu.get('k_shot', 5)}-shot"
        + (f", subjects {', '.join(subjects)}" if subjects else ", every subject")
        + (f", at most {mmlu['max_per_subject']} per subject" if mmlu.get("max_per_subject") else "")
        + "; n: questions per category. In brackets the 95% bootstrap CI; Δ: the tuned model's accuracy minus the "
        "base model's on the same questions, with a paired bootstrap CI.",
        *reasons.notes(categories),
    ]
    return Table("general_ability", _frame(records), pd.DataFrame(shown), CAPTIONS["general_ability"], notes)


def _pct(value, lo, hi, signed: bool = False) -> str:
    fmt = (lambda x: f"{100 * x:+.1f}") if signed else (lambda x: f"{100 * x:.1f}")
    text = fmt(value)
    if not (pd.isna(lo) or pd.isna(hi)):
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text


# --- 7. collected pairs ------------------------------------------------------------------------------


def collected_pairs(inputs: Mapping, settings: Mapping) -> Table:
    configured = list(settings.get("pair_settings") or [])
    paths = dict(zip(configured, _as_list(inputs.get("pairs_stats", []))))
    strategies = [s.upper() for s in settings.get("strategies") or ("crqpc", "rds", "cds")]
    several = len(configured) > 1
    reasons = _Reasons(every="every culture")
    records, shown, sections = [], [], []
    for setting in configured:
        stats = io.read_csv(paths[setting], required=["culture", "valid", "same", "diff", "diff_rate"])
        sections.append(len(shown))
        total = {"culture": "Total", **{k: int(stats[k].sum()) for k in ("valid", "same", "diff")}}
        total["diff_rate"] = total["diff"] / total["valid"] if total["valid"] else math.nan
        for k in ("invalid_unaware", "invalid_aware", "missing_aware", "cds_shortfall",
                  *(f"n_{s}" for s in strategies)):
            if k in stats.columns:
                total[k] = int(stats[k].sum())
        for rec in [*stats.to_dict("records"), total]:
            rec = {"setting": setting, **rec}
            line = {"Setting": SETTING_LABELS.get(setting, setting)} if several else {}
            line.update({"Culture": rec["culture"], "Valid": str(int(rec["valid"])), "Same": str(int(rec["same"])),
                         "Diff": str(int(rec["diff"]))})
            if pd.isna(rec["diff_rate"]):
                line["Diff rate (%)"] = MISSING
                reasons.add("Diff rate (%)", f"{setting}/{rec['culture']}", "no question with two valid answers")
                rec["status"], rec["reason"] = "missing", "diff_rate: no question with two valid answers"
            else:
                line["Diff rate (%)"] = f"{100 * rec['diff_rate']:.1f}"
            for s in strategies:
                col = f"{s} pairs"
                if f"n_{s}" in rec and not pd.isna(rec[f"n_{s}"]):
                    line[col] = str(int(rec[f"n_{s}"]))
                else:
                    line[col] = MISSING
                    reasons.add(col, f"{setting}/{rec['culture']}", f"no n_{s} column in stats.csv")
            line["Invalid (unaware / aware)"] = (
                f"{int(rec.get('invalid_unaware', 0))} / {int(rec.get('invalid_aware', 0))}"
                if "invalid_unaware" in rec else MISSING
            )
            rec.setdefault("status", "ok")
            rec.setdefault("reason", "")
            records.append(rec)
            shown.append(line)
    notes = [
        "Valid: questions of the pool with a valid culture-unaware and a valid culture-aware answer for the culture; "
        "same / diff: the two answers agree / differ; diff rate = diff / valid. CRQPC pairs: the differing answers "
        "(the training data); RDS and CDS: the control sets of the same size (random answers; agreeing answers).",
        "Invalid: questions whose culture-unaware / culture-aware answer was missing or invalid (not counted as valid).",
    ]
    shortfall = [r for r in records if r.get("cds_shortfall") and r["culture"] != "Total"]
    if shortfall:
        notes.append("CDS shortfall (fewer agreeing answers than CRQPC pairs): "
                     + ", ".join(f"{r['setting']}/{r['culture']} {int(r['cds_shortfall'])}" for r in shortfall) + ".")
    for setting in ("culture_aware", "cross_culture"):
        if setting not in configured:
            notes.append(f"{MISSING} {SETTING_LABELS[setting]} pairs: not collected ({setting} is not in pairs.settings).")
    notes += reasons.notes()
    frame = pd.DataFrame.from_records(records)
    if not records:
        display = pd.DataFrame([{"Culture": MISSING}])
    else:
        display = pd.DataFrame(shown)
    return Table("collected_pairs", frame, display, CAPTIONS["collected_pairs"], notes,
                 sections=[s for s in sections if s] + [i for i, r in enumerate(shown) if r["Culture"] == "Total"])


# --- 8. question filtering ------------------------------------------------------------------------


FILTER_STAGES = {
    "input": ("", "questions generated (or taken from the authors' released pool)"),
    "exact_duplicate": ("paper (1)", "same text as a WVS item or an earlier question"),
    "unexplained_numeric_scale": ("paper (2)", "options are bare numbers and the question explains no scale"),
    "strip_number_prefix": ("paper (3)", "number prefixes stripped from the options (rewrites, drops none)"),
    "endpoint_card": ("paper (4)", "numeric options rewritten as an endpoint card; questions that do not fit dropped"),
    "near_duplicate": ("ours", "TF-IDF cosine ≥ {threshold} with a WVS evaluation item or an earlier question"),
    "per_topic_budget": ("ours", "a seeded sample of at most {per_topic} questions per topic"),
}


def _counts(frame: pd.DataFrame, path) -> pd.DataFrame:
    """filter_counts.csv / topic_counts.csv with n_kept/n_dropped (older files: kept/dropped)."""
    frame = frame.rename(columns={"kept": "n_kept", "dropped": "n_dropped"})
    missing = [c for c in ("stage", "n_kept", "n_dropped") if c not in frame.columns]
    if missing:
        raise CultureSPAError(f"{path}: missing columns {missing}")
    return frame


def question_filtering(inputs: Mapping, settings: Mapping) -> Table:
    counts = _counts(io.read_csv(inputs["filter_counts"]), inputs["filter_counts"])
    q = settings.get("questions") or {}
    fill = {"threshold": q.get("near_duplicate_threshold", "?"), "per_topic": q.get("per_topic", "?")}
    records, shown = [], []
    for rec in counts.to_dict("records"):
        origin, what = FILTER_STAGES.get(rec["stage"], ("unknown", ""))
        what = what.format(**fill)
        records.append({"stage": rec["stage"], "filter": origin, "description": what,
                        "n_kept": int(rec["n_kept"]), "n_dropped": int(rec["n_dropped"])})
        shown.append({"Stage": rec["stage"], "Filter": origin or "(input)",
                      "What it does": what, "Kept": f"{int(rec['n_kept']):,}", "Dropped": f"{int(rec['n_dropped']):,}"})
    notes = [
        f"Question source: {settings.get('source', '?')}. Paper (1)-(4): the paper's four filters, in its order, "
        "as the authors' notebook applies them; ours: added by this workflow (near duplicates, so that no evaluation "
        "item leaks into the training pairs, and the per-topic budget of the run).",
        "Kept: questions after the stage; dropped: questions the stage removed.",
    ]
    return Table("question_filtering", _frame(records), pd.DataFrame(shown), CAPTIONS["question_filtering"], notes,
                 align=["l", "l", "p{0.42\\linewidth}", "r", "r"])


# --- 9. topic distribution -------------------------------------------------------------------------


def topic_distribution(inputs: Mapping, settings: Mapping) -> Table:
    counts = _counts(io.read_csv(inputs["topic_counts"]), inputs["topic_counts"])
    counts = counts[counts["topic"].astype(str) != "all"].copy()
    counts["topic"] = counts["topic"].astype(int)
    stages = list(dict.fromkeys(counts["stage"]))
    first, last = stages[0], stages[-1]
    pool = io.read_jsonl(inputs["pool"])
    in_pool = Counter(int(r["topic"]) for r in pool)
    configured = list(settings.get("pair_settings") or [])
    pair_files = dict(zip(configured, _as_list(inputs.get("pair_topics", []))))
    pairs = {}
    for setting, path in pair_files.items():
        t = io.read_csv(path, required=["set", "topic", "n_pairs"])
        t = t[t["set"] == "CRQPC"]
        pairs[setting] = t.groupby("topic")["n_pairs"].sum().to_dict()
    records, shown = [], []
    for topic, name in enumerate(TOPIC_NAMES):
        at = counts[counts.topic == topic]
        n_in = at[at.stage == first]["n_kept"]
        n_out = at[at.stage == last]["n_kept"]
        rec = {"topic": topic, "topic_name": name,
               "n_input": int(n_in.iloc[0]) if len(n_in) else pd.NA,
               "n_after_filters": int(n_out.iloc[0]) if len(n_out) else pd.NA,
               "n_pool": in_pool.get(topic, 0)}
        line = {"Topic": str(topic), "Name": name, "Generated": _int(rec["n_input"]),
                "After filters": _int(rec["n_after_filters"]), "In pool": str(rec["n_pool"])}
        for setting, by_topic in pairs.items():
            rec[f"crqpc_pairs_{setting}"] = int(by_topic.get(topic, 0))
            line[f"CRQPC pairs ({SETTING_LABELS.get(setting, setting)})" if len(pairs) > 1 else "CRQPC pairs"] = \
                str(rec[f"crqpc_pairs_{setting}"])
        records.append(rec)
        shown.append(line)
    total = {"Topic": "", "Name": "Total"}
    for col in list(shown[0])[2:]:
        vals = [r[col] for r in shown]
        total[col] = MISSING if MISSING in vals else f"{sum(int(v.replace(',', '')) for v in vals):,}"
    shown.append(total)
    for r in shown:
        for col in ("Generated", "After filters"):
            if r[col] != MISSING and r is not total:
                r[col] = f"{int(r[col]):,}"
    notes = [
        f"Generated: questions in the {settings.get('source', '?')} pool before filtering; after filters: after the "
        f"last filter ({last}); in pool: the final pool after the per-topic budget of the run.",
        ("CRQPC pairs: culture-related QA pairs whose question is of the topic, summed over the cultures."
         if pairs else "No CRQPC pairs per topic: no pair setting is configured (pairs.settings)."),
    ]
    bad = [r for r in shown[:-1] if MISSING in (r["Generated"], r["After filters"])]
    if bad:
        notes.append(f"{MISSING} topics {', '.join(r['Topic'] for r in bad)}: no row in topic_counts.csv.")
    cols = list(shown[0])
    return Table("topic_distribution", _frame(records), pd.DataFrame(shown, columns=cols),
                 CAPTIONS["topic_distribution"], notes, align=["r", "l"] + ["r"] * (len(cols) - 2),
                 sections=[len(shown) - 1])


def _int(x) -> str:
    return MISSING if x is pd.NA or pd.isna(x) else str(int(x))


# --- 10. example questions -------------------------------------------------------------------------


def example_questions(inputs: Mapping, settings: Mapping) -> Table:
    from .filters import to_item
    from .prompts import render_options

    pool = io.read_jsonl(inputs["pool"])
    first: dict[int, dict] = {}
    for rec in pool:
        first.setdefault(int(rec["topic"]), rec)
    records, shown, missing = [], [], []
    for topic, name in enumerate(TOPIC_NAMES):
        rec = first.get(topic)
        if rec is None:
            missing.append(str(topic))
            records.append({"topic": topic, "topic_name": name, "qid": "", "question": "", "options": "",
                            "status": "missing", "reason": "no question of this topic in the pool"})
            shown.append({"Topic": name, "Question": MISSING, "Options": MISSING})
            continue
        options = render_options(to_item(rec))
        records.append({"topic": topic, "topic_name": name, "qid": rec["qid"], "question": rec["question"],
                        "options": options, "status": "ok", "reason": ""})
        shown.append({"Topic": name, "Question": rec["question"], "Options": options})
    notes = [f"Options numbered as the answering prompt shows them. Question source: {settings.get('source', '?')}."]
    if missing:
        notes.append(f"{MISSING} topics {', '.join(missing)}: no question of the topic in the pool.")
    return Table("example_questions", _frame(records), pd.DataFrame(shown), CAPTIONS["example_questions"], notes,
                 align=["p{0.18\\linewidth}", "p{0.42\\linewidth}", "p{0.32\\linewidth}"])


# --- 11. hyperparameters -----------------------------------------------------------------------


HYPER_GROUPS = [
    ("answering", "Answering", ("mode", "choice", "temperature", "top_p", "max_new_tokens", "batch_size", "seed")),
    ("questions", "Question generation", ("source", "per_topic", "batch_size", "max_attempts_factor", "temperature",
                                          "top_p", "max_new_tokens", "near_duplicate_threshold", "seed")),
    ("pairs", "Pairs", ("settings", "strategies", "seed")),
    ("evaluation", "Evaluation", ("base_methods", "tuned_methods", "runs", "max_items")),
    ("scoring", "Scoring", ("n_boot", "seed", "ci_level", "uniform_draws", "majority_baseline")),
    ("mmlu", "MMLU", ("k_shot", "subjects", "max_per_subject", "variants", "seed")),
]
NONE_MEANS = {"max_items": "all items", "subjects": "all", "max_per_subject": "all"}


def _value(key: str, v: Any) -> str:
    if v is None:
        return NONE_MEANS.get(key, "none")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(key, x) for x in v)
    if isinstance(v, Mapping):
        return ", ".join(f"{k}: {_value(k, x)}" for k, x in v.items())
    return str(v)


def sft_settings(preset: Mapping) -> dict[str, dict]:
    """The settings each scope trains with (defaults of TrainSettings filled in)."""
    from .finetune import VARIANTS, TrainSettings

    return {scope: TrainSettings.from_preset(preset, scope).to_dict() for scope in VARIANTS}


def hyperparameters(inputs: Mapping, settings: Mapping) -> Table:
    hyper = settings["hyper"]
    records, shown = [], []

    def add(group, key, value):
        records.append({"group": group, "setting": key, "value": value})
        shown.append({"Group": group, "Setting": key, "Value": value})

    sft = hyper.get("sft") or {}
    if sft:
        group = f"Fine-tuning (preset {sft['preset']})"
        by_scope = sft_settings(sft["settings"])
        joint, specific = by_scope["joint"], by_scope["specific"]
        for key in joint:
            a, b = _value(key, joint[key]), _value(key, specific[key])
            add(group, key, a if a == b else f"{a} (joint), {b} (specific)")
        add(group, "variants", _value("variants", sft.get("variants", [])))
    for key, title, names in HYPER_GROUPS:
        part = hyper.get(key)
        if part is None:
            continue
        if key == "mmlu" and not part.get("zip"):
            add(title, "configured", "no (mmlu.zip is null)")
            continue
        for name in names:
            if name in part:
                add(title, name, _value(name, part[name]))
    if hyper.get("countries"):
        add("Countries", "countries", _value("countries", hyper["countries"]))
    display = pd.DataFrame(shown)
    groups = list(display["Group"])
    starts = [i for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    display["Group"] = [g if i in starts else "" for i, g in enumerate(groups)]
    notes = [
        "Fine-tuning: the preset sft.preset names (config sft.presets, else the built-in paper/demo presets), with "
        "the defaults of culturespa.finetune.TrainSettings filled in; effective batch = per-device batch x "
        "gradient accumulation; max_steps > 0 overrides epochs.",
    ]
    return Table("hyperparameters", pd.DataFrame(records), display, CAPTIONS["hyperparameters"], notes,
                 align=["l", "l", "p{0.5\\linewidth}"], sections=starts)


def hyperparameter_settings(config: Mapping, countries: Sequence[str]) -> dict:
    """What the hyperparameters table shows, from the config (the rule passes it as params)."""
    from .finetune import PRESETS

    name = config["sft"]["preset"]
    presets = {**PRESETS, **(config["sft"].get("presets") or {})}
    mmlu = {k: v for k, v in config["mmlu"].items() if k not in ("mapping",)}
    return {
        "sft": {"preset": name, "settings": presets[name], "variants": list(config["sft"]["variants"])},
        "answering": dict(config["answering"]),
        "questions": dict(config["questions"]),
        "pairs": dict(config["pairs"]),
        "evaluation": dict(config["evaluation"]),
        "scoring": dict(config["scoring"]),
        "mmlu": {**mmlu, "zip": bool(mmlu.get("zip"))},
        "countries": list(countries),
    }


# --- 12. prompt templates ------------------------------------------------------------------------


def _placeholders(template: str) -> str:
    """The template as the model sees it, placeholders kept as {name} (literal {{ }} unescaped)."""
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    return template.format(**{f: "{" + f + "}" for f in fields})


def prompt_rows() -> list[tuple[str, str, str, str]]:
    """(name, used by, role, template) for every prompt text of culturespa/prompts.py."""
    from . import prompts
    from .methods import P1_P3, P2, P2_P3, P3

    lab = lambda *ms: ", ".join(METHOD_LABELS[m] for m in ms)  # noqa: E731
    return [
        ("SYSTEM_CULTURE_UNAWARE", lab(CULTURE_UNAWARE, P3), "system", prompts.SYSTEM_CULTURE_UNAWARE),
        ("SYSTEM_CULTURE_AWARE", lab(P1, P1_P3) + "; fine-tuning (culture-aware pairs)", "system",
         prompts.SYSTEM_CULTURE_AWARE),
        ("SYSTEM_CULTURE_AWARE + CROSS_CULTURE_THINKING", lab(P2, P2_P3) + "; fine-tuning (CCT pairs)", "system",
         prompts.SYSTEM_CULTURE_AWARE + prompts.CROSS_CULTURE_THINKING),
        ("USER_QUESTION", lab(CULTURE_UNAWARE, P1, P2) + "; fine-tuning; step 2 answers", "user",
         prompts.USER_QUESTION),
        ("USER_SELF_ALIGNMENT", lab(P3, P1_P3, P2_P3), "user", prompts.USER_SELF_ALIGNMENT),
        ("SELF_ALIGNMENT_EXAMPLE", f"{lab(P3)}: each of the {prompts.N_SELF_ALIGNMENT_EXAMPLES} examples", "user (part)",
         prompts.SELF_ALIGNMENT_EXAMPLE),
        ("SYSTEM_QUESTION_GENERATION", "Question generation (step 1)", "system", prompts.SYSTEM_QUESTION_GENERATION),
        ("USER_QUESTION_GENERATION", "Question generation (step 1)", "user", prompts.USER_QUESTION_GENERATION),
        ("GENERATION_EXAMPLE", "Question generation (step 1): each example", "user (part)", prompts.GENERATION_EXAMPLE),
    ]


def prompt_templates(inputs: Mapping, settings: Mapping) -> Table:
    records, shown = [], []
    for name, used_by, role, template in prompt_rows():
        text = _placeholders(template)
        records.append({"template": name, "used_by": used_by, "role": role, "text": text})
        shown.append({"Template": name, "Used by": used_by, "Role": role, "Text": text})
    notes = [
        "Texts as culturespa/prompts.py holds them (exactly the method's prompts, whitespace included); {name} is "
        "filled per question and culture: options as '1.text 2.text ...', {article}/{adjective} from the culture "
        "catalogue, P2's three most and least similar cultures by the paper score between survey majority answers.",
    ]
    return Table("prompt_templates", pd.DataFrame(records), pd.DataFrame(shown), CAPTIONS["prompt_templates"], notes,
                 align=["p{0.17\\linewidth}", "p{0.15\\linewidth}", "l", "p{0.5\\linewidth}"])


# --- 13. alignment per topic ---------------------------------------------------------------------


TOPIC_ROWS = [(BASE, CULTURE_UNAWARE), (BASE, P1), (CULTURESPA, P1)]


def alignment_by_topic(inputs: Mapping, settings: Mapping) -> Table:
    res = _results(inputs["by_topic"], settings)
    columns = [(design.row_label(v, m), v, m) for v, m in TOPIC_ROWS]
    reasons = _Reasons(every="every topic")
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
            rec = _missing_frame_values(cell)
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
    return Table("alignment_by_topic", _frame(records), pd.DataFrame(shown), CAPTIONS["alignment_by_topic"], notes,
                 align=["l", "r", "r", "r"])


# --- dispatch --------------------------------------------------------------------------------------


BUILDERS: dict[str, Callable[[Mapping, Mapping], Table]] = {
    "main_results": main_results,
    "combined_prompting": combined_prompting,
    "joint_specific_cct": joint_specific_cct,
    "sampling_strategies": sampling_strategies,
    "data_quantity": data_quantity,
    "general_ability": general_ability,
    "collected_pairs": collected_pairs,
    "question_filtering": question_filtering,
    "topic_distribution": topic_distribution,
    "example_questions": example_questions,
    "hyperparameters": hyperparameters,
    "prompt_templates": prompt_templates,
    "alignment_by_topic": alignment_by_topic,
}
assert list(BUILDERS) == TABLES


def _as_mapping(obj) -> dict:
    """A dict from a Snakemake namedlist/Params (or a dict)."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    return dict(obj.items())


def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, (str, Path)):
        return [x]
    return list(x)


def build(name: str, inputs, settings) -> Table:
    if name not in BUILDERS:
        raise CultureSPAError(f"unknown table {name!r} (known: {', '.join(TABLES)})")
    return BUILDERS[name](_as_mapping(inputs), _as_mapping(settings))


def render(name: str, inputs, params, outputs) -> Table:
    """Build table ``name`` and write outputs ``csv``, ``md`` and ``tex``."""
    table = build(name, inputs, params)
    out = _as_mapping(outputs)
    write_csv(table, out["csv"])
    write_markdown(table, out["md"])
    write_latex(table, out["tex"])
    return table


# --- what the rules pass -------------------------------------------------------------------------


def table_settings(name: str, config: Mapping, countries: Sequence[str], model: str, source: str = "pipeline") -> dict:
    """The settings a table needs from the config (only those, so that a config change reruns
    only the tables it touches). ``source``: 'pipeline' or 'released'."""
    from .results import released_methods, variant_methods

    variants = released_methods(config) if source == "released" else variant_methods(config)
    base = {"model": model, "source": source}
    scores = {**base, "variants": variants, "countries": list(countries),
              "evaluation": {k: config["evaluation"][k] for k in ("runs", "max_items")},
              "scoring": {k: config["scoring"].get(k) for k in ("n_boot", "ci_level", "majority_baseline")}}
    if name in ALIGNMENT_TABLES or name in ("data_quantity", "alignment_by_topic"):
        return scores
    if name == "general_ability":
        mmlu = {k: config["mmlu"].get(k) for k in ("variants", "subjects", "max_per_subject", "k_shot")}
        return {**base, "variants": variants, "mmlu": mmlu}
    if name == "collected_pairs":
        return {**base, "source": config["questions"]["source"], "pair_settings": list(config["pairs"]["settings"]),
                "strategies": list(config["pairs"]["strategies"])}
    if name == "topic_distribution":
        return {**base, "source": config["questions"]["source"], "pair_settings": list(config["pairs"]["settings"])}
    if name == "question_filtering":
        q = config["questions"]
        return {**base, "source": q["source"],
                "questions": {"per_topic": q["per_topic"], "near_duplicate_threshold": q["near_duplicate_threshold"]}}
    if name == "example_questions":
        return {**base, "source": config["questions"]["source"]}
    if name == "hyperparameters":
        return {**base, "hyper": hyperparameter_settings(config, countries)}
    if name == "prompt_templates":
        return base
    raise CultureSPAError(f"unknown table {name!r} (known: {', '.join(TABLES)})")


def table_targets(model: str) -> list[str]:
    """Every table of a model run by the pipeline, in the three formats."""
    return [f"results/{model}/tables/{name}.{ext}" for name in TABLES for ext in FORMATS]


def released_table_targets(model: str) -> list[str]:
    """The tables of the authors' released answers of ``model``, in the three formats."""
    return [f"results/released/{model}/tables/{name}.{ext}" for name in RELEASED_TABLES for ext in FORMATS]


def table_inputs(name: str, root: str, config: Mapping, basedir: str | Path | None = None) -> dict:
    """Named input files of a table under ``root`` = results/{model} (only what it needs;
    optional inputs only where the config produces them). ``basedir``: the workflow's folder,
    for the prompt templates' source file (so that editing a prompt re-renders that table)."""
    source = config["questions"]["source"]
    settings = list(config["pairs"]["settings"])
    if name in ALIGNMENT_TABLES:
        return {"alignment": f"{root}/alignment.csv"}
    if name == "data_quantity":
        trained = [design.fraction_variant(p) for p in design.FRACTIONS]
        return {"alignment": f"{root}/alignment.csv",
                "train_stats": [f"{root}/sft/{v}/train_stats.json" for v in trained if v in config["sft"]["variants"]]}
    if name == "general_ability":
        return {"mmlu": f"{root}/mmlu.csv"} if config["mmlu"].get("zip") else {}
    if name == "collected_pairs":
        return {"pairs_stats": [f"{root}/pairs/{source}/{s}/stats.csv" for s in settings]}
    if name == "question_filtering":
        return {"filter_counts": f"{root}/questions/{source}/filter_counts.csv"}
    if name == "topic_distribution":
        return {"topic_counts": f"{root}/questions/{source}/topic_counts.csv",
                "pool": f"{root}/questions/{source}/pool.jsonl",
                "pair_topics": [f"{root}/pairs/{source}/{s}/topic_stats.csv" for s in settings]}
    if name == "example_questions":
        return {"pool": f"{root}/questions/{source}/pool.jsonl"}
    if name == "hyperparameters":
        return {}
    if name == "prompt_templates":
        if basedir is None:
            return {}
        return {"prompts": os.path.relpath(Path(basedir) / "culturespa" / "prompts.py")}
    if name == "alignment_by_topic":
        return {"by_topic": f"{root}/alignment_by_topic.csv"}
    raise CultureSPAError(f"unknown table {name!r} (known: {', '.join(TABLES)})")


def released_table_inputs(name: str, root: str) -> dict:
    """Inputs of a table of the released answers under ``root`` = results/released/{model}."""
    if name == "main_results":
        return {"alignment": f"{root}/alignment.csv"}
    if name == "alignment_by_topic":
        return {"by_topic": f"{root}/alignment_by_topic.csv"}
    raise CultureSPAError(f"table {name!r} has no released version (only {', '.join(RELEASED_TABLES)})")
