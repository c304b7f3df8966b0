import json
import logging

import pytest

from culturespa import methods, prompts
from culturespa.cultures import Culture, catalogue_from_config
from culturespa.errors import ConfigError


@pytest.fixture(scope="module")
def catalogue(paper_config):
    return catalogue_from_config(paper_config)


@pytest.fixture(scope="module")
def order(data_dir):
    return json.loads((data_dir / "data/self_alignment_examples.json").read_text())


# What the authors' code (utils.cross_culture at commit 4e128c9, run on the released
# data/country_similarity.json) gives for each country: (similar, different), as adjectives.
AUTHORS_CROSS_CULTURE = {
    "USA": (["Canadian", "British", "New Zealand"], ["Zimbabwean", "Nigerian", "Indian"]),
    "CAN": (["Dutch", "Australian", "British"], ["Nigerian", "Zimbabwean", "Kenyan"]),
    "BOL": (["Zimbabwean", "Indian", "Ukrainian"], ["New Zealand", "Australian", "British"]),
    "BRA": (["American", "Ukrainian", "Kenyan"], ["Indian", "Zimbabwean", "Nigerian"]),
    "GBR": (["Canadian", "Dutch", "Australian"], ["Zimbabwean", "Nigerian", "Ethiopian"]),
    "NLD": (["Canadian", "Australian", "British"], ["Nigerian", "Zimbabwean", "Kenyan"]),
    "DEU": (["Australian", "New Zealand", "Dutch"], ["Zimbabwean", "Nigerian", "Kenyan"]),
    "UKR": (["Russian", "Ethiopian", "Chinese"], ["New Zealand", "Dutch", "Australian"]),
    "CHN": (["Russian", "Ukrainian", "Ethiopian"], ["Brazilian", "New Zealand", "British"]),
    "RUS": (["Ukrainian", "Chinese", "Ethiopian"], ["New Zealand", "Dutch", "Australian"]),
    "IND": (["Ukrainian", "Bolivian", "Chinese"], ["British", "New Zealand", "Dutch"]),
    "THA": (["Ukrainian", "Chinese", "Bolivian"], ["Australian", "Dutch", "New Zealand"]),
    "KEN": (["Ukrainian", "Ethiopian", "Nigerian"], ["New Zealand", "Dutch", "Australian"]),
    "NGA": (["Zimbabwean", "Ethiopian", "Kenyan"], ["New Zealand", "Dutch", "Australian"]),
    "ETH": (["Ukrainian", "Chinese", "Zimbabwean"], ["New Zealand", "Dutch", "Australian"]),
    "ZWE": (["Bolivian", "Nigerian", "Ethiopian"], ["New Zealand", "Dutch", "Australian"]),
    "AUS": (["New Zealand", "Dutch", "Canadian"], ["Zimbabwean", "Nigerian", "Kenyan"]),
    "NZL": (["Australian", "Dutch", "Canadian"], ["Zimbabwean", "Nigerian", "Ethiopian"]),
}
# the authors' system_prompt_dict["en_cross_culture_thinking"]
AUTHORS_P2 = (
    "You are a real person with {} {} cultural background. Please fill out the World Values Survey and answer the "
    "questions honestly according to your own value system. Before you respond, take a moment to think about how {} "
    "culture is similar to {}, {}, and {} cultures, and how {} culture is different from {}, {}, and {} cultures."
)


@pytest.fixture(scope="module")
def similarity(data_dir):
    return methods.load_similarity(data_dir / "data/country_similarity.json")


@pytest.mark.parametrize("code", list(AUTHORS_CROSS_CULTURE))
def test_p2_prompt_equals_the_authors_for_every_country(code, survey, catalogue, similarity):
    similar, different = methods.neighbours(code, similarity, catalogue, survey)
    assert ([c.adjective for c in similar], [c.adjective for c in different]) == AUTHORS_CROSS_CULTURE[code]
    culture = catalogue[code]
    item = survey.items[0]
    # a run over one country only: the neighbours still come from every culture of the file
    p2 = methods.build_prompts(methods.P2, [item], culture, survey, list(catalogue.values()), similarity=similarity)[0]
    s, d = AUTHORS_CROSS_CULTURE[code]
    adj = culture.adjective
    assert p2.system == AUTHORS_P2.format(culture.article, adj, adj, *s, adj, *d)
    p2p3 = methods.build_prompts(methods.P2_P3, [item], culture, survey, list(catalogue.values()),
                                 {item.qid: []}, similarity=similarity)[0]
    assert p2p3.system == p2.system


def test_user_added_culture_gets_computed_neighbours_logged(survey, catalogue, similarity, caplog):
    cultures = {**catalogue, "MEX": Culture("MEX", "Mexican", "a", "America")}
    with caplog.at_level(logging.INFO, logger="culturespa.methods"):
        similar, different = methods.neighbours("MEX", similarity, cultures, survey)
    # paper scores of MEX's majority answers against each culture of the file, rounded to one decimal as the
    # file is: BOL 71.5, KEN 67.9, ZWE 65.5 ... CAN 50.3, NLD 49.1, NZL 49.1 (NZL is lower before rounding;
    # rounded, the tie keeps the file's order, NLD first)
    assert [c.code for c in similar] == ["BOL", "KEN", "ZWE"]
    assert [c.code for c in different] == ["NLD", "NZL", "CAN"]
    assert "MEX: not in country_similarity.json" in caplog.text


def test_a_neighbour_missing_from_the_catalogue_names_the_key(survey, catalogue, similarity):
    trimmed = {k: v for k, v in catalogue.items() if k != "CAN"}
    with pytest.raises(ConfigError, match="'cultures'.*CAN"):
        methods.neighbours("USA", similarity, trimmed, survey)


def test_every_method_builds_prompts(survey, catalogue, order, similarity):
    items = survey.items[:3]
    usa = catalogue["USA"]
    for method in methods.METHODS:
        culture = None if method == methods.CULTURE_UNAWARE else usa
        ps = methods.build_prompts(method, items, culture, survey, list(catalogue.values()), order, similarity=similarity)
        assert [p.key for p in ps] == [it.qid for it in items]
        assert ps[0].options == (1, 2, 3, 4)
        if method in (methods.P3, methods.P1_P3, methods.P2_P3):
            assert ps[0].user.count("\nQuestion: ") + ps[0].user.startswith("Question: ") == 5
            assert ps[0].user.endswith("#Answer:")
        else:
            assert ps[0].user == prompts.render_question(items[0])
    p3 = methods.build_prompts(methods.P3, items, usa, survey, list(catalogue.values()), order)[0]
    assert p3.system == prompts.system_culture_unaware()
    p2 = methods.build_prompts(methods.P2_P3, items, usa, survey, list(catalogue.values()), order, similarity=similarity)[0]
    assert "Before you respond" in p2.system


def test_self_alignment_examples_use_majority_answers_and_skip_missing(survey, order):
    by_id = {it.qid: it for it in survey.items}
    ex = methods.self_alignment_examples("Q1", "USA", order, survey, by_id)
    assert len(ex) == 5
    usa = survey.dists["USA"]
    assert all(item.qid in usa and answer == usa[item.qid].majority for item, answer in ex)
    assert [item.qid for item, _ in ex] == [q for q in order["Q1"] if q in usa][:5]
