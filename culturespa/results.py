"""Read the tidy results tables for figures and tables, and say why a cell is missing.

A cell is one (variant, method, country, metric) in one option order (``orders``; default the
original order, also for tables without an ``order`` column). It is missing when the variant,
method or order was not run (not in the config, or not released by the authors), when the run
left no row, when its adapter was not trained (the scorer's ``reason`` column says why, e.g. "not
trained: 0 culture-related pairs for NGA"), when a correlation has too few countries, or when
every answer was invalid (the score is NaN and ``n_invalid`` counts the answers). Figures and
tables show the reason; nothing is filled with zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import pandas as pd

from . import io
from .design import AVG, BASE, PAPER_SCORE
from .orders import MEAN, ORIGINAL
from .scoring import CROSS_CORRELATION, MIN_CORRELATION_COUNTRIES


NO_ROW = "no result row"  # the reason of a cell the alignment table has no row for
BASELINE_PREFIX = "baseline_"  # reference rows (uniform random, one country's majority) scored with the base


def is_no_row(reason: str | None) -> bool:
    """A missing cell's reason says the table has no row for it (not run yet, or aggregated before it existed)."""
    return bool(reason) and reason.startswith(NO_ROW)


@dataclass(frozen=True)
class Cell:
    value: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n_valid: int = 0
    n_invalid: int = 0
    missing: str | None = None

    @property
    def ok(self) -> bool:
        return self.missing is None

    @property
    def no_row(self) -> bool:
        return is_no_row(self.missing)


@dataclass
class Results:
    """One model's alignment table plus what the config asked for.

    ``variants`` maps each configured variant to the methods it was evaluated with. A variant
    or method outside it is reported as 'not run', with the config key that would add it.
    """

    model: str
    table: pd.DataFrame
    variants: Mapping[str, Sequence[str]]
    countries: Sequence[str]
    source: str = "pipeline"  # or "released": the authors' outputs, base model only
    orders: Sequence[str] = (ORIGINAL,)  # the option orders the config runs (evaluation.orders)

    @classmethod
    def load(cls, path, model: str, variants: Mapping[str, Sequence[str]], countries: Sequence[str] | None = None,
             source: str = "pipeline", orders: Sequence[str] | None = None) -> "Results":
        table = io.read_csv(path)
        if "variant" not in table.columns:  # the released table scores the base model only
            table.insert(1, "variant", BASE)
        present = [c for c in table["country"].unique() if c != AVG]
        order = [c for c in countries if c in present] if countries else present
        return cls(model, table, {k: list(v) for k, v in variants.items()}, order, source,
                   tuple(orders) if orders else (ORIGINAL,))

    def why_not_run_order(self, order: str) -> str | None:
        if self.source == "released":
            return None if order == ORIGINAL else "not released by the authors: original order only"
        if order == MEAN:
            return None if len(self.orders) > 1 else "needs two option orders or more (evaluation.orders)"
        return None if order in self.orders else f"not run: {order} is not in evaluation.orders"

    def why_not_run(self, variant: str, method: str) -> str | None:
        if variant not in self.variants:
            if self.source == "released":
                return "not released by the authors (run the pipeline for it)"
            return f"not run: {variant} is not in sft.variants"
        if method not in self.variants[variant] and not (variant == BASE and method.startswith(BASELINE_PREFIX)):
            key = "evaluation.base_methods" if variant == BASE else "evaluation.tuned_methods"
            if self.source == "released":
                key = "released.methods"
            return f"not run: {method} is not in {key}"
        return None

    def cell(self, variant: str, method: str, country: str, metric: str = PAPER_SCORE, order: str = ORIGINAL) -> Cell:
        reason = self.why_not_run(variant, method) or self.why_not_run_order(order)
        if reason:
            return Cell(missing=reason)
        t = self.table
        rows = t[(t.variant == variant) & (t.method == method) & (t.country == country) & (t.metric == metric)]
        if "order" in t.columns:
            rows = rows[rows.order == order]
        elif order != ORIGINAL:
            rows = rows.iloc[:0]  # a table from before option orders: the original order only
        few = metric == CROSS_CORRELATION and len(self.countries) < MIN_CORRELATION_COUNTRIES
        few_reason = f"a correlation needs at least {MIN_CORRELATION_COUNTRIES} countries ({len(self.countries)} here)"
        if rows.empty:
            where = f"{variant}/{method}/{country}/{metric}" + (f" ({order} order)" if order != ORIGINAL else "")
            return Cell(missing=few_reason if few else f"{NO_ROW} for {where}")
        r = rows.iloc[0]
        n_valid = int(r.get("n_valid", 0) or 0)
        n_invalid = int(r.get("n_invalid", 0) or 0)
        if pd.isna(r["value"]):
            reason = r.get("reason")
            if not isinstance(reason, str) or not reason:  # tables written before the reason column
                reason = few_reason if few else f"no valid answers ({n_valid} valid, {n_invalid} invalid)"
            return Cell(n_valid=n_valid, n_invalid=n_invalid, missing=reason)
        return Cell(float(r["value"]), _float(r.get("ci_low")), _float(r.get("ci_high")), n_valid, n_invalid)

    def series(self, variant: str, method: str, metric: str = PAPER_SCORE,
               countries: Iterable[str] | None = None, order: str = ORIGINAL) -> dict[str, Cell]:
        """Cells per country, the average last."""
        names = list(countries) if countries is not None else [*self.countries, AVG]
        return {c: self.cell(variant, method, c, metric, order) for c in names}

    def matrix(self, matrices: pd.DataFrame, variant: str, kind: str, method: str = "") -> pd.DataFrame | None:
        m = matrices
        if "variant" not in m.columns:
            m = m.assign(variant=BASE)
        if "order" in m.columns:  # the matrices of the original order (robustness.score_with_orders)
            m = m[m.order == ORIGINAL]
        sub = m[(m.variant == variant) & (m.kind == kind) & (m.method.fillna("") == method)]
        if sub.empty:
            return None
        wide = sub.pivot(index="row", columns="col", values="value")
        order = [c for c in self.countries if c in wide.index]
        return wide.loc[order, order]


def _float(x) -> float:
    return math.nan if x is None or pd.isna(x) else float(x)


def variant_methods(config: Mapping) -> dict[str, list[str]]:
    """The variants the config runs, with the methods each is evaluated with: ``base_methods`` for
    the base model, ``tuned_methods`` for an adapter unless ``variant_methods`` names the variant;
    a culture-specific model has no persona-free answers (its adapter belongs to one culture)."""
    from .methods import PERSONA_FREE

    evaluation = config["evaluation"]
    overrides = evaluation.get("variant_methods") or {}
    out = {BASE: list(evaluation["base_methods"])}
    for v in config["sft"]["variants"]:
        methods = list(overrides.get(v, evaluation["tuned_methods"]))
        out[v] = [m for m in methods if m not in PERSONA_FREE] if v.startswith("specific-") else methods
    return out


def released_methods(config: Mapping) -> dict[str, list[str]]:
    return {BASE: list(config["released"]["methods"])}


def format_cell(cell: Cell, digits: int = 2, ci: bool = True, sign: bool = False) -> str:
    """'66.61 [64.10, 69.52]' ('+1.20 [-0.40, 2.80]' with ``sign``, for a difference), or '—' for
    a missing cell (the reason goes in a note)."""
    if not cell.ok:
        return "—"
    text = f"{cell.value:+.{digits}f}" if sign else f"{cell.value:.{digits}f}"
    if ci and not math.isnan(cell.ci_low):
        text += f" [{cell.ci_low:.{digits}f}, {cell.ci_high:.{digits}f}]"
    return text
