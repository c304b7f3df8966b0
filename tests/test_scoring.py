import math

import numpy as np
import pandas as pd
import pytest

from culturespa.released import load_released, parse_released_name
from culturespa.scoring import (
    AVG, NO_PERSONA, PERSONA_VS_PERSONA, PROMPTED_VS_SURVEY, REFERENCE, ScoringSettings, authors_random_answers,
    score_answers, topic_scores, wide_matrix,
)
from culturespa.survey import Survey
from culturespa.wvs import Distribution, Item

from conftest import PAPER_COUNTRIES

FAST = ScoringSettings(n_boot=200, n_uniform_draws=100)


@pytest.fixture
def tiny_survey():
    items = [Item("Q1", "a", ("x", "y", "z", "w")), Item("Q2", "b", ("x", "y")), Item("Q94", "c", ("n", "m", "o"), first=0)]

    def dist(shares, first):
        shares = np.asarray(shares, float)
        return Distribution(shares, 0.0, int(np.argmax(shares)) + first)

    dists = {
        "AAA": {"Q1": dist([0.7, 0.2, 0.1, 0], 1), "Q2": dist([0.4, 0.6], 1), "Q94": dist([0.5, 0.3, 0.2], 0)},
        "BBB": {"Q1": dist([0, 0.1, 0.2, 0.7], 1), "Q2": dist([0.9, 0.1], 1)},  # no data for Q94
    }
    return Survey(items, ["AAA", "BBB"], dists)


def frame(method, persona, replies):
    return pd.DataFrame({"method": method, "persona": persona, "qid": list(replies), "reply": list(replies.values())})


def test_scores_by_hand(tiny_survey):
    answers = pd.concat([
        frame("aware", "AAA", {"Q1": "1", "Q2": "I pick 1", "Q94": "I cannot answer"}),
        frame("aware", "BBB", {"Q1": "4", "Q2": "1", "Q94": "0"}),
        frame("unaware", NO_PERSONA, {"Q1": "2", "Q2": "2", "Q94": "2"}),
    ])
    table, matrices = score_answers(answers, tiny_survey, ["AAA", "BBB"], "m", FAST, baselines=False)
    get = lambda meth, c, metric: table.query("method == @meth and country == @c and metric == @metric").iloc[0]
    # AAA majority (1, 2, 0); aware-AAA answers (1, 1, invalid): distance 1 over max sqrt(9+1)
    row = get("aware", "AAA", "paper_score")
    assert row.value == pytest.approx(100 * (1 - 1 / math.sqrt(10)))
    assert (row.n_valid, row.n_invalid) == (2, 1)
    # BBB majority (4, 1, none): aware-BBB (4, 1) -> 100; Q94 without survey data is not counted
    row = get("aware", "BBB", "paper_score")
    assert row.value == pytest.approx(100.0) and (row.n_valid, row.n_invalid) == (2, 0)
    assert row.ci_low == pytest.approx(100.0) and row.ci_high == pytest.approx(100.0)
    avg = get("aware", AVG, "paper_score")
    assert avg.value == pytest.approx((100 * (1 - 1 / math.sqrt(10)) + 100) / 2)
    assert (avg.n_valid, avg.n_invalid) == (4, 1)
    # unaware answers (2, 2, 2) are scored against both countries
    assert get("unaware", "AAA", "paper_score").value == pytest.approx(100 * (1 - math.sqrt(1 + 0 + 4) / math.sqrt(9 + 1 + 4)))
    assert get("unaware", "BBB", "paper_score").value == pytest.approx(100 * (1 - math.sqrt(4 + 1) / math.sqrt(9 + 1)))
    # the country matrix: prompted as AAA scored against BBB: answers (1, 1) vs (4, 1)
    m = wide_matrix(matrices, PROMPTED_VS_SURVEY, "aware")
    assert m.loc["AAA", "BBB"] == pytest.approx(100 * (1 - 3 / math.sqrt(10)))
    assert "unaware" not in set(matrices.method)
    # C[i, j]: answers as AAA (1, 1, -) vs answers as BBB (4, 1, 0): distance 3 over sqrt(9 + 1)
    c = wide_matrix(matrices, PERSONA_VS_PERSONA, "aware")
    assert c.loc["AAA", "BBB"] == pytest.approx(100 * (1 - 3 / math.sqrt(10)))
    assert c.loc["AAA", "AAA"] == pytest.approx(100.0)
    ident = get("aware", AVG, "identification_accuracy")
    assert ident.value == pytest.approx(1.0)
    # JS similarity from one-hot answers: aware-BBB on Q1 answers 4 vs (0, .1, .2, .7)
    js = get("aware", "BBB", "js_similarity").value
    assert 0 < js < 1


def test_all_invalid_answers_are_missing_not_numbers(tiny_survey):
    answers = pd.concat([frame("aware", c, {"Q1": "no", "Q2": "no", "Q94": "no"}) for c in ("AAA", "BBB")])
    table, _ = score_answers(answers, tiny_survey, ["AAA", "BBB"], "m", FAST, baselines=False)
    scores = table[table.metric == "paper_score"]
    assert scores["value"].isna().all()
    assert list(scores["n_invalid"]) == [3, 2, 5] and list(scores["n_valid"]) == [0, 0, 0]


def test_topic_scores_by_hand(tiny_survey):
    items = [Item(it.qid, it.text, it.options, it.first, topic) for it, topic in zip(tiny_survey.items, (0, 0, 2))]
    survey = Survey(items, tiny_survey.countries, tiny_survey.dists)
    answers = pd.concat([
        frame("aware", "AAA", {"Q1": "1", "Q2": "1", "Q94": "nothing"}),
        frame("aware", "BBB", {"Q1": "4", "Q2": "1", "Q94": "0"}),
    ])
    t = topic_scores(answers, survey, ["AAA", "BBB"], "m").set_index(["country", "topic"])
    # topic 0 for AAA: majority (1, 2), answers (1, 1): distance 1 over sqrt(9 + 1)
    assert t.loc[("AAA", 0), "value"] == pytest.approx(100 * (1 - 1 / math.sqrt(10)))
    assert t.loc[("BBB", 0), "value"] == pytest.approx(100.0)
    # topic 2: AAA's only answer is invalid -> missing with its count; BBB has no survey data there
    assert math.isnan(t.loc[("AAA", 2), "value"]) and t.loc[("AAA", 2), "n_invalid"] == 1
    assert math.isnan(t.loc[("BBB", 2), "value"]) and t.loc[("BBB", 2), "n_valid"] == 0
    assert t.loc[(AVG, 0), "value"] == pytest.approx((100 * (1 - 1 / math.sqrt(10)) + 100) / 2)
    assert math.isnan(t.loc[(AVG, 2), "value"])
    assert set(t["topic_name"]) == {"Social Values, Attitudes & Stereotypes", "Social Capital, Trust & Organizational Membership"}


def test_probabilities_feed_the_distributional_metrics(tiny_survey):
    answers = frame("aware", "AAA", {"Q1": "1", "Q2": "2", "Q94": "0"})
    answers["choice"] = [1, 2, 0]
    answers["probs"] = [[0.7, 0.2, 0.1, 0.0], [0.4, 0.6], [0.5, 0.3, 0.2]]  # the survey itself
    table, _ = score_answers(answers, tiny_survey, ["AAA"], "m", FAST, baselines=False)
    js = table.query("metric == 'js_similarity' and country == 'AAA'").value.iloc[0]
    assert js == pytest.approx(1.0)


def test_released_file_names():
    assert parse_released_name("wvs_result_culture_unaware_0.json") == ("culture_unaware", NO_PERSONA, 0)
    assert parse_released_name("wvs_result_culture_aware_NZL_0.json") == ("culture_aware", "NZL", 0)
    assert parse_released_name("wvs_result_self_alignment_American_0.json")[0] == "self_alignment_American"


def test_released_llama3_scores_are_reproduced(data_dir, survey):
    """Regression pins for the paper's culture-unaware and culture-aware rows (Llama-3-8B-Instruct)."""
    files = sorted((data_dir / "result/Meta-Llama-3-8B-Instruct").glob("*.json"))
    answers = load_released(files, ["culture_unaware", "culture_aware"])
    table, matrices = score_answers(answers, survey, PAPER_COUNTRIES, "Meta-Llama-3-8B-Instruct", FAST)
    avg = table[table.country == AVG].set_index(["method", "metric"])["value"]
    assert avg["culture_unaware", "paper_score"] == pytest.approx(62.36, abs=0.01)
    assert avg["culture_aware", "paper_score"] == pytest.approx(66.61, abs=0.01)
    assert avg["culture_aware", "identification_accuracy"] == pytest.approx(3 / 18)
    assert avg["baseline_uniform", "paper_score"] < avg["culture_unaware", "paper_score"]
    usa = table.query("method == 'culture_aware' and country == 'USA' and metric == 'paper_score'").iloc[0]
    assert (usa.n_valid, usa.n_invalid) == (254, 3)
    assert usa.ci_low < usa.value < usa.ci_high
    assert wide_matrix(matrices, PROMPTED_VS_SURVEY, "culture_aware").shape == (18, 18)
    assert wide_matrix(matrices, REFERENCE).loc["USA", "CAN"] == pytest.approx(71.25, abs=0.01)
    assert 0 < avg["culture_aware", "cross_culture_correlation"] <= 1
    assert set(table.columns) == {"model", "method", "country", "metric", "value", "ci_low", "ci_high", "n_valid", "n_invalid",
                                  "reason"}


def test_recorded_choice_outside_the_options_is_not_a_strict_answer(tiny_survey):
    """Generate-mode records carry parse_paper's number, which may be no option of the item (0 or 7
    on a 1-4 scale): it counts for the paper score, as the paper's parser does, but it is not an
    answer on the item's scale for the distributional scores (it was read as the last option, or
    crashed)."""
    from culturespa.scoring import align_answers

    answers = pd.DataFrame({"qid": ["Q1", "Q2", "Q94"], "reply": ["0", "7", "2"], "choice": [0, 7, 2],
                            "probs": [None, None, None]})
    got = align_answers(answers, tiny_survey)
    assert list(got.paper) == [0, 7, 2]
    assert np.isnan(got.strict[:2]).all() and got.strict[2] == 2
    assert got.dists[0] is None and got.dists[1] is None and list(got.dists[2]) == [0, 0, 1]


def test_authors_random_baseline_reproduces_their_numbers(data_dir, survey):
    """The authors' result_analysis_run_3.py with is_random = True prints these (run on the released data)."""
    answers = load_released(sorted((data_dir / "result/Meta-Llama-3-8B-Instruct").glob("*culture_unaware*.json")),
                            ["culture_unaware"])
    settings = ScoringSettings(n_boot=50, n_uniform_draws=100, authors_random_baseline=True)
    table, _ = score_answers(answers, survey, PAPER_COUNTRIES, "m", settings)
    got = table.query("method == 'baseline_random_authors' and metric == 'paper_score'").set_index("country")["value"]
    authors = {"USA": 47.56, "CAN": 46.7, "BOL": 42.62, "BRA": 44.83, "GBR": 45.56, "NLD": 46.75, "DEU": 45.98,
               "UKR": 45.82, "CHN": 43.94, "RUS": 45.31, "IND": 39.16, "THA": 48.39, "KEN": 43.63, "NGA": 43.66,
               "ETH": 41.73, "ZWE": 40.27, "AUS": 45.06, "NZL": 45.33, AVG: 44.57}
    assert {c: round(v, 2) for c, v in got.items()} == authors
    # our uniform baseline (mean of many draws) sits beside it, not in its place
    assert table.query("method == 'baseline_uniform' and metric == 'paper_score'").shape[0] == 19
    # on a subset of the items the draws are still those of the full list: the baseline equals the
    # full list's draws scored as answers
    sub = Survey(survey.items[::2], survey.countries, survey.dists)
    drawn = authors_random_answers(survey.items)
    as_answers = pd.DataFrame({"method": "drawn", "persona": NO_PERSONA, "qid": sub.qids,
                               "reply": [str(drawn[q]) for q in sub.qids]})
    sub_table, _ = score_answers(as_answers, sub, PAPER_COUNTRIES, "m", settings, all_items=survey.items)
    paper = sub_table[sub_table.metric == "paper_score"].pivot(index="country", columns="method", values="value")
    assert np.allclose(paper["baseline_random_authors"], paper["drawn"])
