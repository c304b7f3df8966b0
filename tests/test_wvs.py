import json

import numpy as np
import pytest

from culturespa.wvs import TOPIC_NAMES, is_zero_based, load_distributions, load_items, topic_index

from conftest import PAPER_COUNTRIES


def test_evaluation_items(data_dir):
    items = load_items(data_dir / "data/wvs_questions.json")
    qids = [it.qid for it in items]
    assert len(items) == 259
    assert "Q223" not in qids and "Q260" not in qids and "Q234A" in qids
    assert len(load_items(data_dir / "data/wvs_questions.json", evaluation_only=False)) == 291
    by_id = {it.qid: it for it in items}
    assert by_id["Q94"].first == 0 and by_id["Q94"].numbers[0] == 0
    assert by_id["Q1"].first == 1 and by_id["Q1"].numbers == [1, 2, 3, 4]
    counts = np.bincount([it.topic for it in items], minlength=13)
    assert counts.sum() == 259 and (counts > 0).all()


def test_topics_and_zero_based_ranges():
    assert TOPIC_NAMES[topic_index("Q45")] == "Social Values, Attitudes & Stereotypes"
    assert TOPIC_NAMES[topic_index("Q46")] == "Happiness and Well-being"
    assert TOPIC_NAMES[topic_index("Q234A")] == "Political Interest & Political Participation"
    assert TOPIC_NAMES[topic_index("Q259")] == "Political Culture & Political Regimes"
    assert [q for q in ("Q93", "Q94", "Q105", "Q106", "Q119", "Q121", "Q122", "Q129", "Q241", "Q250") if is_zero_based(q)] == [
        "Q94", "Q105", "Q119", "Q122", "Q129", "Q241"
    ]


def test_distributions_renormalised_with_missing_share(tmp_path):
    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps([{"Q_id": "Q1", "question": "x", "option_lst": ["a", "b", "c"]},
                                 {"Q_id": "Q94", "question": "y", "option_lst": ["n", "y"]}]))
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps({"AAA": {"Q1": {"2": 0.4, "1": 0.3, "3": 0.1}, "Q94": {}},
                                 "BBB": {"Q94": {"0": 0.5, "1": 0.5}}}))
    items = load_items(qfile)
    d = load_distributions(pfile, items)
    cell = d["AAA"]["Q1"]
    np.testing.assert_allclose(cell.shares, [0.375, 0.5, 0.125])
    assert cell.missing == pytest.approx(0.2)
    assert cell.majority == 2
    assert "Q94" not in d["AAA"]  # empty cell skipped
    assert d["BBB"]["Q94"].majority == 0  # first listed on a tie, 0-based item


def test_reference_similarity_reproduces_released_matrix(survey, data_dir):
    released = json.loads((data_dir / "data/country_similarity.json").read_text())
    worst = max(abs(round(survey.similarity(a, b), 1) - released[a][b]) for a in released for b in released[a])
    assert worst == 0.0
    assert set(released) == set(PAPER_COUNTRIES)
