"""How much of an alignment score survives a change of option order (beyond the paper).

The answers of a (variant, method) in several option orders (``orders``; each answer already
mapped back to the original option) become tidy rows like ``scoring.score_answers``' with an
``order`` column: ``original``, ``reversed``, ``permuted``, and ``mean`` for the value averaged
over the orders that were run (the order-robust value). Every metric is a mean over questions or,
for the paper score, a ratio of sums over questions, with a percentile bootstrap CI over
questions from ``scoring``'s machinery (the same resampled questions for every order and
country, so a mean over orders has a CI of its own):

* ``paper_score``, ``js_similarity``, ``wasserstein_similarity``: as in ``scoring``, per order.
* ``normalised_paper_score``: 100 (S - S_uniform) / (100 - S_uniform), where S_uniform is the
  expected paper score of uniform random answers on the items the model answered validly (the
  ``baseline_uniform`` draws: ``scoring.n_uniform_draws`` draws seeded with ``scoring.seed``):
  0 = no better than random, 100 = the country's majority answer on every item, negative =
  worse than random.
* ``order_consistency``: the share of items whose (mapped-back) answer is the same in two orders.
  On an order's row: that order against ``original``; on the ``mean`` row: the share of items
  with the same answer in every order run (with original and reversed only, the two are equal;
  with permuted too, the mean row is the stricter all-three agreement). Items count where every
  order compared gave an answer on the item's scale.
* ``first_option_share`` / ``last_option_share``: the share of answers on the option listed first
  / last in that order (position bias; 1/K for a model that ignores position and answers
  uniformly), beside ``survey_first_option_share`` / ``survey_last_option_share``: the share of
  the country's respondents choosing those same options, on the same items. A model that always
  picks the first listed option has first_option_share 1 in every order.
* ``answer_entropy``: the entropy of the model's distribution over the item's options divided by
  log K (0 = one answer, 1 = uniform), averaged over items; logprob mode: from ``probs`` (per
  run); generate mode (no ``probs``): from the empirical distribution of the answers over all
  evaluation runs of the item (so with R runs it is at most log R / log K: one run gives 0; the
  same value stands on every run's row). Beside it ``survey_entropy``: the same for the country's
  answer shares, on the same items.

Items count where the country has survey data; ``n_valid`` / ``n_invalid`` count those with and
without a usable answer, as in ``scoring``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from . import metrics
from .orders import MEAN, ORDERS, ORIGINAL, OptionOrder, check_order, option_order
from .results import BASELINE_PREFIX
from .scoring import (
    COLUMNS, JS, PAPER_SCORE, W1, PersonaAnswers, ScoringSettings, _MethodScorer,
    per_country_answers, score_answers,
)
from .survey import Survey

NORMALISED = "normalised_paper_score"
CONSISTENCY = "order_consistency"
FIRST_SHARE = "first_option_share"
LAST_SHARE = "last_option_share"
SURVEY_FIRST_SHARE = "survey_first_option_share"
SURVEY_LAST_SHARE = "survey_last_option_share"
ANSWER_ENTROPY = "answer_entropy"
SURVEY_ENTROPY = "survey_entropy"
ORDER_METRICS = [PAPER_SCORE, JS, W1, NORMALISED, CONSISTENCY, FIRST_SHARE, SURVEY_FIRST_SHARE, LAST_SHARE,
                 SURVEY_LAST_SHARE, ANSWER_ENTROPY, SURVEY_ENTROPY]
ORDER_COLUMNS = [*COLUMNS, "order"]


def with_orders(answers: pd.DataFrame) -> pd.DataFrame:
    """The answers with an ``order`` column (all ``original`` when there is none), checked."""
    if "order" not in answers.columns:
        return answers.assign(order=ORIGINAL)
    for o in answers["order"].unique():
        check_order(o)
    return answers


def _present(answers: pd.DataFrame) -> list[str]:
    have = set(answers["order"])
    return [o for o in ORDERS if o in have]


def _has_probs(frame: pd.DataFrame) -> bool:
    """logprob mode: every record carries the option probabilities."""
    if "probs" not in frame.columns or frame.empty:
        return False
    return bool(frame["probs"].map(lambda p: p is not None and not (isinstance(p, float) and np.isnan(p))).all())


class _OrderScorer:
    """One method's answers in every order (one run), per country, into rows with bootstrap samples."""

    def __init__(self, scorer: _MethodScorer, listings: dict[str, list[OptionOrder]], uniform: np.ndarray):
        self.sc = scorer
        self.survey = scorer.survey
        self.countries = scorer.countries
        self.listings = listings
        self.uniform = uniform  # draws x items: the baseline_uniform answers
        self.has = {c: ~np.isnan(self.survey.majority[self.survey.row(c)]) for c in self.countries}
        self._uniform: dict = {}
        items = self.survey.items
        width = int(self.survey.n_options.max())
        # per order: displayed position of each original option, original index listed first / last
        self.listing_arrays = {}
        for o, lst in listings.items():
            place = np.full((len(items), width), -1)
            for i, mapping in enumerate(lst):
                place[i, list(mapping.perm)] = np.arange(mapping.n_options)
            self.listing_arrays[o] = (place, np.array([m.perm[0] for m in lst]), np.array([m.perm[-1] for m in lst]))
        # per country: survey shares (items x options, NaN without data) and their normalised entropy
        self.shares, self.survey_entropy = {}, {}
        for c in self.countries:
            shares = np.full((len(items), width), np.nan)
            for i, it in enumerate(items):
                ref = self.survey.distribution(c, it.qid)
                if ref is not None:
                    shares[i, : it.n_options] = ref
            self.shares[c] = shares
            self.survey_entropy[c] = np.array([np.nan if np.isnan(row[0]) else metrics.normalised_entropy(row[:it.n_options])
                                               for row, it in zip(shares, items)])

    def _counts(self, valid: np.ndarray, c: str) -> tuple[int, int]:
        return int(np.sum(valid & self.has[c])), int(np.sum(~valid & self.has[c]))

    def normalised(self, per_country: dict[str, PersonaAnswers]) -> list[dict]:
        sc = self.sc
        rows, values, boots = [], [], []
        for c in self.countries:
            ans = per_country[c].paper
            valid = ~np.isnan(ans)
            d2, m2 = sc.paper_parts(ans, c)
            score = sc._paper_from_parts(d2.sum(), m2.sum())
            score_b = sc._paper_from_parts(sc.weights @ d2, sc.weights @ m2)
            uniform, uniform_b = self.uniform_score(c, valid)
            with np.errstate(invalid="ignore", divide="ignore"):
                value = float(100.0 * (score - uniform) / (100.0 - uniform))
                boot = 100.0 * (score_b - uniform_b) / (100.0 - uniform_b)
            rows.append(sc._row(NORMALISED, c, value, boot, *self._counts(valid, c)))
            values.append(value)
            boots.append(boot)
        rows.append(sc._avg_row(NORMALISED, values, boots, rows))
        return rows

    def uniform_score(self, c: str, valid: np.ndarray) -> tuple[float, np.ndarray]:
        """The expected paper score of uniform random answers on the items ``valid`` (mean over the
        draws) and its bootstrap samples; cached: every method, order and run with the same valid
        items (all of them, in logprob mode) shares it."""
        key = (c, valid.tobytes())
        if key not in self._uniform:
            sc = self.sc
            ud2, um2 = sc.paper_parts(np.where(valid[None, :], self.uniform, np.nan), c)
            with np.errstate(invalid="ignore"):
                value = float(np.mean(sc._paper_from_parts(ud2.sum(axis=1), um2.sum(axis=1))))
                boot = np.mean(sc._paper_from_parts(sc.weights @ ud2.T, sc.weights @ um2.T), axis=1)
            self._uniform[key] = (value, boot)
        return self._uniform[key]

    def positions(self, order: str, per_country: dict[str, PersonaAnswers]) -> list[dict]:
        place, first, last = self.listing_arrays[order]
        rows = []
        q = np.arange(len(self.survey.items))
        k = self.survey.n_options
        for metric, survey_metric, end, at in ((FIRST_SHARE, SURVEY_FIRST_SHARE, first, 0),
                                               (LAST_SHARE, SURVEY_LAST_SHARE, last, k - 1)):
            model, survey, counts = {}, {}, {}
            for c in self.countries:
                strict = per_country[c].strict
                ok = ~np.isnan(strict) & self.has[c]
                shown = place[q, np.where(ok, strict - self.survey.first, 0).astype(int)]
                model[c] = np.where(ok, (shown == at).astype(float), np.nan)
                survey[c] = np.where(ok, self.shares[c][q, end], np.nan)
                counts[c] = self._counts(~np.isnan(strict), c)
            rows += self.sc.question_mean(metric, model, counts)
            rows += self.sc.question_mean(survey_metric, survey, counts)
        return rows

    def entropy(self, dists: dict[str, list]) -> list[dict]:
        """``dists``: per country, per item, the model's distribution over the options (or None)."""
        model, survey, counts = {}, {}, {}
        seen: dict[int, np.ndarray] = {}  # culture-unaware answers: one list for every country
        for c in self.countries:
            if id(dists[c]) not in seen:
                seen[id(dists[c])] = np.array([np.nan if d is None else metrics.normalised_entropy(d)
                                               for d in dists[c]])
            m = np.where(self.has[c], seen[id(dists[c])], np.nan)
            model[c] = m
            survey[c] = np.where(np.isnan(m), np.nan, self.survey_entropy[c])
            counts[c] = self._counts(~np.isnan(m), c)
        return self.sc.question_mean(ANSWER_ENTROPY, model, counts) + self.sc.question_mean(SURVEY_ENTROPY, survey, counts)

    def consistency(self, group: Sequence[dict[str, PersonaAnswers]]) -> list[dict]:
        """Per country: 1 where every order of ``group`` gave the same answer on the item's scale."""
        values, counts = {}, {}
        for c in self.countries:
            stacked = np.vstack([per_country[c].strict for per_country in group])
            valid = ~np.isnan(stacked).any(axis=0)
            same = np.all(stacked == stacked[0], axis=0).astype(float)
            values[c] = np.where(valid & self.has[c], same, np.nan)
            counts[c] = self._counts(valid, c)
        return self.sc.question_mean(CONSISTENCY, values, counts)


def _empirical_dists(runs: Sequence[dict[str, PersonaAnswers]], survey: Survey, countries) -> dict[str, list]:
    """Per country, per item: the distribution of the answers over ``runs`` (None: no answer)."""
    out = {}
    for c in countries:
        counts = np.zeros((len(survey.items), int(survey.n_options.max())))
        for per_country in runs:
            strict = per_country[c].strict
            ok = ~np.isnan(strict)
            idx = np.flatnonzero(ok)
            np.add.at(counts, (idx, (strict[ok] - survey.first[ok]).astype(int)), 1.0)
        out[c] = [counts[i, : it.n_options].copy() if counts[i].sum() > 0 else None
                  for i, it in enumerate(survey.items)]
    return out


def _mean_rows(scorer: _MethodScorer, per_order: Sequence[list[dict]]) -> list[dict]:
    """Rows averaged over orders (same metrics, same countries, in the same row order): value and
    bootstrap samples are means over the orders (NaN if any order is), counts are sums; the AVG
    row is recomputed from the country means as every AVG is."""
    out = []
    first = per_order[0]
    by_metric: dict[str, list[dict]] = {}
    for k, row in enumerate(first):
        if row["country"] == "AVG":
            continue
        rows = [o[k] for o in per_order]
        assert all((r["metric"], r["country"]) == (row["metric"], row["country"]) for r in rows)
        value = float(np.mean([r["value"] for r in rows]))
        boot = np.mean(np.vstack([r["boot"] for r in rows]), axis=0)
        mean = scorer._row(row["metric"], row["country"], value, boot, sum(r["n_valid"] for r in rows),
                           sum(r["n_invalid"] for r in rows))
        by_metric.setdefault(row["metric"], []).append(mean)
    for metric, rows in by_metric.items():
        out += rows
        out.append(scorer._avg_row(metric, [r["value"] for r in rows], [r["boot"] for r in rows], rows))
    return out


def order_scores(
    answers: pd.DataFrame,
    survey: Survey,
    countries: Sequence[str],
    model: str,
    settings: ScoringSettings | None = None,
    order_seed: int = 0,
    keep_boot: bool = False,
) -> pd.DataFrame:
    """The order-robustness rows (``ORDER_METRICS``) of every method in ``answers``.

    ``answers``: a ``scoring.score_answers`` frame (method, persona, qid, reply, choice, probs) of
    answers already mapped back to the original options (``orders.map_records``), with ``order``
    (default: all original) and optionally ``run``. ``order_seed``: ``evaluation.order_seed`` (for
    the listing of ``permuted``). Returns ``ORDER_COLUMNS`` (+ ``run`` when the input has one):
    per order, and with two orders or more the ``mean`` rows and ``order_consistency``.
    """
    settings = settings or ScoringSettings()
    answers = with_orders(answers)
    countries = [c for c in countries if survey.has_data(c)]
    scorer = _MethodScorer(survey, countries, settings)
    present = _present(answers)
    listings = {o: [option_order(it, o, order_seed) for it in survey.items] for o in present}
    uniform = metrics.uniform_random_answers(survey.first, survey.n_options, settings.n_uniform_draws, settings.seed)
    ordered = _OrderScorer(scorer, listings, uniform)
    has_run = "run" in answers.columns
    rows: list[dict] = []
    for method, mframe in answers.groupby("method", sort=False):
        orders_here = _present(mframe)
        runs = list(dict.fromkeys(mframe["run"])) if has_run else [None]
        aligned = {  # run -> order -> country -> answers
            run: {o: per_country_answers(mframe[(mframe.order == o) & ((mframe.run == run) if has_run else True)],
                                         survey, countries, method) for o in orders_here}
            for run in runs
        }
        probs = {o: _has_probs(mframe[mframe.order == o]) for o in orders_here}
        pooled = {o: _empirical_dists([aligned[r][o] for r in runs], survey, countries)
                  for o in orders_here if not probs[o]}
        for run in runs:
            by_order = {}
            for o in orders_here:
                per_country = aligned[run][o]
                dists = {c: per_country[c].dists for c in countries} if probs[o] else pooled[o]
                by_order[o] = (scorer.score(per_country) + ordered.normalised(per_country)
                               + ordered.positions(o, per_country) + ordered.entropy(dists))
                if o != ORIGINAL and ORIGINAL in orders_here:
                    by_order[o] += ordered.consistency([aligned[run][ORIGINAL], per_country])
            if len(orders_here) > 1:
                # consistency rows exist for the non-original orders only: average the rest
                common = [[r for r in by_order[o] if r["metric"] != CONSISTENCY] for o in orders_here]
                by_order[MEAN] = _mean_rows(scorer, common)
                by_order[MEAN] += ordered.consistency([aligned[run][o] for o in orders_here])
            for o, order_rows in by_order.items():
                rows += [dict({k: v for k, v in r.items() if keep_boot or k != "boot"}, model=model, method=method,
                              order=o, **({"run": run} if has_run else {})) for r in order_rows]
    return pd.DataFrame(rows, columns=ORDER_COLUMNS + (["run"] if has_run else []) + (["boot"] if keep_boot else []))


def score_with_orders(
    answers: pd.DataFrame,
    survey: Survey,
    countries: Sequence[str],
    model: str,
    settings: ScoringSettings | None = None,
    order_seed: int = 0,
    baselines: bool = True,
    all_items: Sequence | None = None,
    keep_boot: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``scoring.score_answers`` for answers in several option orders (and runs): every metric of
    the tidy table per order (run separately on each order's answers), the order-robustness rows
    (``order_scores``), and the country matrices per order; all with an ``order`` column (and
    ``run`` when the input has one). The reference baselines do not depend on the order: they are
    scored once per run and carry ``order`` = original."""
    settings = settings or ScoringSettings()
    answers = with_orders(answers)
    has_run = "run" in answers.columns
    tables, matrices = [], []
    for run in (list(dict.fromkeys(answers["run"])) if has_run else [None]):
        frame = answers[answers.run == run] if has_run else answers
        for k, o in enumerate(_present(frame)):
            table, mats = score_answers(frame[frame.order == o], survey, countries, model, settings,
                                        baselines=baselines and k == 0, all_items=all_items, keep_boot=keep_boot)
            tagged = {"order": o, **({"run": run} if has_run else {})}
            table = table.assign(**tagged)
            table.loc[table.method.str.startswith(BASELINE_PREFIX), "order"] = ORIGINAL
            tables.append(table)
            matrices.append(mats.assign(**tagged))
    table = pd.concat(tables, ignore_index=True)
    robust = order_scores(answers, survey, countries, model, settings, order_seed, keep_boot=keep_boot)
    # order_scores has the per-order paper and distributional scores too (the same numbers)
    keys = ["method", "order", "country", "metric"] + (["run"] if has_run else [])
    dup = table.merge(robust[keys].drop_duplicates(), on=keys, how="left", indicator=True)["_merge"] == "both"
    table = pd.concat([table[~dup.to_numpy()], robust], ignore_index=True)
    return _carry_reasons(table, ["method", "country"] + (["run"] if has_run else [])), pd.concat(
        matrices, ignore_index=True)


def _carry_reasons(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """A missing value of the order-robustness rows (the ``mean`` order, consistency, position
    shares) gets the reason its cell has in the per-order rows ("not trained: ..."), so that no
    empty cell is left without one."""
    known = table.dropna(subset=["reason"]).drop_duplicates(keys)[keys + ["reason"]]
    if known.empty:
        return table
    found = table[keys].merge(known, on=keys, how="left")["reason"].to_numpy()
    fill = (table["reason"].isna() & table["value"].isna()).to_numpy()
    table.loc[fill, "reason"] = found[fill]
    return table
