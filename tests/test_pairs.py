"""Step 3: CRQPC pairs, the RDS and CDS controls, statistics and nested data fractions."""

from __future__ import annotations

import math

import pytest

from culturespa import pairs as P
from culturespa.errors import DataFileError


def question(k, topic=0, first=1):
    return {"qid": f"T{topic:02d}-{k:05d}", "topic": topic, "question": f"Q{k}?", "options": ["a", "b", "c"], "first": first}


QUESTIONS = [question(k, topic=k % 3) for k in range(10)]
QID = [q["qid"] for q in QUESTIONS]


def replies(values):
    """Answer records from a list of reply texts (None: no record for that question)."""
    return [{"qid": qid, "reply": v} for qid, v in zip(QID, values) if v is not None]


#                 0    1    2    3    4      5      6     7    8    9
UNAWARE = replies(["1", "2", "3", "1", "2", "nope", "3", "1", "2", "3"])
USA = replies(["1", "3", "3", "2", "2", "1", "99", "1", None, "3. Because"])
CHN = replies(["2", "1", "1", "2", "3", "1", "1", "2", "1", "1"])


@pytest.fixture
def built():
    return P.build_pairs(QUESTIONS, UNAWARE, {"USA": USA, "CHN": CHN}, seed=42)


def test_answer_is_choice_when_present_else_first_integer_0_to_15():
    assert P.answer_of({"qid": "x", "reply": "I choose 3. Agree"}) == 3
    assert P.answer_of({"qid": "x", "reply": "15"}) == 15
    assert P.answer_of({"qid": "x", "reply": "16"}) is None
    assert P.answer_of({"qid": "x", "reply": "0"}) == 0
    assert P.answer_of({"qid": "x", "reply": "no number"}) is None
    assert P.answer_of({"qid": "x", "choice": 4, "reply": "2"}) == 4
    assert P.answer_of({"qid": "x", "choice": 99}) is None
    assert P.answer_of({"qid": "x", "choice": True}) is None
    assert P.answer_of(None) is None


def test_crqpc_keeps_the_culture_aware_answer_where_answers_differ(built):
    usa = built.sets["CRQPC"]["USA"]
    # valid for USA: 0,1,2,3,4,7,9 (5: unaware invalid, 6: 99, 8: missing); differ at 1 and 3
    assert [(p["qid"], p["answer"]) for p in usa] == [(QID[1], 3), (QID[3], 2)]
    assert usa[0] == {"qid": QID[1], "culture": "USA", "topic": 1, "question": "Q1?",
                      "options": ["a", "b", "c"], "first": 1, "answer": 3}  # fmt: skip
    chn = built.sets["CRQPC"]["CHN"]
    assert [p["qid"] for p in chn] == [QID[k] for k in (0, 1, 2, 3, 4, 6, 7, 8, 9)]


def test_statistics_per_culture(built):
    rows = {r["culture"]: r for r in built.stats_rows()}
    usa = rows["USA"]
    assert (usa["valid"], usa["same"], usa["diff"]) == (7, 5, 2)
    assert usa["diff_rate"] == pytest.approx(2 / 7)
    assert (usa["invalid_unaware"], usa["invalid_aware"], usa["missing_aware"]) == (1, 2, 1)
    assert (usa["n_CRQPC"], usa["n_RDS"], usa["n_CDS"], usa["cds_shortfall"]) == (2, 2, 2, 0)
    chn = rows["CHN"]
    assert (chn["valid"], chn["same"], chn["diff"], chn["invalid_aware"]) == (9, 0, 9, 0)


def test_rds_is_a_seeded_sample_of_valid_instances_of_crqpc_size(built):
    rds = built.sets["RDS"]["USA"]
    valid_qids = {QID[k] for k in (0, 1, 2, 3, 4, 7, 9)}
    assert len(rds) == 2 and {p["qid"] for p in rds} <= valid_qids
    usa_answer = {r["qid"]: P.answer_of(r) for r in USA}
    assert all(p["answer"] == usa_answer[p["qid"]] for p in rds)  # the culture-aware answer
    again = P.build_pairs(QUESTIONS, UNAWARE, {"CHN": CHN, "USA": USA}, seed=42)
    assert again.sets["RDS"]["USA"] == rds  # same seed, culture order irrelevant
    draws = {tuple(p["qid"] for p in P.build_pairs(QUESTIONS, UNAWARE, {"USA": USA}, s).sets["RDS"]["USA"])
             for s in range(20)}  # fmt: skip
    assert len(draws) > 1


def test_cds_takes_agreeing_instances_and_records_a_shortfall(built):
    cds = built.sets["CDS"]["USA"]
    same_qids = {QID[k] for k in (0, 2, 4, 7, 9)}
    assert len(cds) == 2 and {p["qid"] for p in cds} <= same_qids
    # CHN never agrees: CDS is empty and the 9 missing pairs are recorded
    assert built.sets["CDS"]["CHN"] == []
    assert built.cds_shortfall == {"USA": 0, "CHN": 9}


def test_joint_sets_are_the_union_over_cultures(built):
    joint = built.joint("CRQPC")
    assert len(joint) == 2 + 9
    assert {p["culture"] for p in joint} == {"USA", "CHN"}
    assert len(built.joint("CDS")) == 2


def test_topic_rows_count_pairs_per_set_culture_and_topic(built):
    rows = built.topic_rows()
    assert len(rows) == 3 * 2 * 13
    crqpc_usa = {r["topic"]: r["n_pairs"] for r in rows if r["set"] == "CRQPC" and r["culture"] == "USA"}
    assert crqpc_usa[1] == 1 and crqpc_usa[0] == 1 and sum(crqpc_usa.values()) == 2
    assert rows[0]["topic_name"] == "Social Values, Attitudes & Stereotypes"


def test_choice_records_are_used_when_present():
    unaware = [{"qid": q, "choice": 1} for q in QID]
    aware = [{"qid": q, "choice": 2 if i < 3 else 1, "reply": "1"} for i, q in enumerate(QID)]
    built = P.build_pairs(QUESTIONS, unaware, {"DEU": aware}, seed=0)
    assert [p["answer"] for p in built.sets["CRQPC"]["DEU"]] == [2, 2, 2]


def test_mismatched_answer_files_are_errors():
    with pytest.raises(DataFileError, match="two answers for question"):
        P.build_pairs(QUESTIONS, UNAWARE + UNAWARE[:1], {"USA": USA}, seed=0)
    with pytest.raises(DataFileError, match=r"answer for T99-00000.*\(USA\)|\(USA\).*T99-00000"):
        P.build_pairs(QUESTIONS, UNAWARE, {"USA": USA + [{"qid": "T99-00000", "reply": "1"}]}, seed=0)


def test_zero_valid_answers_give_nan_rate_not_a_crash():
    built = P.build_pairs(QUESTIONS, [], {"USA": USA}, seed=0)
    row = built.stats_rows()[0]
    assert row["valid"] == 0 and math.isnan(row["diff_rate"]) and row["invalid_unaware"] == 10


# --- nested fractions -----------------------------------------------------------------------


def many_pairs(n=200):
    return [{"qid": f"T00-{k:05d}", "culture": c, "answer": 1} for k in range(n // 2) for c in ("USA", "CHN")]


def test_nested_fractions_are_nested_sized_and_ordered():
    pairs = many_pairs()
    fractions = [i / 10 for i in range(1, 11)]
    subsets = P.nested_fractions(pairs, fractions, seed=1)
    keys = [[(p["culture"], p["qid"]) for p in subsets[f]] for f in fractions]
    assert [len(k) for k in keys] == [20 * i for i in range(1, 11)]
    for smaller, larger in zip(keys, keys[1:]):
        assert set(smaller) <= set(larger)
    assert keys[-1] == [(p["culture"], p["qid"]) for p in pairs]  # 100%: everything, in order
    position = {k: i for i, k in enumerate(keys[-1])}
    assert all(position[a] < position[b] for a, b in zip(keys[0], keys[0][1:]))  # original order kept


def test_nested_fraction_is_seeded_and_independent_of_input_order():
    pairs = many_pairs()
    a = P.nested_fraction(pairs, 0.3, seed=7)
    b = P.nested_fraction(list(reversed(pairs)), 0.3, seed=7)
    assert {(p["culture"], p["qid"]) for p in a} == {(p["culture"], p["qid"]) for p in b}
    c = P.nested_fraction(pairs, 0.3, seed=8)
    assert a != c


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_nested_fraction_rejects_fractions_outside_0_1(fraction):
    with pytest.raises(ValueError):
        P.nested_fraction(many_pairs(), fraction, seed=0)


# --- shared and independent draws --------------------------------------------------------------

from culturespa.seeds import NO_PERSONA, disagreement, draw_choice, persona_seed  # noqa: E402

MANY = [question(k, topic=k % 13) for k in range(400)]


def logprob_answers(probs_for, seed, draws, method, persona, temperature=0.6):
    """Logprob answer records as the engine writes them: choice drawn from probs with the persona's seed."""
    s = persona_seed(seed, draws, method, persona)
    out = []
    for q in MANY:
        probs = probs_for(q)
        out.append({"key": q["qid"], "choice": draw_choice([1, 2, 3], probs, s, q["qid"], temperature),
                    "probs": probs, "mode": "logprob"})
    return out


@pytest.mark.parametrize("draws", ["shared", "independent"])
def test_both_diff_rates_come_from_the_same_answer_files(draws):
    same = lambda q: [0.5, 0.3, 0.2]  # noqa: E731  the persona changes nothing
    moved = lambda q: [0.2, 0.3, 0.5]  # noqa: E731
    answering = {"mode": "logprob", "choice": "sample", "temperature": 0.6, "seed": 42, "draws": draws}
    unaware = logprob_answers(same, 42, draws, "culture_unaware", NO_PERSONA)
    aware = {"USA": logprob_answers(same, 42, draws, "culture_aware", "USA"),
             "CHN": logprob_answers(moved, 42, draws, "culture_aware", "CHN")}
    stats = P.draw_statistics(MANY, unaware, aware, "culture_aware", answering)
    usa, chn = stats["USA"], stats["CHN"]
    assert usa["draws"] == chn["draws"] == draws
    # common random numbers: an unchanged distribution never gives a diff; independent draws do, at the
    # rate 1 - sum q_k^2 of the sharpened distribution
    assert usa["diff_shared"] == 0
    expected = disagreement([0.5, 0.3, 0.2], [0.5, 0.3, 0.2], 0.6)
    assert usa["expected_diff_rate"] == pytest.approx(expected)
    assert usa["diff_rate_independent"] == pytest.approx(expected, abs=0.08)
    assert chn["expected_diff_rate"] == pytest.approx(disagreement([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 0.6))
    assert 0 < chn["diff_shared"] < chn["diff_independent"]
    # the configured draws are the ones the pairs were built from
    built = P.build_pairs(MANY, [{"qid": r["key"], "choice": r["choice"]} for r in unaware],
                          {c: [{"qid": r["key"], "choice": r["choice"]} for r in recs] for c, recs in aware.items()}, 0)
    for c in ("USA", "CHN"):
        assert len(built.sets["CRQPC"][c]) == stats[c][f"diff_{draws}"]


def test_answers_drawn_with_other_settings_are_named():
    same = lambda q: [0.5, 0.3, 0.2]  # noqa: E731
    unaware = logprob_answers(same, 42, "shared", "culture_unaware", NO_PERSONA)
    aware = {"USA": logprob_answers(same, 42, "shared", "culture_aware", "USA")}
    answering = {"mode": "logprob", "choice": "sample", "temperature": 0.6, "seed": 42, "draws": "independent"}
    with pytest.raises(DataFileError, match="USA.*other settings"):
        P.draw_statistics(MANY, unaware, aware, "culture_aware", answering)


def test_generate_mode_has_no_draw_statistics():
    unaware = [{"key": q["qid"], "choice": 1, "probs": None, "reply": "1"} for q in MANY]
    answering = {"mode": "generate", "seed": 42, "draws": "independent"}
    stats = P.draw_statistics(MANY, unaware, {"USA": unaware}, "culture_aware", answering)
    assert stats["USA"]["draws"] == "independent" and math.isnan(stats["USA"]["diff_rate_shared"])
