import copy

import pytest

from culturespa.config import check_config, countries, validate_schema
from culturespa.cultures import catalogue_from_config
from culturespa.errors import ConfigError

from conftest import PAPER_COUNTRIES


def test_paper_config_is_valid(paper_config):
    validate_schema(paper_config)
    check_config(paper_config)
    assert countries(paper_config) == PAPER_COUNTRIES
    nzl = catalogue_from_config(paper_config)["NZL"]
    assert (nzl.article, nzl.adjective, nzl.continent) == ("a", "New Zealand", "Oceania")


def test_schema_error_names_the_bad_key(paper_config):
    bad = copy.deepcopy(paper_config)
    bad["scoring"]["n_boot"] = "lots"
    with pytest.raises(ConfigError, match=r"'scoring\.n_boot'"):
        validate_schema(bad)
    bad = copy.deepcopy(paper_config)
    bad["cultures"][3]["article"] = "the"
    with pytest.raises(ConfigError, match=r"'cultures\[3\]\.article'"):
        validate_schema(bad)
    bad = copy.deepcopy(paper_config)
    bad["n_questions"] = 3
    with pytest.raises(ConfigError, match="n_questions"):
        validate_schema(bad)


def test_unknown_culture_code_names_the_key(paper_config):
    bad = copy.deepcopy(paper_config)
    bad["countries"] = ["USA", "XYZ"]
    with pytest.raises(ConfigError, match=r"countries\[1\].*XYZ"):
        check_config(bad)


def test_culture_without_survey_data(paper_config):
    bad = copy.deepcopy(paper_config)
    bad["cultures"].append({"code": "FRA", "adjective": "French", "article": "a", "continent": "Europe"})
    with pytest.raises(ConfigError, match=r"cultures\[18\].*FRA has no survey answers"):
        check_config(bad)


def test_adding_mexico_is_a_config_edit(paper_config):
    cfg = copy.deepcopy(paper_config)
    cfg["cultures"].append({"code": "MEX", "adjective": "Mexican", "article": "a", "continent": "America"})
    cfg["countries"] = cfg["countries"] + ["MEX"]
    validate_schema(cfg)
    check_config(cfg)
    assert catalogue_from_config(cfg)["MEX"].with_article == "a Mexican"


def test_missing_mirror_names_the_key(paper_config, tmp_path):
    cfg = copy.deepcopy(paper_config)
    cfg["data_mirror"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="data_mirror"):
        check_config(cfg)


def test_option_orders_are_checked(paper_config):
    from culturespa.config import validate_schema
    from culturespa.errors import ConfigError

    assert paper_config["evaluation"]["orders"] == ["original", "reversed"]
    for bad, message in ((["original", "shuffled"], "is not one of"), (["original", "original"], "non-unique"),
                         ([], "should be non-empty")):
        cfg = {**paper_config, "evaluation": {**paper_config["evaluation"], "orders": bad}}
        with pytest.raises(ConfigError, match=message) as e:
            validate_schema(cfg)
        assert "evaluation.orders" in str(e.value)
