# Every table of the paper, rendered from results/ (never by re-running a model): CSV for machines,
# Markdown for the README, LaTeX (booktabs) for papers. The logic, and the input and target lists
# (table_inputs, table_targets, released_table_targets), live in culturespa/tables.py.

from culturespa.design import ALIGNMENT_FIGURES, RELEASED_FIGURES
from culturespa.results import released_methods
from culturespa.tables import (
    CAPTIONS as TABLE_CAPTIONS,
    RELEASED_TABLES,
    TABLES,
    released_table_inputs,
    released_table_targets,
    table_inputs,
    table_settings,
    table_targets,
)


rule render_table:
    input:
        unpack(lambda wildcards: table_inputs(wildcards.table, f"results/{wildcards.model}", config, workflow.basedir)),
    output:
        csv=report(
            "results/{model}/tables/{table}.csv",
            caption="../report/table.rst",
            category="Tables",
            subcategory="{model}",
            labels={"model": "{model}", "table": "{table}"},
        ),
        md="results/{model}/tables/{table}.md",
        tex="results/{model}/tables/{table}.tex",
    log:
        "logs/{model}/tables/{table}.log",
    wildcard_constraints:
        table="|".join(TABLES),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        table=lambda wildcards: wildcards.table,
        caption=lambda wildcards: TABLE_CAPTIONS[wildcards.table],
        settings=lambda wildcards: table_settings(wildcards.table, config, COUNTRIES, wildcards.model),
    script:
        "../scripts/render_table.py"


rule render_released_table:
    input:
        unpack(lambda wildcards: released_table_inputs(wildcards.table, f"results/released/{wildcards.model}")),
    output:
        csv=report(
            "results/released/{model}/tables/{table}.csv",
            caption="../report/table.rst",
            category="Tables",
            subcategory="{model} (released answers)",
            labels={"model": "{model}", "table": "{table}"},
        ),
        md="results/released/{model}/tables/{table}.md",
        tex="results/released/{model}/tables/{table}.tex",
    log:
        "logs/released/{model}/tables/{table}.log",
    wildcard_constraints:
        table="|".join(RELEASED_TABLES),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        table=lambda wildcards: wildcards.table,
        caption=lambda wildcards: TABLE_CAPTIONS[wildcards.table],
        settings=lambda wildcards: table_settings(
            wildcards.table, config, released_countries(wildcards.model), wildcards.model, source="released"
        ),
    script:
        "../scripts/render_table.py"


def figure_targets(model):
    names = list(ALIGNMENT_FIGURES) + ["figure3_data"]
    return [f"results/{model}/figures/{name}.{ext}" for name in names for ext in ("pdf", "png")]


def released_figure_targets(model):
    return [f"results/released/{model}/figures/{name}.{ext}" for name in RELEASED_FIGURES for ext in ("pdf", "png")]


def paper_outputs():
    out = ["results/figures/figure2_framework.png", "results/figures/figure2_framework.pdf"]
    for model in RUN_MODELS:
        out += figure_targets(model) + table_targets(model)
    for model in config["released"]["models"]:
        out += released_figure_targets(model) + released_table_targets(model)
    return out


def figure_settings(wildcards):
    if wildcards.root.endswith("released"):
        codes = list(CATALOGUE)
        return {"source": "released", "variants": released_methods(config), "countries": codes}
    return {"source": "pipeline", "variants": configured_variants(config), "countries": COUNTRIES}
