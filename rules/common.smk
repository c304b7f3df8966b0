import os
import re
import sys
from dataclasses import asdict

# The Snakefile imports the package from the workflow's tree; scripts find it through the
# scripts/culturespa link (Snakemake puts a script's folder on sys.path, in any conda env too).
sys.path.insert(0, workflow.basedir)

from culturespa.answering import output_keys
from culturespa.config import check_config, countries as configured_countries
from culturespa.cultures import catalogue_from_config, continents_of
from culturespa.fetch import MMLU_CHECKSUM_FILE, read_checksums
from culturespa.methods import NO_PERSONA, PERSONA_FREE, p2_candidates, uses_neighbours
from culturespa.models import ModelSpec
from culturespa.results import variant_methods as configured_variants

check_config(config, workdir=".")  # also expands ~ and $VARS in the path keys, in place

CATALOGUE = catalogue_from_config(config)
COUNTRIES = configured_countries(config)
TOPICS = list(range(13))
RUN_MODELS = config.get("run_models", [])
SOURCE = config["questions"]["source"]
VARIANTS = ["base"] + list(config["sft"]["variants"])
STRATEGIES = list(config["pairs"]["strategies"])
ORDERS = list(config["evaluation"]["orders"])
MODEL_THREADS = int(config.get("model_threads", 2))
VARIANT = r"(joint|specific)-(crqpc|rds|cds)-(culture_aware|cross_culture)-[0-9]+"
CHECKSUMS = read_checksums()
MMLU_CHECKSUMS = read_checksums(MMLU_CHECKSUM_FILE)


wildcard_constraints:
    country="[A-Z]{3}",
    persona="[A-Z]{3}|none",
    order="original|reversed|permuted",
    model=r"[A-Za-z0-9._-]+",
    method="[a-z0-9_]+",
    source="generate|released",
    topic="[0-9]+",
    strategy="crqpc|rds|cds",
    data="crqpc|rds|cds",
    setting="culture_aware|cross_culture",
    fraction="[0-9]+",
    variant=f"base|{VARIANT}",
    root="results|results/released",


def culturespa_file(rel):
    return f"resources/culturespa/{rel}"


def mmlu_file(rel):
    return f"resources/mmlu/{rel}"


SURVEY_FILES = {
    "questions": culturespa_file("data/wvs_questions.json"),
    "proportions": culturespa_file("data/proportions_group_by_country.json"),
}
# what a prompt or training example naming P2's neighbours needs (the survey for a culture absent
# from the similarity file)
P2_FILES = {**SURVEY_FILES, "similarity": culturespa_file("data/country_similarity.json")}


# --- what the run produces ----------------------------------------------------------------------


def get_final_output():
    data = [culturespa_file(p) for p in CHECKSUMS]
    if config["mmlu"]["enabled"]:
        data += [mmlu_file(p) for p in MMLU_CHECKSUMS]
    released = [f"results/released/{m}/alignment.csv" for m in config["released"]["models"]]
    return data + released + pipeline_outputs()


def pipeline_outputs():
    """Steps 1-5 for every run model: question pool, pair sets, adapters, evaluation, MMLU."""
    out = []
    for model in RUN_MODELS:
        out.append(f"results/{model}/questions/{SOURCE}/filter_counts.csv")
        for setting in config["pairs"]["settings"]:
            out.append(f"results/{model}/pairs/{SOURCE}/{setting}/stats.csv")
        out.append(f"results/{model}/alignment.csv")
        if config["sft"]["variants"]:
            out.append(f"results/{model}/sft/adapters.csv")
        if config["mmlu"]["enabled"] and config["mmlu"]["variants"]:  # no adapter: nothing to compare
            out.append(f"results/{model}/mmlu.csv")
    return out


# --- models and cultures, as the jobs get them ----------------------------------------------------


def model_params(model):
    """The model specification every model job of ``model`` loads (models.ModelSpec)."""
    return ModelSpec.from_config(model, config).as_dict()


def model_input(wildcards):
    """The model folder as an input when it is a file target (converted GGUF or local folder)."""
    spec = ModelSpec.from_config(wildcards.model, config)
    if spec.gguf or os.path.isdir(spec.path):
        return spec.path
    return []


def culture_record(code):
    return asdict(CATALOGUE[code])


def prompt_cultures(code, method):
    """The catalogue records a prompt as ``code`` with ``method`` may name: the culture itself
    and, for cross-culture thinking, the cultures its neighbours are chosen from."""
    if code == NO_PERSONA:
        return []
    codes = [code]
    if uses_neighbours(method):
        codes += [c for c in p2_candidates(CATALOGUE) if c != code]
    return [culture_record(c) for c in codes]


def answering_params():
    """The answering keys that can change an answer (the others reach the job from the config)."""
    return output_keys(config["answering"])


# --- variants, adapters, evaluation cells ----------------------------------------------------------


def parse_variant(variant):
    scope, data, setting, fraction = variant.split("-")
    return scope, data, setting, int(fraction)


def sft_preset(scope):
    """The chosen training preset's settings for ``scope`` (joint or specific: its effective batch
    only), config presets first, then the built-in ones."""
    from culturespa.finetune import PRESETS

    preset = dict({**PRESETS, **config["sft"].get("presets", {})}[config["sft"]["preset"]])
    batch = preset.get("effective_batch")
    if isinstance(batch, dict):
        preset["effective_batch"] = batch[scope]
    return preset


def training_cultures(wildcards):
    """The catalogue records a training job's system prompts may name."""
    countries = COUNTRIES if "country" not in wildcards.keys() else [wildcards.country]
    records = {}
    for code in countries:
        for record in prompt_cultures(code, wildcards.setting):
            records[record["code"]] = record
    return list(records.values())


def adapter_stats_files(wildcards):
    """train_stats.json of every adapter of a model: one per joint variant, one per country of a
    specific variant."""
    out = []
    for variant in config["sft"]["variants"]:
        root = f"results/{wildcards.model}/sft/{variant}"
        if parse_variant(variant)[0] == "joint":
            out.append(f"{root}/train_stats.json")
        else:
            out += [f"{root}/{c}/train_stats.json" for c in COUNTRIES]
    return out


def adapter_input(wildcards):
    """The adapter an evaluation cell merges into the model: none (base), the joint one, or the
    persona's own culture-specific one."""
    if wildcards.variant == "base":
        return []
    root = f"results/{wildcards.model}/sft/{wildcards.variant}"
    if parse_variant(wildcards.variant)[0] == "joint":
        return f"{root}/adapter"
    return f"{root}/{wildcards.persona}/adapter"


def variant_methods(variant):
    """The methods a variant is evaluated with (results.variant_methods)."""
    return configured_variants(config)[variant]


def method_max_items(method):
    """How many WVS items ``method`` is evaluated on (None: all)."""
    evaluation = config["evaluation"]
    return (evaluation.get("max_items_by_method") or {}).get(method, evaluation["max_items"])


def method_personas(method):
    return [NO_PERSONA] if method in PERSONA_FREE else COUNTRIES


def variant_answer_files(wildcards):
    """Every evaluation cell of a variant: methods x option orders x personas (each file holds every run)."""
    return [
        f"results/{wildcards.model}/eval/{wildcards.variant}/{method}/{order}/{persona}.jsonl"
        for method in variant_methods(wildcards.variant)
        for order in ORDERS
        for persona in method_personas(method)
    ]


def raw_question_files(wildcards):
    if wildcards.source == "released":
        return [
            culturespa_file(f"data/Meta-Llama-3-8B-Instruct/generated_questions_topic_{t}_from_all_seed.json")
            for t in TOPICS
        ]
    return [f"results/{wildcards.model}/questions/generate/raw/topic_{t}.jsonl" for t in TOPICS]


# --- the authors' released answers ------------------------------------------------------------------


def released_countries(model):
    """Every catalogued culture the authors released answers for (independent of 'countries')."""
    return [c for c in CATALOGUE if f"result/{model}/wvs_result_culture_aware_{c}_0.json" in CHECKSUMS]


def persona_methods():
    return [m for m in config["released"]["methods"] if m != "culture_unaware"]


def released_answer_files(model):
    """The released answer files that the configured methods and countries need."""
    wanted = []
    for method in config["released"]["methods"]:
        if method == "culture_unaware":
            wanted.append(f"result/{model}/wvs_result_culture_unaware_0.json")
        else:
            wanted += [f"result/{model}/wvs_result_{method}_{c}_0.json" for c in released_countries(model)]
    return [culturespa_file(p) for p in wanted if p in CHECKSUMS]
