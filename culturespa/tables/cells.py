"""What the table builders share: missing cells and their reasons, score rows, CSV frames."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ..design import AVG, BASE, PAPER_SCORE, delta_metric
from ..results import Cell, Results, format_cell, is_no_row
from .formats import MISSING

SETTING_LABELS = {"culture_aware": "Culture-aware (P1)", "cross_culture": "Cross-culture thinking (P2)"}


class Reasons:
    """Why cells are missing, grouped: '<what>, <where>: <reason>' with 'where' shortened to
    'every column' (or row) when the reason covers them all."""

    def __init__(self, every: str = "every column"):
        self.every = every
        self.found: dict[tuple[str, str], list[str]] = {}

    def add(self, what: str, where: str, reason: str) -> None:
        self.found.setdefault((what, reason), []).append(where)

    def drop_no_rows(self, within: Sequence[str]) -> None:
        """Forget 'no result row' reasons whose places all lie within ``within`` (a caller that
        explains those places once, in its own note)."""
        within = set(within)
        self.found = {k: v for k, v in self.found.items() if not (is_no_row(k[1]) and set(v) <= within)}

    def notes(self, all_where: Sequence[str] | None = None) -> list[str]:
        out = []
        for (what, reason), wheres in self.found.items():
            if all_where is not None and list(wheres) == list(all_where):
                place = self.every
            else:
                place = ", ".join(wheres)
            out.append(f"{MISSING} {what} ({place}): {reason}.")
        return out


def cell_fields(cell: Cell) -> dict:
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


def csv_frame(records: list[dict], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The CSV frame; count columns as nullable integers (empty, not 0 or NaN-as-float, when missing)."""
    out = pd.DataFrame.from_records(records, columns=columns)
    for c in ("n_valid", "n_invalid", "n", "n_pairs"):
        if c in out.columns:
            out[c] = out[c].astype("Int64")
    return out


def signed(x: float, digits: int = 2) -> str:
    return f"{x:+.{digits}f}"


def as_list(x) -> list:
    """A named input as a list of paths (one path, a list, or nothing)."""
    if x is None:
        return []
    if isinstance(x, (str, Path)):
        return [x]
    return list(x)


# --- alignment scores ---------------------------------------------------------------------------


def load_results(path, settings: Mapping, extra_methods: Sequence[str] = ()) -> Results:
    """The alignment table with the configured variants (plus ``extra_methods`` on the base
    model: the baselines, which scoring adds to every run)."""
    variants = {k: list(v) for k, v in settings["variants"].items()}
    if extra_methods:
        variants[BASE] = [*variants.get(BASE, []), *extra_methods]
    return Results.load(path, settings.get("model", ""), variants, settings.get("countries"),
                        source=settings.get("source", "pipeline"))


def country_columns(settings: Mapping) -> list[str]:
    return [*settings["countries"], AVG]


def score_note(settings: Mapping) -> str:
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
        by_method = ev.get("max_items_by_method") or {}
        if by_method:
            sample += " (" + ", ".join(f"{m}: a seeded sample of {n}" for m, n in by_method.items()) + ")"
        runs = f"the mean over {runs_n} evaluation run{'s' if runs_n != 1 else ''} on {sample}"
    return (
        f"Cells: the paper's alignment score (0-100; 100 = the country's WVS majority answers), {runs}; in "
        f"brackets the {ci:.0%} percentile bootstrap CI over questions"
        + (f" ({boot} resamples)" if boot else "")
        + f". {AVG}: the mean over the countries with a score (its CI resamples the same questions for every country)."
    )


def score_rows(results: Results, rows: Sequence[tuple[str, str, str]], columns: Sequence[str],
               reasons: Reasons, ci: bool = True) -> tuple[list[dict], list[dict], dict]:
    """CSV records and display rows for (label, variant, method) rows over ``columns``; also the
    cells by (label, column)."""
    records, shown, cells = [], [], {}
    for label, variant, method in rows:
        line = {"": label}
        for col in columns:
            cell = results.cell(variant, method, col)
            cells[(label, col)] = cell
            records.append({"row": label, "variant": variant, "method": method, "country": col,
                            "metric": PAPER_SCORE, **cell_fields(cell)})
            line[col] = format_cell(cell, ci=ci)
            if not cell.ok:
                reasons.add(label, col, cell.missing)
        shown.append(line)
    return records, shown, cells


DELTA_NOTE = (
    "Δ: a paired difference of alignment scores (the first model's minus the second's), with its 95% bootstrap CI "
    "over questions: both answers to a question are resampled together, so the CI is that of the difference itself "
    "(narrower than the two scores' own CIs suggest); a CI that excludes 0 shows an effect at that level, one that "
    "includes 0 shows none."
)


def delta_rows(results: Results, rows: Sequence[tuple[str, tuple[str, str], tuple[str, str]]],
               columns: Sequence[str], reasons: Reasons) -> tuple[list[dict], list[dict], dict]:
    """CSV records and display rows for (label, (variant, method), (base variant, base method))
    paired differences (``scoring.comparison_rows``) over ``columns``; also the cells."""
    records, shown, cells = [], [], {}
    for label, (variant, method), (base_variant, base_method) in rows:
        line = {"": label}
        metric = delta_metric(base_variant, base_method)
        for col in columns:
            cell = results.cell(variant, method, col, metric)
            cells[(label, col)] = cell
            records.append({"row": label, "variant": variant, "method": method, "country": col, "metric": metric,
                            **cell_fields(cell)})
            line[col] = format_cell(cell, sign=True)
            if not cell.ok:
                reasons.add(label, col, cell.missing)
        shown.append(line)
    return records, shown, cells


def display_frame(rows: list[dict], first: str) -> pd.DataFrame:
    """Display rows from ``score_rows`` with the label column named ``first``."""
    return pd.DataFrame(rows).rename(columns={"": first})
