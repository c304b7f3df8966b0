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


def test_adding_mexico_to_the_cultures_list(paper_config):
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


MEXICO = {"code": "MEX", "adjective": "Mexican", "article": "a", "continent": "America"}


def test_extra_cultures_are_appended_to_the_catalogue(paper_config):
    cfg = copy.deepcopy(paper_config)
    cfg["extra_cultures"] = [MEXICO]
    cfg["countries"] = ["USA", "MEX"]
    validate_schema(cfg)
    check_config(cfg)
    catalogue = catalogue_from_config(cfg)
    assert list(catalogue)[-1] == "MEX" and len(catalogue) == 19
    assert catalogue["MEX"].with_article == "a Mexican"
    cfg.pop("countries")
    assert countries(cfg)[-1] == "MEX"  # the default run covers the whole merged catalogue


def test_a_culture_defined_twice_names_both_keys(paper_config):
    cfg = copy.deepcopy(paper_config)
    cfg["extra_cultures"] = [MEXICO, dict(paper_config["cultures"][13])]
    with pytest.raises(ConfigError, match=r"'extra_cultures\[1\]\.code': duplicate culture code 'NGA' "
                                          r"\(already defined at 'cultures\[13\]'\)"):
        check_config(cfg)


def test_extra_culture_without_survey_data_names_its_key(paper_config):
    cfg = copy.deepcopy(paper_config)
    cfg["extra_cultures"] = [MEXICO, {"code": "FRA", "adjective": "French", "article": "a", "continent": "Europe"}]
    with pytest.raises(ConfigError, match=r"'extra_cultures\[1\]': FRA has no survey answers"):
        check_config(cfg)


def test_path_keys_are_the_schema_s_path_keys(paper_config):
    import yaml

    from culturespa.config import SCHEMA_PATH, path_keys

    cfg = copy.deepcopy(paper_config)
    cfg["data_mirror"] = "m"
    cfg["mmlu_mirror"] = "b"
    keys = path_keys(yaml.safe_load(SCHEMA_PATH.read_text()), cfg)
    assert sorted(keys) == sorted([("data_mirror",), ("mmlu_mirror",), ("models", "Meta-Llama-3-8B-Instruct", "path")])


def test_tilde_and_variables_in_path_keys_are_expanded(paper_config, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "models/mine").mkdir(parents=True)
    (home / "mirror").mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MIRRORS", str(home))
    cfg = copy.deepcopy(paper_config)
    cfg["models"]["mine"] = {"path": "~/models/mine", "dtype": "float32"}
    cfg["run_models"] = ["mine"]
    cfg["data_mirror"] = "${MIRRORS}/mirror"
    check_config(cfg)
    assert cfg["models"]["mine"]["path"] == str(home / "models/mine")
    assert cfg["data_mirror"] == str(home / "mirror")
    # a hub id is left alone
    assert cfg["models"]["Meta-Llama-3-8B-Instruct"]["path"] == "meta-llama/Meta-Llama-3-8B-Instruct"


def test_missing_local_model_folder_names_the_key(paper_config, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = copy.deepcopy(paper_config)
    cfg["models"]["mine"] = {"path": "~/models/absent"}
    cfg["run_models"] = ["mine"]
    with pytest.raises(ConfigError, match=r"'models\.mine\.path' \(run_models\[0\]\): local model folder "
                                          r"'~/models/absent' \(.*/models/absent\) does not exist"):
        check_config(cfg)
    cfg["models"]["mine"] = {"path": "$NO_SUCH_VARIABLE_XYZ/m"}
    with pytest.raises(ConfigError, match=r"'models\.mine\.path': environment variable NO_SUCH_VARIABLE_XYZ"):
        check_config(cfg)
    cfg["models"]["mine"] = {"path": "some-org/some-model"}  # a hub id: checked when it is loaded
    check_config(cfg)


def test_missing_mmlu_mirror_names_the_key(paper_config, tmp_path):
    cfg = copy.deepcopy(paper_config)
    cfg["mmlu_mirror"] = str(tmp_path / "absent")
    with pytest.raises(ConfigError, match=r"'mmlu_mirror'"):
        check_config(cfg)


def test_variant_methods_override_the_tuned_methods(paper_config):
    from culturespa.results import variant_methods

    cfg = copy.deepcopy(paper_config)
    joint, specific = "joint-crqpc-culture_aware-100", "specific-crqpc-culture_aware-100"
    cfg["evaluation"]["tuned_methods"] = ["culture_aware"]
    cfg["evaluation"]["variant_methods"] = {joint: ["culture_aware", "culture_aware_self_alignment"]}
    validate_schema(cfg)
    check_config(cfg)
    methods = variant_methods(cfg)
    assert methods[joint] == ["culture_aware", "culture_aware_self_alignment"]
    assert methods[specific] == ["culture_aware"]
    cfg["evaluation"]["variant_methods"] = {"joint-rds-culture_aware-7": ["culture_aware"]}
    with pytest.raises(ConfigError, match="evaluation.variant_methods.joint-rds-culture_aware-7"):
        check_config(cfg)
