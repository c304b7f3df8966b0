import re
import sys

# The Snakefile imports the package from the workflow's tree; scripts find it through the
# scripts/culturespa link (Snakemake puts a script's folder on sys.path, in any conda env too).
sys.path.insert(0, workflow.basedir)

from culturespa.config import check_config, countries as configured_countries
from culturespa.fetch import read_checksums

check_config(config, workdir=".")

COUNTRIES = configured_countries(config)
CHECKSUMS = read_checksums()
RELEASED_RESULT_FILES = [p for p in CHECKSUMS if p.startswith("result/")]


wildcard_constraints:
    country="[A-Z]{3}",
    model=r"[A-Za-z0-9._-]+",
    method="[a-z0-9_]+",


def culturespa_file(rel):
    return f"resources/culturespa/{rel}"


def released_answer_files(model):
    """The released answer files that the configured methods and countries need."""
    wanted = []
    for method in config["released"]["methods"]:
        if method == "culture_unaware":
            wanted.append(f"result/{model}/wvs_result_culture_unaware_0.json")
        else:
            wanted += [
                f"result/{model}/wvs_result_{method}_{c}_0.json"
                for c in released_countries(model)
            ]
    return [culturespa_file(p) for p in wanted if p in CHECKSUMS]


def released_countries(model):
    """Every catalogued culture the authors released answers for (independent of 'countries')."""
    codes = [c["code"] for c in config["cultures"]]
    return [c for c in codes if f"result/{model}/wvs_result_culture_aware_{c}_0.json" in CHECKSUMS]


def persona_methods():
    return [m for m in config["released"]["methods"] if m != "culture_unaware"]


def get_final_output():
    data = [culturespa_file(p) for p in CHECKSUMS]
    released = [f"results/released/{m}/alignment.csv" for m in config["released"]["models"]]
    return data + released
