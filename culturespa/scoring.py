"""Scoring answers against the survey into the tidy alignment table.

One code path for every source of answers (the released Llama-3 outputs, our prompting
baselines, our fine-tuned models). The input is a long frame with columns

    method, persona, qid, reply            (reply: the model's raw text; may be empty)
    and optionally choice (int option number) and probs (list of option probabilities)

``persona`` is the country the prompt named, or ``NO_PERSONA`` for culture-unaware prompts,
whose answers are scored against every country. A record with ``status`` ``NOT_ANSWERED`` was
never asked (its adapter was not trained): it counts neither as valid nor as invalid, and its
``reason`` becomes the reason of the cells it leaves empty. The output has one row per
(method, country, metric): ``model, method, country, metric, value, ci_low, ci_high, n_valid,
n_invalid, reason`` (``reason``: why ``value`` is empty, where the scorer knows; else empty), with
an ``AVG`` row per method and metric.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from . import metrics
from .io import write_csv
from .methods import NO_PERSONA
from .parsing import parse_paper, parse_strict
from .survey import Survey

AVG = "AVG"
COLUMNS = ["model", "method", "country", "metric", "value", "ci_low", "ci_high", "n_valid", "n_invalid", "reason"]
NOT_ANSWERED = "not_answered"  # an answer record's status when it was never asked (untrained.py)
MIN_CORRELATION_COUNTRIES = 3  # metrics.matrix_correlation needs 3 country pairs: 3 countries

PAPER_SCORE = "paper_score"
JS = "js_similarity"
W1 = "wasserstein_similarity"
MARGIN = "own_vs_other_margin"
RANK = "own_rank"
IDENTIFIED = "identification_accuracy"
CROSS_CORRELATION = "cross_culture_correlation"

# kinds of country x country matrices (long format: kind, method, row, col, value)
PROMPTED_VS_SURVEY = "prompted_vs_survey"  # S[i, j]: answers as i scored on survey j
PERSONA_VS_PERSONA = "persona_vs_persona"  # C[i, j]: answers as i vs answers as j
REFERENCE = "reference"  # survey i vs survey j (the released country_similarity.json)
MATRIX_COLUMNS = ["kind", "method", "row", "col", "value"]


def _long(matrix: np.ndarray, countries: Sequence[str], kind: str, method: str = "") -> pd.DataFrame:
    n = len(countries)
    return pd.DataFrame({
        "kind": kind, "method": method,
        "row": np.repeat(countries, n), "col": np.tile(countries, n), "value": np.asarray(matrix).ravel(),
    })

BASELINE_UNIFORM = "baseline_uniform"
BASELINE_MAJORITY = "baseline_majority_{}"
BASELINE_AUTHORS_RANDOM = "baseline_random_authors"
AUTHORS_RANDOM_SEED = 42  # result_analysis_run_3.py: random.seed(42) at import


@dataclass
class ScoringSettings:
    n_boot: int = 1000
    seed: int = 0
    ci_level: float = 0.95
    n_uniform_draws: int = 200
    majority_baseline_country: str = "USA"
    authors_random_baseline: bool = False

    @classmethod
    def from_config(cls, scoring: dict) -> "ScoringSettings":
        """From the config's ``scoring`` section (keys as in schemas/config.schema.yaml)."""
        return cls(
            n_boot=scoring.get("n_boot", cls.n_boot),
            seed=scoring.get("seed", cls.seed),
            ci_level=scoring.get("ci_level", cls.ci_level),
            n_uniform_draws=scoring.get("uniform_draws", cls.n_uniform_draws),
            majority_baseline_country=scoring.get("majority_baseline", cls.majority_baseline_country),
            authors_random_baseline=scoring.get("authors_random_baseline", cls.authors_random_baseline),
        )


@dataclass
class PersonaAnswers:
    """One persona's answers aligned to the survey's questions (NaN = invalid or missing)."""

    paper: np.ndarray
    strict: np.ndarray
    dists: list  # per question: array over options, or None
    skipped: np.ndarray | None = None  # per question: never asked (NOT_ANSWERED), so not invalid either
    reason: str | None = None  # why no question was asked, when none was

    @property
    def n_paper_valid(self):
        return ~np.isnan(self.paper)


def align_answers(frame: pd.DataFrame, survey: Survey) -> PersonaAnswers:
    """Parse one persona's replies into arrays over ``survey.items``."""
    n = len(survey.items)
    paper, strict = np.full(n, np.nan), np.full(n, np.nan)
    dists: list = [None] * n
    skipped, reasons, n_asked = np.zeros(n, bool), [], 0
    has_choice = "choice" in frame.columns
    has_probs = "probs" in frame.columns
    has_status = "status" in frame.columns
    for rec in frame.itertuples(index=False):
        i = survey.index.get(rec.qid)
        if i is None:
            continue
        if has_status and rec.status == NOT_ANSWERED:
            skipped[i] = True
            reasons.append(getattr(rec, "reason", None) or "not answered")
            continue
        n_asked += 1
        item = survey.items[i]
        choice = getattr(rec, "choice", None) if has_choice else None
        if choice is not None and not pd.isna(choice):
            p = int(choice)  # generate mode: parse_paper's number, which may be no option (7 on 1-4)
            s = p if p in item.numbers else None
        else:
            reply = rec.reply if isinstance(rec.reply, str) else None
            p, s = parse_paper(reply), parse_strict(reply, item.numbers)
        paper[i] = np.nan if p is None else p
        strict[i] = np.nan if s is None else s
        probs = getattr(rec, "probs", None) if has_probs else None
        if probs is not None and not (isinstance(probs, float) and np.isnan(probs)):
            vec = np.asarray(probs, float)
            dists[i] = vec / vec.sum()
        elif s is not None:
            dists[i] = metrics.one_hot(s, item.first, item.n_options)
    return PersonaAnswers(paper, strict, dists, skipped, reasons[0] if reasons and not n_asked else None)


def _counts(valid: np.ndarray, has_survey: np.ndarray, skipped: np.ndarray | None = None) -> tuple[int, int]:
    invalid = ~valid & has_survey
    if skipped is not None:
        invalid &= ~skipped
    return int(np.sum(valid & has_survey)), int(np.sum(invalid))


def _dist_values(ans: PersonaAnswers, survey: Survey, country: str, fn) -> np.ndarray:
    out = np.full(len(survey.items), np.nan)
    for i, item in enumerate(survey.items):
        ref = survey.distribution(country, item.qid)
        if ref is not None and ans.dists[i] is not None:
            out[i] = fn(ans.dists[i], ref)
    return out


class _MethodScorer:
    """Scores one method's answers for all countries, with joint bootstrap CIs."""

    def __init__(self, survey: Survey, countries: Sequence[str], settings: ScoringSettings):
        self.survey, self.countries, self.s = survey, list(countries), settings
        self.weights = metrics.bootstrap_weights(len(survey.items), settings.n_boot, settings.seed)

    def ci(self, samples):
        return metrics.percentile_ci(samples, self.s.ci_level)

    def paper_parts(self, answers: np.ndarray, country: str):
        g = self.survey.majority[self.survey.row(country)]
        mask = ~(np.isnan(answers) | np.isnan(g))
        d2 = np.where(mask, (answers - g) ** 2, 0.0)
        m2 = np.where(mask, self.survey.max_dist**2, 0.0)
        return d2, m2

    @staticmethod
    def _paper_from_parts(num, den):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, 100.0 * (1.0 - np.sqrt(num) / np.sqrt(den)), np.nan)

    def score(self, per_country: dict[str, PersonaAnswers]) -> list[dict]:
        rows = []
        has_survey = {c: ~np.isnan(self.survey.majority[self.survey.row(c)]) for c in self.countries}
        # paper score: value and bootstrap per country, and the average over countries
        boots, values = [], []
        for c in self.countries:
            ans = per_country[c]
            d2, m2 = self.paper_parts(ans.paper, c)
            value = float(self._paper_from_parts(d2.sum(), m2.sum()))
            boot = self._paper_from_parts(self.weights @ d2, self.weights @ m2)
            nv, ni = _counts(~np.isnan(ans.paper), has_survey[c], ans.skipped)
            rows.append(self._row(PAPER_SCORE, c, value, boot, nv, ni, ans.reason))
            boots.append(boot)
            values.append(value)
        rows.append(self._avg_row(PAPER_SCORE, values, boots, rows))
        # distributional metrics: per-question similarity, averaged over questions
        for name, fn in ((JS, metrics.js_similarity), (W1, metrics.wasserstein_similarity)):
            rows += self.question_mean(
                name,
                {c: _dist_values(per_country[c], self.survey, c, fn) for c in self.countries},
                {c: _counts(~np.isnan(per_country[c].strict), has_survey[c], per_country[c].skipped)
                 for c in self.countries},
                {c: per_country[c].reason for c in self.countries},
            )
        return rows

    def question_mean(self, metric: str, values: dict[str, np.ndarray], counts: dict[str, tuple[int, int]],
                      reasons: dict[str, str | None] | None = None) -> list[dict]:
        """Rows of a per-question metric averaged over questions (NaN = not counted), per country
        and AVG, with the bootstrap over questions; ``counts``: (n_valid, n_invalid) per country;
        ``reasons``: why a country has no value, where known."""
        rows, boots, means = [], [], []
        for c in self.countries:
            v = values[c]
            mask = ~np.isnan(v)
            vz = np.where(mask, v, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot = (self.weights @ vz) / (self.weights @ mask)
            value = metrics.weighted_mean(v)
            rows.append(self._row(metric, c, value, boot, *counts[c], (reasons or {}).get(c)))
            boots.append(boot)
            means.append(value)
        rows.append(self._avg_row(metric, means, boots, rows))
        return rows

    def pluralism(self, per_country: dict[str, PersonaAnswers]) -> tuple[list[dict], pd.DataFrame]:
        """S[prompted as i, scored against j], the metrics read off it, and the cross-cultural
        matrix C[i, j] (the model's answers as i against its answers as j, the paper's figure 5),
        with its correlation to the survey's own country-to-country similarity."""
        cs = self.countries
        n = len(cs)
        num = np.zeros((n, n, self.s.n_boot))
        den = np.zeros((n, n, self.s.n_boot))
        value = np.zeros((n, n))
        cross = np.full((n, n), np.nan)
        for i, ci in enumerate(cs):
            for j, cj in enumerate(cs):
                d2, m2 = self.paper_parts(per_country[ci].paper, cj)
                value[i, j] = self._paper_from_parts(d2.sum(), m2.sum())
                num[i, j], den[i, j] = self.weights @ d2, self.weights @ m2
                cross[i, j] = metrics.paper_score(per_country[ci].paper, per_country[cj].paper, self.survey.max_dist)
        boot = self._paper_from_parts(num, den)  # n x n x B
        rows = []
        for name, fn in ((MARGIN, metrics.own_vs_other_margin), (RANK, metrics.own_rank), (IDENTIFIED, metrics.identified)):
            v = fn(value)
            b = np.stack([fn(boot[:, :, k]) for k in range(boot.shape[2])], axis=1)  # n x B
            start = len(rows)
            for k, c in enumerate(cs):
                ans = per_country[c]
                nv = int(np.sum(~np.isnan(ans.paper)))
                n_skipped = 0 if ans.skipped is None else int(ans.skipped.sum())
                rows.append(self._row(name, c, float(v[k]), b[k], nv, len(self.survey.items) - nv - n_skipped,
                                      ans.reason))
            rows.append(self._avg_row(name, list(v), list(b), rows[start:]))
        reference = self.reference_matrix()
        corr = metrics.matrix_correlation(cross, reference)
        n_valid = sum(r["n_valid"] for r in rows[:n])
        n_invalid = sum(r["n_invalid"] for r in rows[:n])
        rows.append(dict(country=AVG, metric=CROSS_CORRELATION, value=corr, ci_low=np.nan, ci_high=np.nan,
                         n_valid=n_valid, n_invalid=n_invalid,
                         reason=correlation_reason(per_country, cross) if np.isnan(corr) else ""))
        long = pd.concat([_long(value, cs, PROMPTED_VS_SURVEY), _long(cross, cs, PERSONA_VS_PERSONA)])
        return rows, long

    def reference_matrix(self) -> np.ndarray:
        cs = self.countries
        return np.array([[self.survey.similarity(a, b) for b in cs] for a in cs])

    def _row(self, metric, country, value, boot, n_valid, n_invalid, reason=None):
        """A table row; ``boot`` (the bootstrap samples, for statistics of several rows such as a
        mean over option orders) is dropped when the rows become a table (``COLUMNS``); ``reason``:
        why the value is empty, where known."""
        lo, hi = self.ci(boot) if not np.isnan(value) else (np.nan, np.nan)
        return dict(country=country, metric=metric, value=value, ci_low=lo, ci_high=hi, n_valid=n_valid,
                    n_invalid=n_invalid, boot=boot, reason=(reason or "") if np.isnan(value) else "")

    def _avg_row(self, metric, values, boots, country_rows):
        values = np.asarray(values, float)
        if np.all(np.isnan(values)):
            value, boot = float("nan"), np.full(self.s.n_boot, np.nan)
        else:
            value = float(np.nanmean(values))
            with warnings.catch_warnings():  # a resample where every country is NaN stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                boot = np.nanmean(np.vstack(boots), axis=0)
        # an average with no country at all has a reason when every country's is the same one
        reasons = {r.get("reason") for r in country_rows}
        return self._row(
            metric, AVG, value, boot, sum(r["n_valid"] for r in country_rows), sum(r["n_invalid"] for r in country_rows),
            reasons.pop() if len(reasons) == 1 else None,
        )


def correlation_reason(per_country: dict[str, PersonaAnswers], cross: np.ndarray | None = None) -> str:
    """Why the correlation of a model's country matrix (``cross``) with the survey's is undefined."""
    n = len(per_country)
    if n < MIN_CORRELATION_COUNTRIES:
        return f"a correlation needs at least {MIN_CORRELATION_COUNTRIES} countries ({n} here)"
    unasked = {c: a.reason for c, a in per_country.items() if a.reason}
    if n - len(unasked) < MIN_CORRELATION_COUNTRIES:
        why = "; ".join(f"{c}: {r}" for c, r in unasked.items())
        return (f"a correlation needs at least {MIN_CORRELATION_COUNTRIES} countries with answers "
                f"({n - len(unasked)} of {n}; {why})")
    if cross is not None:
        upper = np.asarray(cross, float)[np.triu_indices(n, k=1)]
        upper = upper[~np.isnan(upper)]
        if len(upper) >= 3 and np.std(upper) == 0:
            return "undefined: the model's answers are equally similar between every pair of countries"
    return "undefined: fewer than 3 country pairs with valid answers, or a matrix without variation"


def per_country_answers(frame: pd.DataFrame, survey: Survey, countries: Sequence[str], method: str = "") -> dict[str, PersonaAnswers]:
    """One method's answers per country: culture-unaware answers (persona ``NO_PERSONA``) are
    every country's; otherwise each country's own persona, which must be there."""
    personas = set(frame["persona"])
    if personas == {NO_PERSONA}:
        shared = align_answers(frame, survey)
        return {c: shared for c in countries}
    missing = [c for c in countries if c not in personas]
    if missing:
        raise ValueError(f"method {method!r} has no answers for {', '.join(missing)}")
    return {c: align_answers(frame[frame["persona"] == c], survey) for c in countries}


def _one_order(answers: pd.DataFrame) -> None:
    """An item answered in several option orders would be scored once, with whichever answer came
    last: such answers go through robustness.score_with_orders (or one order at a time)."""
    if "order" in answers.columns and answers["order"].nunique() > 1:
        raise ValueError(f"answers in several option orders ({', '.join(map(str, answers['order'].unique()))}): "
                         "score them with robustness.score_with_orders, or one order at a time")


def authors_random_answers(items: Sequence, seed: int = AUTHORS_RANDOM_SEED) -> dict[str, int]:
    """The authors' random baseline (``result_analysis_run_3.py`` with ``is_random = True``): after
    ``random.seed(42)``, one ``random.choice`` over each question's option numbers, in the order of
    the 259 evaluation items (``items``: all of them, in file order), one draw shared by every country."""
    import random

    rng = random.Random(seed)
    return {it.qid: rng.choice(it.numbers) for it in items}


def score_answers(
    answers: pd.DataFrame,
    survey: Survey,
    countries: Sequence[str],
    model: str,
    settings: ScoringSettings | None = None,
    baselines: bool = True,
    all_items: Sequence | None = None,
    keep_boot: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy alignment table and the country x country matrices in long format
    (``MATRIX_COLUMNS``): the survey reference and, per persona-conditioned method, S and C.
    ``all_items``: every evaluation item in file order, when ``survey`` holds a subset of them
    (the authors' random baseline draws over all of them)."""
    _one_order(answers)
    settings = settings or ScoringSettings()
    countries = [c for c in countries if survey.has_data(c)]
    scorer = _MethodScorer(survey, countries, settings)
    rows: list[dict] = []
    matrices = [_long(scorer.reference_matrix(), countries, REFERENCE)] if len(countries) > 1 else []
    for method, frame in answers.groupby("method", sort=False):
        personas = set(frame["persona"])
        per_country = per_country_answers(frame, survey, countries, method)
        method_rows = scorer.score(per_country)
        if personas != {NO_PERSONA} and len(countries) > 1:
            plural_rows, long = scorer.pluralism(per_country)
            method_rows += plural_rows
            matrices.append(long.assign(method=method))
        rows += [dict(model=model, method=method, **r) for r in method_rows]
    if baselines:
        rows += [dict(model=model, **r) for r in baseline_rows(survey, countries, scorer, settings, all_items)]
    table = pd.DataFrame(rows, columns=COLUMNS + (["boot"] if keep_boot else []))
    return table, pd.concat(matrices, ignore_index=True) if matrices else pd.DataFrame(columns=MATRIX_COLUMNS)


def _choice_answers(choices: np.ndarray, survey: Survey) -> PersonaAnswers:
    dists = [
        None if np.isnan(a) else metrics.one_hot(int(a), it.first, it.n_options) for a, it in zip(choices, survey.items)
    ]
    return PersonaAnswers(choices.copy(), choices.copy(), dists)


def _one_hot_table(survey: Survey, country: str, fn) -> list[np.ndarray | None]:
    """Per question: fn(one-hot answer k, survey distribution) for every option k."""
    table = []
    for it in survey.items:
        ref = survey.distribution(country, it.qid)
        table.append(
            None if ref is None else np.array([fn(metrics.one_hot(n, it.first, it.n_options), ref) for n in it.numbers])
        )
    return table


def baseline_rows(survey: Survey, countries: Sequence[str], scorer: _MethodScorer, settings: ScoringSettings,
                  all_items: Sequence | None = None) -> list[dict]:
    """Reference points: uniform random answers (mean over seeded draws, CI = spread over the
    draws), one country's majority answers given for every country (bootstrap CI) and, with
    ``settings.authors_random_baseline``, the authors' one random draw (``authors_random_answers``)."""
    rows = []
    draws = metrics.uniform_random_answers(survey.first, survey.n_options, settings.n_uniform_draws, settings.seed)
    cols = np.arange(len(survey.items))
    for name in (PAPER_SCORE, JS, W1):
        per_country = []
        for c in countries:
            g = survey.majority[survey.row(c)]
            has = ~np.isnan(g)
            if name == PAPER_SCORE:
                d2 = np.where(has, (draws - g) ** 2, 0.0).sum(axis=1)
                vals = 100.0 * (1.0 - np.sqrt(d2) / np.sqrt(np.sum(np.where(has, survey.max_dist**2, 0.0))))
            else:
                fn = metrics.js_similarity if name == JS else metrics.wasserstein_similarity
                table = _one_hot_table(survey, c, fn)
                idx = (draws - survey.first).astype(int)
                per_q = np.array(
                    [[t[idx[d, q]] if t is not None else np.nan for q, t in zip(cols, table)] for d in range(len(draws))]
                )
                vals = np.nanmean(per_q, axis=1)
            per_country.append(vals)
            lo, hi = metrics.percentile_ci(vals, settings.ci_level)
            rows.append(dict(method=BASELINE_UNIFORM, country=c, metric=name, value=float(vals.mean()),
                             ci_low=lo, ci_high=hi, n_valid=int(has.sum()), n_invalid=0))
        avg = np.mean(per_country, axis=0)
        lo, hi = metrics.percentile_ci(avg, settings.ci_level)
        rows.append(dict(method=BASELINE_UNIFORM, country=AVG, metric=name, value=float(avg.mean()), ci_low=lo,
                         ci_high=hi, n_valid=sum(r["n_valid"] for r in rows[-len(countries):]), n_invalid=0))
    ref = settings.majority_baseline_country
    if ref in survey.countries and survey.has_data(ref):
        fixed = _choice_answers(survey.majority[survey.row(ref)], survey)
        for r in scorer.score({c: fixed for c in countries}):
            rows.append(dict(r, method=BASELINE_MAJORITY.format(ref)))
    if settings.authors_random_baseline:
        drawn = authors_random_answers(all_items if all_items is not None else survey.items)
        fixed = _choice_answers(np.array([drawn.get(q, np.nan) for q in survey.qids], float), survey)
        for r in scorer.score({c: fixed for c in countries}):
            rows.append(dict(r, method=BASELINE_AUTHORS_RANDOM))
    return rows


def wide_matrix(matrices: pd.DataFrame, kind: str, method: str = "") -> pd.DataFrame:
    """One matrix of the long table as rows x columns, in the order the countries came."""
    sub = matrices[(matrices.kind == kind) & (matrices.method == method)]
    order = list(dict.fromkeys(sub["row"]))
    wide = sub.pivot(index="row", columns="col", values="value").loc[order, order]
    wide.index.name, wide.columns.name = "prompted_as", "scored_against"
    return wide


def write_alignment(table: pd.DataFrame, matrices: pd.DataFrame, table_path, matrices_path, wide_paths) -> None:
    """The tidy table, the long matrices, and S (prompted as x scored against) per method, wide."""
    for path in wide_paths:
        method = Path(path).stem
        if not ((matrices.kind == PROMPTED_VS_SURVEY) & (matrices.method == method)).any():
            raise ValueError(f"no country matrix was computed for {method}")
        write_csv(path, wide_matrix(matrices, PROMPTED_VS_SURVEY, method).round(4), index=True)
    write_csv(matrices_path, matrices)
    write_csv(table_path, table)


TOPIC_COLUMNS = ["model", "method", "country", "topic", "topic_name", "metric", "value", "n_valid", "n_invalid",
                 "reason"]


def topic_scores(answers: pd.DataFrame, survey: Survey, countries: Sequence[str], model: str) -> pd.DataFrame:
    """The paper score of each method per (country, WVS topic), and per topic averaged over the
    countries (``AVG``). A topic with no valid answer for a country is NaN, with its counts."""
    from .wvs import TOPIC_NAMES

    _one_order(answers)
    countries = [c for c in countries if survey.has_data(c)]
    topics = np.array([-1 if it.topic is None else it.topic for it in survey.items])
    rows = []
    for method, frame in answers.groupby("method", sort=False):
        if set(frame["persona"]) == {NO_PERSONA}:
            shared = align_answers(frame, survey)
            per_country = {c: shared for c in countries}
        else:
            per_country = {c: align_answers(frame[frame["persona"] == c], survey) for c in countries}
        for t in sorted(set(topics) - {-1}):
            in_topic = topics == t
            values, n_valid, n_invalid = [], 0, 0
            for c in countries:
                g = survey.majority[survey.row(c)]
                ans = per_country[c]
                a = ans.paper
                weights = in_topic.astype(float)
                value = metrics.paper_score(a, g, survey.max_dist, weights=weights)
                nv, ni = _counts(~np.isnan(a), in_topic & ~np.isnan(g), ans.skipped)
                reason = (ans.reason or "") if np.isnan(value) else ""
                rows.append(dict(model=model, method=method, country=c, topic=int(t), topic_name=TOPIC_NAMES[t],
                                 metric=PAPER_SCORE, value=value, n_valid=nv, n_invalid=ni, reason=reason))
                values.append((value, reason))
                n_valid, n_invalid = n_valid + nv, n_invalid + ni
            finite = [v for v, _ in values if not np.isnan(v)]
            reasons = {r for _, r in values}
            rows.append(dict(model=model, method=method, country=AVG, topic=int(t), topic_name=TOPIC_NAMES[t],
                             metric=PAPER_SCORE, value=float(np.mean(finite)) if finite else float("nan"),
                             n_valid=n_valid, n_invalid=n_invalid,
                             reason=reasons.pop() if not finite and len(reasons) == 1 else ""))
    return pd.DataFrame(rows, columns=TOPIC_COLUMNS)


# --- the scoring jobs ----------------------------------------------------------------------------


def answers_frame(paths: Sequence[str]) -> pd.DataFrame:
    """Evaluation answer files (JSONL, one per persona) as one long frame with a ``qid`` column."""
    from . import io

    frame = pd.DataFrame([r for p in paths for r in io.read_jsonl(p)])
    return frame.rename(columns={"key": "qid"})


RUN_KEYS = ["model", "method", "order", "country", "metric"]


def summarise_runs(table: pd.DataFrame, ci_level: float = 0.95) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The mean over evaluation runs of every (method, order, country, metric), with its CI from
    the bootstrap of the mean: every run is scored on the same resampled questions (the bootstrap
    weights depend on the item set and seed only), so averaging the runs' bootstrap samples gives
    the samples of the run-mean, a CI over questions on the run-averaged scores. ``run_sd``: the
    spread between runs; ``n_runs``: how many. Also returns the paper score's run-mean bootstrap
    samples by ``boot_key`` (the paired comparisons between variants use them)."""
    rows, boots = [], {}
    for key, group in table.groupby(RUN_KEYS, sort=False, dropna=False):
        values = group["value"].to_numpy(float)
        finite = ~np.isnan(values)
        samples = [b for b in group["boot"] if isinstance(b, np.ndarray)]
        boot = None
        if finite.any() and len(samples) == len(group):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                boot = np.nanmean(np.vstack(samples), axis=0)
        value = float(values[finite].mean()) if finite.any() else float("nan")
        lo, hi = metrics.percentile_ci(boot, ci_level) if boot is not None else (
            (float(group["ci_low"].mean()), float(group["ci_high"].mean())) if finite.any() else (np.nan, np.nan))
        reasons = [r for r in group["reason"] if isinstance(r, str) and r]
        rows.append(dict(zip(RUN_KEYS, key), value=value, ci_low=lo, ci_high=hi,
                         n_valid=int(group["n_valid"].sum()), n_invalid=int(group["n_invalid"].sum()),
                         n_runs=int(group["run"].nunique()), run_sd=float(np.std(values[finite], ddof=1))
                         if finite.sum() > 1 else float("nan"), reason=reasons[0] if reasons and not finite.any() else ""))
        if boot is not None and key[4] == PAPER_SCORE:
            boots[boot_key(key[1], key[2], key[3])] = boot.astype(np.float32)
    return pd.DataFrame(rows), boots


def boot_key(method: str, order: str, country: str) -> str:
    return f"{method}|{order}|{country}"


def score_variant_files(model: str, variant: str, answer_paths: Sequence[str], survey_files, countries: Sequence[str],
                        scoring: dict, table_out: str, matrices_out: str, topics_out: str, order_seed: int = 0,
                        boot_out: str | None = None) -> None:
    """One variant's answers (every method, option order, run and persona) scored into its part of
    the tidy tables: the alignment rows per order (and the order-robustness rows), each the mean
    over evaluation runs with a CI over questions (``summarise_runs``), the country matrices and
    the per-topic scores (original order); ``boot_out``: the paper score's bootstrap samples (npz),
    for the paired comparisons of ``aggregate_alignment_files``. Each method is scored on the items
    it was asked (``evaluation.max_items``, ``max_items_by_method``)."""
    import logging

    from .io import atomic_path
    from .orders import ORIGINAL
    from .robustness import score_with_orders, with_orders

    full = Survey.load(*survey_files)
    answers = with_orders(answers_frame(answer_paths))
    settings = ScoringSettings.from_config(scoring)
    # each method on the items it was asked (evaluation.max_items, max_items_by_method); the reference
    # baselines once, on the largest item set
    by_method = {m: f for m, f in answers.groupby("method", sort=False)}
    widest = max(by_method, key=lambda m: by_method[m]["qid"].nunique())
    tables, matrices, topics = [], [], []
    for method, frame in sorted(by_method.items(), key=lambda kv: kv[0] != widest):  # the widest first
        asked = set(frame["qid"])
        survey = Survey([it for it in full.items if it.qid in asked], full.countries, full.dists)
        logging.getLogger(__name__).info("%s: scoring %d answers on %d items", method, len(frame), len(survey.items))
        table, mats = score_with_orders(frame, survey, countries, model, settings, order_seed,
                                        baselines=variant == "base" and method == widest, all_items=full.items,
                                        keep_boot=True)
        tables.append(table)
        matrices.append(mats)
        original = frame[frame.order == ORIGINAL].drop(columns="order")
        topics += [topic_scores(f, survey, countries, model).assign(run=run) for run, f in original.groupby("run")]
    summary, boots = summarise_runs(pd.concat(tables, ignore_index=True), settings.ci_level)
    matrices = pd.concat(matrices, ignore_index=True)
    # the survey's own country matrix once, on the widest item set (every method's scoring adds it)
    reference = matrices[matrices.kind == REFERENCE]
    matrices = pd.concat([matrices[matrices.kind != REFERENCE],
                          reference.drop_duplicates(subset=["row", "col", "order", "run"])], ignore_index=True)
    write_csv(table_out, summary.assign(variant=variant))
    write_csv(matrices_out, matrices.assign(variant=variant))
    write_csv(topics_out, pd.concat(topics, ignore_index=True).assign(variant=variant) if topics else
              pd.DataFrame(columns=["variant", "run"]))
    if boot_out is not None:
        with atomic_path(boot_out) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **boots)


def comparison_rows(table: pd.DataFrame, boots: dict[str, dict[str, np.ndarray]], pairs, ci_level: float = 0.95) -> pd.DataFrame:
    """Paired differences in the paper score, (variant, method) minus (base variant, base method),
    per option order and country (and AVG), as tidy alignment rows of the first variant with metric
    ``design.delta_metric(base variant, base method)``. The CI resamples the questions and keeps
    both answers to a question together (the same bootstrap weights for every variant: same items,
    same seed), so it is the CI of the difference itself, narrower than two overlapping CIs
    suggest. ``boots``: variant -> the ``summarise_runs`` samples; ``pairs``: ``design.comparisons``."""
    from .design import delta_metric

    # sorted: lookups by a partial key stay fast (countries, then continents, arrive unsorted)
    values = table[table.metric == PAPER_SCORE].set_index(["variant", "method", "order", "country"]).sort_index()
    rows = []
    for (variant, method), (base_variant, base_method) in pairs:
        if variant not in boots or base_variant not in boots:
            continue
        mine = values.loc[(variant, method)] if (variant, method) in values.index.droplevel([2, 3]) else None
        base = values.loc[(base_variant, base_method)] if (base_variant, base_method) in values.index.droplevel([2, 3]) else None
        if mine is None or base is None:
            continue
        for (order, country), row in mine.iterrows():
            if (order, country) not in base.index:
                continue
            other = base.loc[(order, country)]
            a, b = boots[variant].get(boot_key(method, order, country)), boots[base_variant].get(
                boot_key(base_method, order, country))
            value = float(row["value"] - other["value"])
            ok = a is not None and b is not None and np.isfinite(value)
            lo, hi = metrics.percentile_ci(a.astype(float) - b.astype(float), ci_level) if ok else (np.nan, np.nan)
            reason = "" if np.isfinite(value) else (row.get("reason") or other.get("reason") or "a score is missing")
            rows.append(dict(model=row["model"], variant=variant, method=method, order=order, country=country,
                             metric=delta_metric(base_variant, base_method), value=value, ci_low=lo, ci_high=hi,
                             n_valid=int(min(row["n_valid"], other["n_valid"])),
                             n_invalid=int(row["n_invalid"] + other["n_invalid"]), n_runs=int(row["n_runs"]),
                             run_sd=float("nan"), reason=reason if isinstance(reason, str) else ""))
    return pd.DataFrame(rows, columns=list(table.columns))


def continent_rows(table: pd.DataFrame, boots: dict[str, dict[str, np.ndarray]], continents: Mapping[str, Sequence[str]],
                   ci_level: float = 0.95) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """Per continent (``continents``: name -> country codes), the paper score averaged over its
    countries with a score, as AVG is over all of them: one row per (variant, method, order) in
    ``table`` (the ``summarise_runs`` rows of every variant), its CI from the mean of those
    countries' run-averaged bootstrap samples (the same resampled questions for every country).
    Also returns those samples by variant and ``boot_key``, so that ``comparison_rows`` pairs
    continents as it pairs countries. ``run_sd`` is not defined for these rows (NaN)."""
    countries = set(table["country"])
    for name in continents:
        if name == AVG or name in countries:
            raise ValueError(f"continent {name!r} is also a country or {AVG} in the alignment table")
    paper = table[table.metric == PAPER_SCORE].set_index(["variant", "method", "order", "country"])
    rows, out_boots = [], {}
    for (variant, method, order), group in paper.groupby(level=[0, 1, 2], sort=False):
        group = group.droplevel([0, 1, 2])
        variant_boots = boots.get(variant, {})
        for name, codes in continents.items():
            here = group.loc[[c for c in codes if c in group.index]]
            if here.empty:
                continue
            scored = here[np.isfinite(here["value"].to_numpy(float))]
            samples = [variant_boots.get(boot_key(method, order, c)) for c in scored.index]
            value, lo, hi = float("nan"), float("nan"), float("nan")
            if not scored.empty:
                value = float(scored["value"].mean())
                if all(b is not None for b in samples):
                    with warnings.catch_warnings():  # a resample where every country is NaN stays NaN
                        warnings.simplefilter("ignore", RuntimeWarning)
                        boot = np.nanmean(np.vstack(samples).astype(float), axis=0)
                    lo, hi = metrics.percentile_ci(boot, ci_level)
                    out_boots.setdefault(variant, {})[boot_key(method, order, name)] = boot.astype(np.float32)
            reasons = {r for r in here["reason"] if isinstance(r, str) and r}
            reason = "" if np.isfinite(value) else (reasons.pop() if len(reasons) == 1 else
                                                    f"no country of {name} ({', '.join(here.index)}) has a score")
            rows.append(dict(model=here["model"].iloc[0], variant=variant, method=method, order=order, country=name,
                             metric=PAPER_SCORE, value=value, ci_low=lo, ci_high=hi,
                             n_valid=int(here["n_valid"].sum()), n_invalid=int(here["n_invalid"].sum()),
                             n_runs=int(here["n_runs"].max()), run_sd=float("nan"), reason=reason))
    return pd.DataFrame(rows, columns=list(table.columns)), out_boots


def aggregate_alignment_files(table_paths: Sequence[str], matrix_paths: Sequence[str], topic_paths: Sequence[str],
                              table_out: str, matrices_out: str, topics_out: str,
                              boot_paths: Mapping[str, str] | None = None, ci_level: float = 0.95,
                              continents: Mapping[str, Sequence[str]] | None = None) -> None:
    """All variants of a model in one table each: the alignment rows (already the mean over runs,
    ``summarise_runs``), per continent (``continent_rows``; ``continents``: name -> country codes)
    and the paired comparisons between variants (``comparison_rows``, from ``boot_paths``:
    variant -> its bootstrap samples), the country matrices and the per-topic scores averaged
    over runs."""
    import logging

    from .design import comparisons
    from .io import read_csv

    keys = ["model", "variant", "method", "order", "country", "metric"]
    numbers = ["value", "ci_low", "ci_high", "n_valid", "n_invalid", "n_runs", "run_sd"]
    table = pd.concat([read_csv(p, required=keys, numeric=numbers) for p in table_paths], ignore_index=True)
    if boot_paths:
        boots = {}
        for variant, path in boot_paths.items():
            with np.load(path) as data:
                boots[variant] = {k: data[k] for k in data.files}
        if continents:
            by_continent, continent_boots = continent_rows(table, boots, continents, ci_level)
            table = pd.concat([table, by_continent], ignore_index=True)
            for variant, samples in continent_boots.items():
                boots.setdefault(variant, {}).update(samples)
        present = {(v, m) for v, m in zip(table["variant"], table["method"])}
        table = pd.concat([table, comparison_rows(table, boots, comparisons(present), ci_level)], ignore_index=True)
    write_csv(table_out, table)
    mats = pd.concat([read_csv(p, required=["variant", "kind", "method", "order", "row", "col"],
                               numeric=["value", "run"]) for p in matrix_paths], ignore_index=True)
    mats["method"] = mats["method"].fillna("")
    mean = mats.groupby(["variant", "kind", "method", "order", "row", "col"], sort=False)["value"].mean().reset_index()
    write_csv(matrices_out, mean)
    topic_keys = ["model", "variant", "method", "country", "topic", "topic_name", "metric"]  # original order only
    topics = pd.concat([read_csv(p, required=topic_keys, numeric=["value", "n_valid", "n_invalid", "run"])
                        for p in topic_paths], ignore_index=True)
    by_topic = topics.groupby(topic_keys, sort=False).agg(
        value=("value", "mean"), n_valid=("n_valid", "sum"), n_invalid=("n_invalid", "sum"), n_runs=("run", "nunique"),
        reason=("reason", "first"),
    ).reset_index()
    write_csv(topics_out, by_topic)
    for row in table[(table.country == AVG) & (table.metric == PAPER_SCORE)].itertuples():
        logging.getLogger(__name__).info("%-40s %-32s %-9s paper_score %.2f [%.2f, %.2f]", row.variant, row.method,
                                         row.order, row.value, row.ci_low, row.ci_high)
