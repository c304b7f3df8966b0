"""The question filters: the released pool's counts (the acceptance test) and each rule."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from culturespa import filters
from culturespa.errors import DataFileError
from culturespa.wvs import Item, load_items

REPO = Path(__file__).resolve().parents[1]
DATA_CANDIDATES = [REPO / "resources" / "culturespa", Path("/work/shared/culturespa")]
POOL_SUBDIR = "data/Meta-Llama-3-8B-Instruct"


def find_data_dir() -> Path | None:
    """The released CultureSPA data: $CULTURESPA_DATA, resources/culturespa, or the shared copy."""
    env = os.environ.get("CULTURESPA_DATA")
    for cand in ([Path(env)] if env else []) + DATA_CANDIDATES:
        if (cand / POOL_SUBDIR / "generated_questions_topic_0_from_all_seed.json").is_file():
            return cand
    return None


@pytest.fixture(scope="module")
def data_dir() -> Path:
    found = find_data_dir()
    if found is None:
        pytest.skip(
            "released CultureSPA data not found (set CULTURESPA_DATA, or fetch it into "
            f"resources/culturespa; looked in {', '.join(map(str, DATA_CANDIDATES))})"
        )
    return found


@pytest.fixture(scope="module")
def released(data_dir):
    pool = filters.load_released_pool(data_dir / POOL_SUBDIR)
    seeds = load_items(data_dir / "data" / "wvs_questions.json")
    return pool, seeds


@pytest.fixture(scope="module")
def paper_filtered(released):
    pool, seeds = released
    return filters.filter_pool(pool, seeds, near_dup_threshold=None)


# --- the released pool: the paper's counts --------------------------------------------------


def test_released_pool_loads_13000_in_notebook_order(released):
    pool, _ = released
    assert len(pool) == 13000
    assert pool[0]["qid"] == "T00-00000" and pool[0]["released_qid"] == "Q0"
    assert pool[-1]["qid"] == "T12-00999" and pool[-1]["released_qid"] == "Q12999"
    assert {r["question_source"] for r in pool} == {"released"}


def test_released_pool_counts_match_the_paper(paper_filtered):
    kept, report = paper_filtered
    assert report.rows == [
        ("input", 13000, 0),
        ("exact_duplicate", 12891, 109),
        ("unexplained_numeric_scale", 12860, 31),
        ("strip_number_prefix", 12860, 0),
        ("endpoint_card", 12847, 13),
    ]
    assert len(kept) == 12847
    assert report.n_normalised == {"strip_number_prefix": 2833, "endpoint_card": 23}


def test_released_pool_filter4_drops_the_authors_13(released, paper_filtered):
    pool, _ = released
    _, report = paper_filtered
    released_id = {r["qid"]: r["released_qid"] for r in pool}
    dropped = [released_id[d["qid"]] for d in report.dropped if d["stage"] == filters.STAGE_CARD]
    # the list printed by the authors' notebook (filter_question2)
    assert dropped == ["Q1055", "Q1715", "Q1905", "Q1927", "Q8538", "Q8563", "Q8608", "Q8665",
                       "Q8983", "Q12243", "Q12362", "Q12866", "Q12872"]  # fmt: skip


def test_released_pool_normalised_examples(paper_filtered):
    kept, _ = paper_filtered
    by_rel = {r["released_qid"]: r for r in kept}
    assert by_rel["Q1036"]["options"][0] == "Rarely or never"  # "1 (Rarely or never)"
    q1062 = by_rel["Q1062"]
    assert q1062["options"] == [str(n) for n in range(1, 11)]
    assert q1062["question"].endswith(
        "norms'?  Using this card on which 1 means 'Strongly disagree' and 10 means 'Strongly agree'"
    )  # the generated question ended with a space: kept as the authors did
    assert q1062["raw_options"][0] == "1 - Strongly disagree"
    # the authors' hand-made exception: options that are numeric ranges stay as they are
    assert by_rel["Q1879"]["options"] == ["1-3: Too slow", "4-6: Just right", "7-8: Too fast", "9-10: Extremely fast"]
    zero_based = [r for r in kept if r["first"] == 0]
    assert len(zero_based) == 4 and all(r["options"][0] == "0" for r in zero_based)


def test_released_pool_per_topic_counts_add_up(paper_filtered):
    _, report = paper_filtered
    for stage, n_kept, n_dropped in report.rows:
        per_topic = [(k, d) for s, _, k, d in report.per_topic if s == stage]
        assert len(per_topic) == 13
        assert sum(k for k, _ in per_topic) == n_kept and sum(d for _, d in per_topic) == n_dropped
    assert report.count_after(filters.STAGE_INPUT) == 13000


def test_released_pool_near_duplicates_fast_and_no_evaluation_item_leaks(released):
    pool, seeds = released
    start = time.perf_counter()
    kept, report = filters.filter_pool(pool, seeds)  # default threshold 0.9
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"filtering took {elapsed:.1f}s"
    stage, n_kept, n_dropped = report.rows[-1]
    assert stage == filters.STAGE_NEAR and n_kept == 12847 - n_dropped
    assert n_dropped == 79
    eval_ids = {s.qid for s in seeds}
    near = [d for d in report.dropped if d["stage"] == filters.STAGE_NEAR]
    assert not any(d["why"].split(" with ")[1] in eval_ids for d in near)


# --- hand-made cases, one rule at a time ----------------------------------------------------


def rec(qid, question, options, topic=0):
    return {"qid": qid, "topic": topic, "question": question, "options": list(options)}


SEED = Item("Q1", "How important is family in your life?", ("Very important", "Not important"), 1, 0)


def run(records, seeds=(SEED,), threshold=None):
    return filters.filter_pool(records, list(seeds), near_dup_threshold=threshold)


def test_exact_duplicates_of_seed_and_earlier_question_are_dropped():
    kept, report = run(
        [
            rec("a", "How important is family in your life?", ["Yes", "No"]),  # a seed's text
            rec("b", "Do you trust your neighbours?", ["Yes", "No"]),
            rec("c", "Do you trust your neighbours?", ["A lot", "Not at all"]),  # earlier, other options
            rec("d", "do you trust your neighbours?", ["Yes", "No"]),  # case differs: kept
            rec("e", "Do you trust your neighbours? ", ["Yes", "No"]),  # whitespace differs: kept
        ]
    )
    assert [r["qid"] for r in kept] == ["b", "d", "e"]
    whys = {d["qid"]: d["why"] for d in report.dropped}
    assert whys == {"a": "same text as seed", "c": "same text as b"}
    # the workflow compares with all 291 WVS questions, as the authors: a question outside the 259
    # evaluation items (here standing in for Q260-Q290) counts as a seed for filter 1
    kept, _ = filters.filter_pool([rec("f", "Do you trust your neighbours?", ["Yes", "No"])], [], None,
                                  exact_reference=["Do you trust your neighbours?"])
    assert kept == []


@pytest.mark.parametrize(
    "question, kept",
    [
        ("How much do you agree?", False),
        ("On a Scale of 1 to 5, how much do you agree?", True),  # phrase test is case-insensitive
        ("How much, with 1 being 'not at all'?", True),
        ("How much, where 1 means 'not at all'?", True),
        ("Using this card on which 1 means 'no'", True),
        ("How much, with 0 being 'not at all' and 10 'a lot'?", False),  # as the authors (Q4713)
    ],
)
def test_bare_integer_options_need_a_scale_explanation(question, kept):
    result, _ = run([rec("a", question, ["1", "2", "3", "4", "5"])])
    assert bool(result) == kept


def test_mixed_number_and_text_options_are_not_bare_integers():
    result, _ = run([rec("a", "How often?", ["Never", "1", "2"])])  # not all start with a digit
    assert result[0]["options"] == ["Never", "1", "2"]


@pytest.mark.parametrize(
    "options, expected",
    [
        (["1 (Rarely or never)", "2 (Often)"], ["Rarely or never", "Often"]),
        (["1. Very important", "2.Not important"], ["Very important", "Not important"]),
        (["1 - Agree", "2-Disagree"], ["Agree", "Disagree"]),
        (["1) Agree", "2: Disagree"], ["Agree", "Disagree"]),
        (["1 (Agree (mostly))", "2 (No)"], ["Agree (mostly))", "No"]),  # ")" dropped only if unmatched
        (["0 - Never", "1 - Sometimes", "2 - Always"], ["Never", "Sometimes", "Always"]),
        (["1. 18-24 years", "2. 25 or older"], ["18-24 years", "25 or older"]),  # not re-processed by filter 4
    ],
)
def test_number_prefixes_are_stripped_when_every_option_has_one(options, expected):
    result, report = run([rec("a", "Q?", options)])
    assert result[0]["options"] == expected
    assert result[0]["first"] == 1  # numbering of the stripped options restarts at 1
    assert report.n_normalised[filters.STAGE_PREFIX] == 1


def test_ranges_and_decimals_are_not_number_prefixes():
    assert filters.number_prefix("1-3: Too slow") is None
    assert filters.number_prefix("10 - 15 hours") is None
    assert filters.number_prefix("1.5 hours") is None
    assert filters.number_prefix("10%") is None
    assert filters.number_prefix("1 -") is None  # no text after the separator
    assert filters.number_prefix("12 - Twelve") == (12, "Twelve")
    ranges = ["1-3: Too slow", "4-6: Right", "7-10: Too fast"]
    result, _ = run([rec("a", "Pace?", ranges)])
    assert result[0]["options"] == ranges and result[0]["question"] == "Pace?"


def test_endpoint_card_normalisation_text_exactly():
    options = ["1 - Strongly disagree"] + [str(n) for n in range(2, 10)] + ["10 - Strongly agree"]
    result, report = run([rec("a", "Do you agree?", options)])
    assert result[0]["question"] == (
        "Do you agree? Using this card on which 1 means 'Strongly disagree' and 10 means 'Strongly agree'"
    )
    assert result[0]["options"] == [str(n) for n in range(1, 11)]
    assert result[0]["first"] == 1
    assert report.n_normalised[filters.STAGE_CARD] == 1


def test_endpoint_card_from_zero_and_with_parentheses():
    result, _ = run([rec("a", "Trust?", ["0 (No trust)", "1", "2", "3 (Full trust)"])])
    assert result[0]["question"] == "Trust? Using this card on which 0 means 'No trust' and 3 means 'Full trust'"
    assert result[0]["options"] == ["0", "1", "2", "3"] and result[0]["first"] == 0


@pytest.mark.parametrize(
    "options",
    [
        ["1 - Not at all", "2", "3", "9 - Don't know", "10 - Refused"],  # endpoint mentions refuse
        ["1 - Refuse to say", "2", "3 - Always"],
        ["1 - Hurt", "2", "3 - Neutral", "4", "5 - Help"],  # a middle option carries text
        ["0-2", "3-5", "6-10", "10"],  # not all ranges, last has no prefix
        ["0", "1-2", "3-4"],
        ["1 - Low", "2", "4", "5 - High"],  # numbers not consecutive
        ["2 - Low", "3", "4 - High"],  # does not start at 0 or 1
        ["1: Low", "2", "3 hours"],  # last option has no separator
    ],
)
def test_endpoint_card_drops_what_cannot_be_normalised(options):
    result, report = run([rec("a", "Q?", options)])
    assert result == []
    assert report.dropped[0]["stage"] == filters.STAGE_CARD


def test_first_is_zero_for_bare_numbers_from_zero():
    result, _ = run([rec("a", "On a scale from 0 to 10, how much?", [str(n) for n in range(11)])])
    assert result[0]["first"] == 0
    item = filters.to_item(result[0])
    assert item == Item("a", "On a scale from 0 to 10, how much?", tuple(str(n) for n in range(11)), 0, 0)
    assert item.numbers[0] == 0


def test_input_records_are_not_modified():
    original = rec("a", "Q?", ["1 - Low", "2", "3 - High"])
    snapshot = dict(original, options=list(original["options"]))
    run([original])
    assert original == snapshot


# --- near duplicates ------------------------------------------------------------------------


def test_near_duplicates_of_earlier_kept_questions_and_of_references():
    texts = [
        "How much do you trust people in your neighbourhood?",
        "How much do you trust the people in your neighbourhood?",  # ~ text 0
        "How important is religion in your life?",  # ~ reference
        "What is your favourite season of the year and why?",
    ]
    found = filters.near_duplicates(texts, ["How important is religion in your own life?"], threshold=0.75)
    assert set(found) == {1, 2}
    assert found[1][:2] == ("earlier", 0) and found[2][:2] == ("reference", 0)
    assert all(0.75 <= sim <= 1.0 + 1e-6 for _, _, sim in found.values())


def test_near_duplicates_are_greedy_against_kept_questions_only():
    # b is close to a and to c, but a and c are not close to each other: b goes, c stays
    a = "alpha beta gamma delta epsilon zeta"
    b = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    c = "eta theta iota kappa"
    x = filters.tfidf_matrix([a, b, c])
    sims = (x @ x.T).toarray()
    thr = (max(sims[0, 1], sims[1, 2]) + max(sims[0, 2], min(sims[0, 1], sims[1, 2]))) / 2
    assert sims[0, 1] >= thr and sims[0, 2] < thr
    found = filters.near_duplicates([a, b, c], [], thr)
    assert 1 in found and 0 not in found and 2 not in found


def test_near_duplicate_stage_in_the_pipeline_names_the_match():
    records = [
        rec("a", "How much do you trust people in your neighbourhood?", ["A lot", "Not at all"]),
        rec("b", "How much do you trust the people in your neighbourhood?", ["A lot", "Not at all"]),
    ]
    kept, report = run(records, threshold=0.8)
    assert [r["qid"] for r in kept] == ["a"]
    assert report.rows[-1] == (filters.STAGE_NEAR, 1, 1)
    assert report.dropped[0]["why"].endswith("with a")
    assert {"stage": "near_duplicate", "topic": "all", "n_kept": 1, "n_dropped": 1} in report.table()


def test_similar_pairs_chunks_agree_with_one_block():
    texts = [f"question number {i} about trust and family {i % 3}" for i in range(30)]
    x = filters.tfidf_matrix(texts)
    whole = filters.similar_pairs(x, x, 0.5, chunk=1000, lower_only=True)
    chunked = filters.similar_pairs(x, x, 0.5, chunk=7, lower_only=True)
    assert sorted(whole) == sorted(chunked) and all(j < i for i, j, _ in whole)


def test_load_released_pool_missing_dir_names_the_file(tmp_path):
    with pytest.raises(DataFileError, match="generated_questions_topic_0_from_all_seed.json"):
        filters.load_released_pool(tmp_path)
