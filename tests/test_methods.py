import json

import pytest

from culturespa import methods, prompts
from culturespa.cultures import catalogue_from_config


@pytest.fixture(scope="module")
def catalogue(paper_config):
    return catalogue_from_config(paper_config)


@pytest.fixture(scope="module")
def order(data_dir):
    return json.loads((data_dir / "data/self_alignment_examples.json").read_text())


def test_neighbours_follow_reference_similarity(survey, catalogue, data_dir):
    sims = json.loads((data_dir / "data/country_similarity.json").read_text())["USA"]
    similar, different = methods.neighbours("USA", list(catalogue.values()), survey)
    expected_similar = sorted(sims, key=lambda c: -sims[c])[:3]
    assert [c.code for c in similar] == expected_similar
    assert [c.code for c in different] == sorted(sims, key=lambda c: sims[c])[:3]


def test_every_method_builds_prompts(survey, catalogue, order):
    items = survey.items[:3]
    usa = catalogue["USA"]
    for method in methods.METHODS:
        culture = None if method == methods.CULTURE_UNAWARE else usa
        ps = methods.build_prompts(method, items, culture, survey, list(catalogue.values()), order)
        assert [p.key for p in ps] == [it.qid for it in items]
        assert ps[0].options == (1, 2, 3, 4)
        if method in (methods.P3, methods.P1_P3, methods.P2_P3):
            assert ps[0].user.count("\nQuestion: ") + ps[0].user.startswith("Question: ") == 5
            assert ps[0].user.endswith("#Answer:")
        else:
            assert ps[0].user == prompts.render_question(items[0])
    p3 = methods.build_prompts(methods.P3, items, usa, survey, list(catalogue.values()), order)[0]
    assert p3.system == prompts.system_culture_unaware()
    p2 = methods.build_prompts(methods.P2_P3, items, usa, survey, list(catalogue.values()), order)[0]
    assert "Before you respond" in p2.system


def test_self_alignment_examples_use_majority_answers_and_skip_missing(survey, order):
    by_id = {it.qid: it for it in survey.items}
    ex = methods.self_alignment_examples("Q1", "USA", order, survey, by_id)
    assert len(ex) == 5
    usa = survey.dists["USA"]
    assert all(item.qid in usa and answer == usa[item.qid].majority for item, answer in ex)
    assert [item.qid for item, _ in ex] == [q for q in order["Q1"] if q in usa][:5]
