# Every table of the paper, rendered from results/ (never by re-running a model): CSV for machines,
# Markdown for the README, LaTeX (booktabs) for papers. culturespa/tables holds one spec per table
# (caption, builder, input names, settings); the rules below name each table's inputs, and
# tests/test_tables.py checks that they match the specs. Each rule renders {table}: the first
# rule is written out, the others reuse it (`use rule`) with their own inputs and tables.
# The params functions and target lists live in rules/paper.smk. Needs SOURCE from rules/common.smk.

import os

from culturespa import tables


include: "paper.smk"


# editing a prompt re-renders the prompt templates table
PROMPTS_FILE = os.path.relpath(os.path.join(workflow.basedir, "culturespa", "prompts.py"))


# the tables read from alignment.csv alone
rule table_alignment:
    input:
        alignment="results/{model}/alignment.csv",
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
        table="|".join(tables.reading("alignment")),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        table=lambda wildcards: wildcards.table,
        caption=table_caption,
        settings=table_settings,
    script:
        "../scripts/render_table.py"


use rule table_alignment as table_data_quantity with:
    input:
        alignment="results/{model}/alignment.csv",
        train_stats=trained_fraction_stats,
    wildcard_constraints:
        table="data_quantity",


use rule table_alignment as table_alignment_by_topic with:
    input:
        by_topic="results/{model}/alignment_by_topic.csv",
    wildcard_constraints:
        table="alignment_by_topic",


use rule table_alignment as table_general_ability with:
    input:
        mmlu="results/{model}/mmlu.csv" if config["mmlu"]["enabled"] and config["mmlu"]["variants"] else [],
    wildcard_constraints:
        table="general_ability",


use rule table_alignment as table_collected_pairs with:
    input:
        pairs_stats=expand(
            "results/{{model}}/pairs/{source}/{setting}/stats.csv", source=SOURCE, setting=config["pairs"]["settings"]
        ),
    wildcard_constraints:
        table="collected_pairs",


use rule table_alignment as table_question_filtering with:
    input:
        filter_counts=f"results/{{model}}/questions/{SOURCE}/filter_counts.csv",
    wildcard_constraints:
        table="question_filtering",


use rule table_alignment as table_topic_distribution with:
    input:
        topic_counts=f"results/{{model}}/questions/{SOURCE}/topic_counts.csv",
        pool=f"results/{{model}}/questions/{SOURCE}/pool.jsonl",
        pair_topics=expand(
            "results/{{model}}/pairs/{source}/{setting}/topic_stats.csv",
            source=SOURCE,
            setting=config["pairs"]["settings"],
        ),
    wildcard_constraints:
        table="topic_distribution",


use rule table_alignment as table_example_questions with:
    input:
        pool=f"results/{{model}}/questions/{SOURCE}/pool.jsonl",
    wildcard_constraints:
        table="example_questions",


# no input: the run's settings, from the config alone
use rule table_alignment as table_hyperparameters with:
    input:
        [],
    wildcard_constraints:
        table="hyperparameters",


use rule table_alignment as table_prompt_templates with:
    input:
        prompts=PROMPTS_FILE,
    wildcard_constraints:
        table="prompt_templates",


# the authors' released answers, scored (results/released/{model}): the tables they can fill
use rule table_alignment as released_table_alignment with:
    input:
        alignment="results/released/{model}/alignment.csv",
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
        table="|".join(t for t in tables.reading("alignment") if t in tables.RELEASED_TABLES),
    params:
        settings=released_table_settings,


use rule released_table_alignment as released_table_alignment_by_topic with:
    input:
        by_topic="results/released/{model}/alignment_by_topic.csv",
    wildcard_constraints:
        table="alignment_by_topic",
