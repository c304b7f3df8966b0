"""Scores averaged over runs get a CI over questions on the run-averaged scores, and every paper
comparison (tuned vs base with the same prompt, joint vs specific vs CCT, CRQPC vs its controls) a
paired bootstrap CI of the difference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from culturespa import design
from culturespa.design import AVG, BASE, CULTURESPA, P1, SPECIFIC
from culturespa.robustness import score_with_orders
from culturespa.scoring import PAPER_SCORE, ScoringSettings, comparison_rows, continent_rows, summarise_runs
from culturespa.survey import Survey

COUNTRIES = ["USA", "NGA", "CHN"]
SETTINGS = ScoringSettings(n_boot=400, n_uniform_draws=20)


@pytest.fixture(scope="module")
def small(survey):
    return Survey(survey.items[:60], survey.countries, survey.dists)


def answers(survey, shift, runs=(0,), noise=None):
    """Every country's P1 answers: its survey majority, moved by ``shift`` where ``noise`` says."""
    rows = []
    for run in runs:
        for c in COUNTRIES:
            for i, item in enumerate(survey.items):
                g = survey.dists[c][item.qid].majority if item.qid in survey.dists[c] else item.first
                move = shift if noise is None else int(noise[run][i])
                choice = int(np.clip(g + move, item.first, item.first + item.n_options - 1))
                rows.append({"method": P1, "persona": c, "qid": item.qid, "reply": str(choice), "choice": choice,
                             "run": run})
    return pd.DataFrame(rows)


def scored(survey, frame):
    table, _ = score_with_orders(frame, survey, COUNTRIES, "m", SETTINGS, baselines=False, keep_boot=True)
    return summarise_runs(table)


def base_and_tuned(survey, seed):
    """A base model one step off on about half the questions and a tuned one that fixes 8 of them:
    each one's scores and bootstrap samples, and both in one alignment table."""
    rng = np.random.default_rng(seed)
    common = rng.integers(-1, 2, size=len(survey.items))
    fixed = common.copy()
    fixed[np.flatnonzero(common)[:8]] = 0
    base, base_boot = scored(survey, answers(survey, 0, noise={0: common}))
    tuned, tuned_boot = scored(survey, answers(survey, 0, noise={0: fixed}))
    table = pd.concat([base.assign(variant=BASE), tuned.assign(variant=CULTURESPA)], ignore_index=True)
    return base, base_boot, tuned, tuned_boot, table


def test_identical_runs_keep_the_single_run_ci(small):
    one, _ = scored(small, answers(small, 1))
    two, _ = scored(small, answers(small, 1, runs=(0, 1)))
    a = one[(one.metric == PAPER_SCORE) & (one.country == AVG)].iloc[0]
    b = two[(two.metric == PAPER_SCORE) & (two.country == AVG)].iloc[0]
    assert b.n_runs == 2 and b.run_sd == 0
    assert (b.value, b.ci_low, b.ci_high) == pytest.approx((a.value, a.ci_low, a.ci_high))


def test_runs_that_differ_average_their_bootstrap_samples(small):
    rng = np.random.default_rng(0)
    noise = {r: rng.integers(-1, 2, size=len(small.items)) for r in (0, 1)}
    both, _ = scored(small, answers(small, 0, runs=(0, 1), noise=noise))
    runs = [scored(small, answers(small, 0, runs=(r,), noise={r: noise[r]}))[0] for r in (0, 1)]
    pick = lambda t: t[(t.metric == PAPER_SCORE) & (t.country == "USA")].iloc[0]  # noqa: E731
    avg = pick(both)
    assert avg.value == pytest.approx(np.mean([pick(t).value for t in runs]))
    assert avg.run_sd == pytest.approx(np.std([pick(t).value for t in runs], ddof=1))
    assert avg.ci_low < avg.value < avg.ci_high


def test_paired_ci_of_a_difference(small):
    """Both models share most of their errors (one step off on about half the questions); the tuned
    one fixes a few. Each score's CI is wide, but the paired CI of the difference is narrow and
    excludes 0, as resampling questions with both answers together must give."""
    base, base_boot, tuned, tuned_boot, table = base_and_tuned(small, seed=3)
    rows = comparison_rows(table, {BASE: base_boot, CULTURESPA: tuned_boot}, [((CULTURESPA, P1), (BASE, P1))])
    delta = rows[(rows.country == AVG)].iloc[0]
    assert delta.metric == design.delta_metric(BASE, P1) and delta.variant == CULTURESPA
    b = base[(base.metric == PAPER_SCORE) & (base.country == AVG)].iloc[0]
    t = tuned[(tuned.metric == PAPER_SCORE) & (tuned.country == AVG)].iloc[0]
    assert delta.value == pytest.approx(t.value - b.value) and delta.value > 0
    assert 0 < delta.ci_low <= delta.value <= delta.ci_high
    assert t.ci_low < b.ci_high  # the two scores' own CIs overlap
    assert delta.ci_high - delta.ci_low < 0.5 * min(b.ci_high - b.ci_low, t.ci_high - t.ci_low)
    # the same answers on both sides: a difference of exactly 0, CI [0, 0]
    same = comparison_rows(pd.concat([base.assign(variant=BASE), base.assign(variant=SPECIFIC)]),
                           {BASE: base_boot, SPECIFIC: base_boot}, [((SPECIFIC, P1), (BASE, P1))])
    assert (same.value == 0).all() and (same.ci_low == 0).all() and (same.ci_high == 0).all()


def test_a_continent_averages_its_countries_and_pairs_like_a_country(small):
    base, base_boot, tuned, tuned_boot, table = base_and_tuned(small, seed=5)
    boots = {BASE: base_boot, CULTURESPA: tuned_boot}
    rows, samples = continent_rows(table, boots, {"America": ["USA"], "Africa and Asia": ["NGA", "CHN"]})
    pick = lambda t, v, c: t[(t.variant == v) & (t.metric == PAPER_SCORE) & (t.country == c)].iloc[0]  # noqa: E731
    two = pick(rows, BASE, "Africa and Asia")
    nga, chn = pick(table, BASE, "NGA"), pick(table, BASE, "CHN")
    assert two.value == pytest.approx((nga.value + chn.value) / 2) and two.n_valid == nga.n_valid + chn.n_valid
    assert two.ci_low < two.value < two.ci_high
    one, usa = pick(rows, BASE, "America"), pick(table, BASE, "USA")  # one country: its own score and CI
    assert (one.value, one.ci_low, one.ci_high) == pytest.approx((usa.value, usa.ci_low, usa.ci_high), abs=1e-3)
    # the comparisons read the continents' samples as they read the countries'
    for variant, extra in samples.items():
        boots[variant].update(extra)
    delta = comparison_rows(pd.concat([table, rows], ignore_index=True), boots, [((CULTURESPA, P1), (BASE, P1))])
    d = delta[delta.country == "Africa and Asia"].iloc[0]
    assert d.value == pytest.approx(pick(rows, CULTURESPA, "Africa and Asia").value - two.value) and d.value > 0
    assert d.ci_low <= d.value <= d.ci_high and d.ci_high - d.ci_low < two.ci_high - two.ci_low
    with pytest.raises(ValueError, match="also a country"):
        continent_rows(table, boots, {"USA": ["USA"]})


def test_the_paper_comparisons_among_present_cells():
    present = {(BASE, P1), (BASE, "self_alignment"), (CULTURESPA, P1), (SPECIFIC, P1),
               (design.fraction_variant(30), P1), (CULTURESPA, "culture_aware_self_alignment")}
    pairs = design.comparisons(present)
    assert ((CULTURESPA, P1), (BASE, P1)) in pairs and ((SPECIFIC, P1), (BASE, P1)) in pairs
    assert ((design.fraction_variant(30), P1), (BASE, P1)) in pairs
    assert ((CULTURESPA, P1), (SPECIFIC, P1)) in pairs
    # no base answers with P1+P3 here: nothing to compare that cell with
    assert not [p for p in pairs if p[0] == (CULTURESPA, "culture_aware_self_alignment")]
