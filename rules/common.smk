import os
import re
import sys

# The Snakefile imports the package from the workflow's tree; scripts find it through the
# scripts/culturespa link (Snakemake puts a script's folder on sys.path, in any conda env too).
sys.path.insert(0, workflow.basedir)

from culturespa.config import check_config, countries as configured_countries
from culturespa.cultures import culture_entries
from culturespa.fetch import read_checksums
from culturespa.design import ALIGNMENT_FIGURES, RELEASED_FIGURES
from culturespa.results import released_methods, variant_methods as configured_variants

check_config(config, workdir=".")  # also expands ~ and $VARS in the path keys, in place

CULTURES = culture_entries(config)  # the catalogue: cultures + extra_cultures
COUNTRIES = configured_countries(config)
TOPICS = list(range(13))
RUN_MODELS = config.get("run_models", [])
SOURCE = config["questions"]["source"]
VARIANTS = ["base"] + list(config["sft"]["variants"])
RUNS = list(range(config["evaluation"]["runs"]))
VARIANT = r"(joint|specific)-(crqpc|rds|cds)-(culture_aware|cross_culture)-[0-9]+"
CHECKSUMS = read_checksums()
RELEASED_RESULT_FILES = [p for p in CHECKSUMS if p.startswith("result/")]


wildcard_constraints:
    country="[A-Z]{3}",
    model=r"[A-Za-z0-9._-]+",
    method="[a-z0-9_]+",
    source="generate|released",
    topic="[0-9]+",
    strategy="crqpc|rds|cds",
    data="crqpc|rds|cds",
    setting="culture_aware|cross_culture",
    fraction="[0-9]+",
    run="[0-9]+",
    variant=f"base|{VARIANT}",
    root="results|results/released",


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
    codes = [c["code"] for c in CULTURES]
    return [c for c in codes if f"result/{model}/wvs_result_culture_aware_{c}_0.json" in CHECKSUMS]


def persona_methods():
    return [m for m in config["released"]["methods"] if m != "culture_unaware"]


def get_final_output():
    data = [culturespa_file(p) for p in CHECKSUMS]
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
        if config["mmlu"]["zip"]:
            out.append(f"results/{model}/mmlu.csv")
    return out


def figure_targets(model):
    """Every figure of a model run by the pipeline (PDF and PNG)."""
    names = list(ALIGNMENT_FIGURES) + ["figure3_data"]
    return [f"results/{model}/figures/{name}.{ext}" for name in names for ext in ("pdf", "png")]


def released_figure_targets(model):
    return [f"results/released/{model}/figures/{name}.{ext}" for name in RELEASED_FIGURES for ext in ("pdf", "png")]


def paper_outputs():
    """Every figure and table: for each run model, and for the released answers."""
    out = ["results/figures/figure2_framework.png", "results/figures/figure2_framework.pdf"]
    for model in RUN_MODELS:
        out += figure_targets(model) + table_targets(model)
    for model in config["released"]["models"]:
        out += released_figure_targets(model) + released_table_targets(model)
    return out


def figure_settings(wildcards):
    """What the run asked for (a variant or method outside it is drawn as 'not run'), and the
    country order."""
    if wildcards.root.endswith("released"):
        codes = [c["code"] for c in CULTURES]
        return {"source": "released", "variants": released_methods(config), "countries": codes}
    return {"source": "pipeline", "variants": configured_variants(config), "countries": COUNTRIES}


def sft_preset(scope):
    """The chosen training preset (config presets first, then the built-in paper/demo ones)."""
    from culturespa.finetune import PRESETS

    name = config["sft"]["preset"]
    presets = {**PRESETS, **config["sft"].get("presets", {})}
    return {"name": name, "scope": scope, "settings": presets[name]}


def parse_variant(variant):
    scope, data, setting, fraction = variant.split("-")
    return scope, data, setting, int(fraction)


def adapter_inputs(wildcards):
    """The adapter folder(s) a variant evaluates: one (joint) or one per country (specific)."""
    if wildcards.variant == "base":
        return []
    scope = parse_variant(wildcards.variant)[0]
    root = f"results/{wildcards.model}/sft/{wildcards.variant}"
    if scope == "joint":
        return [f"{root}/adapter"]
    return [f"{root}/{c}/adapter" for c in COUNTRIES]


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


def variant_methods(variant):
    evaluation = config["evaluation"]
    return evaluation["base_methods"] if variant == "base" else evaluation["tuned_methods"]


def variant_answer_files(wildcards):
    return expand(
        "results/{model}/eval/{variant}/run{run}/{method}.jsonl",
        model=wildcards.model,
        variant=wildcards.variant,
        run=RUNS,
        method=variant_methods(wildcards.variant),
    )


def model_spec(model):
    """What the scripts need to load a model: path (local folder or hub id), dtype, chat template."""
    spec = config["models"][model]
    path = f"resources/models/{model}" if "gguf" in spec else spec["path"]
    return {
        "name": model,
        "path": path,
        "dtype": spec.get("dtype", "auto"),
        "chat_template": spec.get("chat_template"),
    }


def model_input(wildcards):
    """The model folder as an input when it is a file target (converted GGUF or local folder)."""
    spec = config["models"][wildcards.model]
    if "gguf" in spec:
        return f"resources/models/{wildcards.model}"
    return spec["path"] if os.path.isdir(spec["path"]) else []


def culture_record(code):
    return next(c for c in CULTURES if c["code"] == code)


def raw_question_files(wildcards):
    if wildcards.source == "released":
        return [
            culturespa_file(f"data/Meta-Llama-3-8B-Instruct/generated_questions_topic_{t}_from_all_seed.json")
            for t in TOPICS
        ]
    return [f"results/{wildcards.model}/questions/generate/raw/topic_{t}.jsonl" for t in TOPICS]
