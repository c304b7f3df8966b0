import math

import numpy as np
import pandas as pd
import pytest

from culturespa.orders import MEAN, ORIGINAL, PERMUTED, REVERSED, map_record, option_order
from culturespa.robustness import (
    ANSWER_ENTROPY, CONSISTENCY, FIRST_SHARE, LAST_SHARE, NORMALISED, ORDER_COLUMNS, SURVEY_ENTROPY,
    SURVEY_FIRST_SHARE, SURVEY_LAST_SHARE, order_scores, score_with_orders,
)
from culturespa.metrics import normalised_entropy
from culturespa.scoring import AVG, NO_PERSONA, ScoringSettings, score_answers
from culturespa.survey import Survey
from culturespa.wvs import Distribution, Item

FAST = ScoringSettings(n_boot=200, n_uniform_draws=200)


def dist(shares, first):
    shares = np.asarray(shares, float)
    return Distribution(shares / shares.sum(), 0.0, int(np.argmax(shares)) + first)


@pytest.fixture
def survey():
    """One-based items of 4, 2 and 10 options and a zero-based one; BBB has no data for Q94."""
    items = [Item("Q1", "a", ("w", "x", "y", "z")), Item("Q2", "b", ("x", "y")),
             Item("Q3", "c", tuple("abcdefghij")), Item("Q94", "d", ("n", "m", "o"), first=0)]
    dists = {
        "AAA": {"Q1": dist([0.7, 0.2, 0.1, 0], 1), "Q2": dist([0.4, 0.6], 1), "Q3": dist(np.arange(1, 11), 1),
                "Q94": dist([0.5, 0.3, 0.2], 0)},
        "BBB": {"Q1": dist([0, 0.1, 0.2, 0.7], 1), "Q2": dist([0.9, 0.1], 1), "Q3": dist(np.arange(10, 0, -1), 1)},
    }
    return Survey(items, ["AAA", "BBB"], dists)


def answer_frame(survey, answer, orders=(ORIGINAL, REVERSED), personas=("AAA", "BBB"), method="m", seed=0,
                 runs=(None,), order_seed=0):
    """A model's records mapped back: ``answer(item, mapping, persona, run)`` gives the displayed
    number (generate mode) or the distribution over the displayed labels (logprob mode)."""
    rows = []
    for run in runs:
        for order in orders:
            for persona in personas:
                for item in survey.items:
                    mapping = option_order(item, order, order_seed)
                    said = answer(item, mapping, persona, run)
                    if isinstance(said, list):
                        rec = {"key": item.qid, "choice": mapping.numbers[int(np.argmax(said))], "probs": said}
                    else:
                        rec = {"key": item.qid, "choice": said, "probs": None}
                    rec = map_record({**rec, "reply": str(rec["choice"])}, mapping, seed=seed, choice="argmax")
                    rows.append({"method": method, "persona": persona, "qid": rec.pop("key"), **rec,
                                 **({"run": run} if run is not None else {})})
    return pd.DataFrame(rows)


def get(table, metric, order, country=AVG, method="m"):
    rows = table[(table.metric == metric) & (table.order == order) & (table.country == country)
                 & (table.method == method)]
    assert len(rows) == 1, (metric, order, country, len(rows))
    return rows.iloc[0]


def test_always_answering_1_is_inconsistent_and_first_option_biased(survey):
    """The issue's acceptance test: a model that always answers "1" (on one-based items of 2, 4
    and 10 options) picks the first listed option every time, so the reversed order maps it to
    the other end of the scale: consistency 0, first-option share 1.0."""
    one_based = Survey(survey.items[:3], survey.countries, survey.dists)
    table = order_scores(answer_frame(one_based, lambda *_: 1), one_based, ["AAA", "BBB"], "x", FAST)
    assert list(table.columns) == ORDER_COLUMNS
    assert set(table.order) == {ORIGINAL, REVERSED, MEAN}
    for country in ("AAA", "BBB", AVG):
        for order in (REVERSED, MEAN):
            row = get(table, CONSISTENCY, order, country)
            assert (row.value, row.ci_low, row.ci_high) == (0.0, 0.0, 0.0)
            assert row.n_valid == 3 and row.n_invalid == 0 or country == AVG
        for order in (ORIGINAL, REVERSED, MEAN):
            assert get(table, FIRST_SHARE, order, country).value == 1.0
            assert get(table, LAST_SHARE, order, country).value == 0.0
    assert not (table.metric == CONSISTENCY).any() or ORIGINAL not in set(table[table.metric == CONSISTENCY].order)
    # the survey's share of the option listed first: the first option in original order, the last reversed
    aaa = [d.shares for d in survey.dists["AAA"].values()][:3]
    assert get(table, SURVEY_FIRST_SHARE, ORIGINAL, "AAA").value == pytest.approx(np.mean([s[0] for s in aaa]))
    assert get(table, SURVEY_FIRST_SHARE, REVERSED, "AAA").value == pytest.approx(np.mean([s[-1] for s in aaa]))
    assert get(table, SURVEY_LAST_SHARE, ORIGINAL, "AAA").value == get(table, SURVEY_FIRST_SHARE, REVERSED, "AAA").value
    # answering 1 = the first option in original order, the last one reversed: different scores
    assert get(table, "paper_score", ORIGINAL, "BBB").value != get(table, "paper_score", REVERSED, "BBB").value


def test_a_zero_based_item_keeps_its_numbers(survey):
    """Answering the first listed number (0 on the zero-based item, 1 elsewhere) is the first
    option in every order; answering "1" on the zero-based item is its middle option, the same
    option whichever way its three options are listed."""
    first_listed = answer_frame(survey, lambda item, mapping, *_: mapping.numbers[0], personas=("AAA",))
    assert set(first_listed[first_listed.qid == "Q94"].displayed_choice) == {0}
    table = order_scores(first_listed, survey, ["AAA"], "x", FAST)
    assert get(table, FIRST_SHARE, REVERSED, "AAA").value == 1.0
    assert get(table, CONSISTENCY, REVERSED, "AAA").value == 0.0
    ones = answer_frame(survey, lambda *_: 1, personas=("AAA",))
    q94 = ones[ones.qid == "Q94"]
    assert list(q94.choice) == [1, 1] and list(q94.position) == [1, 1]
    table = order_scores(ones, survey, ["AAA"], "x", FAST)
    assert get(table, CONSISTENCY, REVERSED, "AAA").value == pytest.approx(1 / 4)  # Q94 only


def test_an_order_invariant_model_is_consistent(survey):
    """A model that gives each country's majority option wherever it is listed: consistency 1 in
    every order, the same scores in every order and their mean, normalised score 100."""
    def majority(item, mapping, persona, run):
        d = survey.dists[persona].get(item.qid)
        return mapping.displayed_number(d.majority) if d else mapping.numbers[0]

    orders = (ORIGINAL, REVERSED, PERMUTED)
    table = order_scores(answer_frame(survey, majority, orders), survey, ["AAA", "BBB"], "x", FAST, order_seed=5)
    for order in (REVERSED, PERMUTED, MEAN):
        assert get(table, CONSISTENCY, order).value == 1.0
    for order in (*orders, MEAN):
        assert get(table, "paper_score", order).value == pytest.approx(100.0)
        assert get(table, NORMALISED, order).value == pytest.approx(100.0)
        assert get(table, "js_similarity", order).value == pytest.approx(get(table, "js_similarity", ORIGINAL).value)


def test_mean_rows_average_the_orders_and_consistency_with_three_orders(survey):
    rng = np.random.default_rng(0)
    noisy = lambda item, mapping, *_: int(rng.choice(mapping.numbers))  # noqa: E731
    table = order_scores(answer_frame(survey, noisy, (ORIGINAL, REVERSED, PERMUTED)), survey, ["AAA", "BBB"],
                         "x", FAST, order_seed=1)
    for metric in ("paper_score", NORMALISED, FIRST_SHARE, SURVEY_LAST_SHARE, ANSWER_ENTROPY):
        for country in ("AAA", AVG):
            values = [get(table, metric, o, country).value for o in (ORIGINAL, REVERSED, PERMUTED)]
            mean = get(table, metric, MEAN, country)
            assert mean.value == pytest.approx(np.mean(values))
            assert mean.ci_low <= mean.value <= mean.ci_high
    # with three orders: each order's row against the original, the mean row all three at once
    frame = answer_frame(survey, noisy, (ORIGINAL, REVERSED, PERMUTED))
    table = order_scores(frame, survey, ["AAA"], "x", FAST, order_seed=1)
    wide = frame[frame.persona == "AAA"].pivot(index="qid", columns="order", values="choice")
    asked = ["Q1", "Q2", "Q3", "Q94"]
    wide = wide.loc[asked]
    assert get(table, CONSISTENCY, REVERSED, "AAA").value == pytest.approx(np.mean(wide[ORIGINAL] == wide[REVERSED]))
    assert get(table, CONSISTENCY, PERMUTED, "AAA").value == pytest.approx(np.mean(wide[ORIGINAL] == wide[PERMUTED]))
    all_three = (wide[ORIGINAL] == wide[REVERSED]) & (wide[ORIGINAL] == wide[PERMUTED])
    assert get(table, CONSISTENCY, MEAN, "AAA").value == pytest.approx(np.mean(all_three))


def test_one_order_has_no_mean_and_no_consistency(survey):
    table = order_scores(answer_frame(survey, lambda *_: 1, (ORIGINAL,)), survey, ["AAA", "BBB"], "x", FAST)
    assert set(table.order) == {ORIGINAL} and CONSISTENCY not in set(table.metric)
    # no order column at all: the answers are in the original order
    frame = answer_frame(survey, lambda *_: 1, (ORIGINAL,)).drop(columns="order")
    again = order_scores(frame, survey, ["AAA", "BBB"], "x", FAST)
    pd.testing.assert_frame_equal(table, again)


def test_entropy_logprob_and_generate(survey):
    k = {it.qid: it.n_options for it in survey.items}
    uniform = lambda item, *_: [1.0 / item.n_options] * item.n_options  # noqa: E731
    table = order_scores(answer_frame(survey, uniform), survey, ["AAA"], "x", FAST)
    assert get(table, ANSWER_ENTROPY, REVERSED, "AAA").value == pytest.approx(1.0)
    expected = np.mean([normalised_entropy(d.shares) for d in survey.dists["AAA"].values()])
    assert get(table, SURVEY_ENTROPY, ORIGINAL, "AAA").value == pytest.approx(expected)
    peaked = lambda item, *_: [1.0] + [0.0] * (item.n_options - 1)  # noqa: E731
    table = order_scores(answer_frame(survey, peaked), survey, ["AAA"], "x", FAST)
    assert get(table, ANSWER_ENTROPY, ORIGINAL, "AAA").value == pytest.approx(0.0)
    # generate mode (no probs): the answers' spread over the runs; run 1 and 2 differ on Q2 only
    two_runs = lambda item, mapping, persona, run: mapping.numbers[0] if item.qid != "Q2" or run == 1 else 2  # noqa: E731
    frame = answer_frame(survey, two_runs, runs=(1, 2))
    table = order_scores(frame, survey, ["AAA"], "x", FAST)
    assert list(table.columns) == [*ORDER_COLUMNS, "run"]
    for run in (1, 2):
        rows = table[(table.run == run) & (table.metric == ANSWER_ENTROPY) & (table.country == "AAA")]
        original = rows[rows.order == ORIGINAL].iloc[0]
        assert original.value == pytest.approx(1.0 / len(k))  # Q2 split 1:1 -> 1, the others 0
    # with one run the empirical distribution is one answer: entropy 0
    one = order_scores(frame[frame.run == 1], survey, ["AAA"], "x", FAST)
    assert set(one[one.metric == ANSWER_ENTROPY].value) == {0.0}


def test_score_with_orders_is_score_answers_per_order(survey):
    rng = np.random.default_rng(3)
    frame = pd.concat([
        answer_frame(survey, lambda item, mapping, *_: int(rng.choice(mapping.numbers)), method="aware"),
        answer_frame(survey, lambda item, mapping, *_: mapping.numbers[-1], personas=(NO_PERSONA,), method="unaware"),
    ])
    table, matrices = score_with_orders(frame, survey, ["AAA", "BBB"], "x", FAST)
    keys = ["method", "order", "country", "metric"]
    assert not table.duplicated(keys).any()
    assert set(matrices.order) == {ORIGINAL, REVERSED}
    baselines = table[table.method.str.startswith("baseline_")]
    assert set(baselines.order) == {ORIGINAL} and not baselines.empty
    for order in (ORIGINAL, REVERSED):
        alone, _ = score_answers(frame[frame.order == order], survey, ["AAA", "BBB"], "x", FAST, baselines=False)
        for r in alone.itertuples():
            mine = get(table, r.metric, order, r.country, r.method)
            assert mine.value == pytest.approx(r.value, nan_ok=True)
            assert mine.ci_low == pytest.approx(r.ci_low, nan_ok=True)
    # the normalised score is scaled by the uniform baseline's own expected score
    for country in ("AAA", "BBB"):
        s = get(table, "paper_score", REVERSED, country, "aware").value
        u = get(table, "paper_score", ORIGINAL, country, "baseline_uniform").value
        assert get(table, NORMALISED, REVERSED, country, "aware").value == pytest.approx(100 * (s - u) / (100 - u))


def test_normalised_score_of_uniform_answers_is_zero_in_expectation():
    """The issue's acceptance test: uniform random answers score 0 after normalisation, in
    expectation. 150 seeded answer sets on a synthetic 60-item survey, each its own method in one
    call (so they share the bootstrap and the baseline draws). The mean over sets deviates from 0
    by the standard error of that mean plus the error of the baseline's own estimate (the mean
    of 200 draws): both scale with the spread of the per-set values, so the tolerance is 4 standard
    errors of their sum. And each set's 95% bootstrap CI should hold 0 about 95% of the time."""
    rng = np.random.default_rng(11)
    items, dists = [], {"AAA": {}, "BBB": {}}
    for q in range(60):
        k, first = int(rng.integers(2, 11)), int(rng.integers(0, 2))
        items.append(Item(f"Q{q + 1}", "", tuple(str(j) for j in range(k)), first=first))
        for c in dists:
            dists[c][f"Q{q + 1}"] = dist(rng.dirichlet(np.ones(k)), first)
    survey = Survey(items, ["AAA", "BBB"], dists)
    n_sets, draws = 150, 200
    settings = ScoringSettings(n_boot=200, n_uniform_draws=draws, seed=2)
    answers = rng.integers(0, 10**6, size=(n_sets, len(items)))
    frame = pd.DataFrame([
        {"method": f"u{s}", "persona": NO_PERSONA, "qid": it.qid, "reply": "", "order": ORIGINAL,
         "choice": it.first + int(answers[s, q] % it.n_options), "probs": None}
        for s in range(n_sets) for q, it in enumerate(items)
    ])
    table = order_scores(frame, survey, ["AAA", "BBB"], "x", settings)
    rows = table[(table.metric == NORMALISED) & (table.country == AVG)]
    values = rows.value.to_numpy()
    assert len(values) == n_sets
    sd = values.std(ddof=1)
    tolerance = 4 * sd * math.sqrt(1 / n_sets + 1 / draws)
    assert abs(values.mean()) < tolerance, (values.mean(), tolerance)
    covered = np.mean((rows.ci_low <= 0) & (rows.ci_high >= 0))
    assert covered > 0.85, covered
    # and not 0 for a model that knows the answers: the check can fail
    assert get(table, "paper_score", ORIGINAL, AVG, "u0").value < 100


def test_score_with_orders_keeps_runs_apart(survey):
    rng = np.random.default_rng(5)
    frame = answer_frame(survey, lambda item, mapping, *_: int(rng.choice(mapping.numbers)), runs=(0, 1))
    table, matrices = score_with_orders(frame, survey, ["AAA", "BBB"], "x", FAST)
    assert not table.duplicated(["method", "order", "country", "metric", "run"]).any()
    assert set(table.run) == {0, 1} and set(matrices.run) == {0, 1}
    for run in (0, 1):
        alone = order_scores(frame[frame.run == run].drop(columns="run"), survey, ["AAA", "BBB"], "x", FAST)
        mine = table[(table.run == run) & (table.method == "m")].drop(columns="run")
        merged = alone.merge(mine, on=["method", "order", "country", "metric"], suffixes=("", "_all"))
        assert len(merged) == len(alone)
        # generate mode: answer entropy is the spread over both runs, per run it would be 0
        pooled = merged.metric == ANSWER_ENTROPY
        assert (merged[pooled].value == 0).all() and (merged[pooled].value_all > 0).all()
        assert np.allclose(merged[~pooled].value, merged[~pooled].value_all, equal_nan=True)
    assert len(table[table.method == "baseline_uniform"]) == 2 * len(table[(table.method == "baseline_uniform") & (table.run == 0)])


def test_scoring_refuses_answers_in_several_orders(survey):
    from culturespa.scoring import topic_scores

    frame = answer_frame(survey, lambda *_: 1)
    with pytest.raises(ValueError, match="several option orders"):
        score_answers(frame, survey, ["AAA", "BBB"], "x", FAST)
    with pytest.raises(ValueError, match="several option orders"):
        topic_scores(frame, survey, ["AAA", "BBB"], "x")


def test_order_robust_rows_of_an_unanswered_cell_carry_its_reason():
    from culturespa.robustness import _carry_reasons

    nan = float("nan")
    table = pd.DataFrame({
        "method": ["culture_aware"] * 4, "country": ["NLD", "NLD", "NLD", "USA"],
        "order": [ORIGINAL, REVERSED, MEAN, MEAN], "metric": ["paper_score"] * 4,
        "value": [nan, nan, nan, 40.0], "reason": ["not trained: 0 pairs", "not trained: 0 pairs", nan, nan]})
    out = _carry_reasons(table, ["method", "country"])
    assert list(out.reason[:3]) == ["not trained: 0 pairs"] * 3
    assert pd.isna(out.reason[3])  # a value needs no reason
