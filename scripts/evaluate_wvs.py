"""Step 5: one evaluation cell: a base model or an adapter answers the WVS items as one persona."""

from culturespa.answering import AnswerSettings, runtime_keys
from culturespa.evaluation import evaluate_persona
from culturespa.logs import run_logged

run_logged(
    snakemake.log[0],
    lambda: evaluate_persona(
        snakemake.params.model,
        AnswerSettings.from_config(snakemake.params.answering, runtime_keys(snakemake.config["answering"])),
        snakemake.wildcards.method,
        snakemake.wildcards.persona,
        snakemake.params.runs,
        (snakemake.input.questions, snakemake.input.proportions),
        snakemake.input.examples,
        snakemake.params.cultures,
        snakemake.output[0],
        max_items=snakemake.params.max_items,
        adapter=snakemake.input.adapter or None,
        order=snakemake.wildcards.order,
        order_seed=snakemake.params.order_seed,
        similarity_file=snakemake.input.similarity,
    ),
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
