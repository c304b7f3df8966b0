"""Step 4: train one QLoRA adapter (culture-joint, or one culture's culture-specific adapter)."""

from culturespa.finetune import train_variant
from culturespa.logs import run_logged

run_logged(
    snakemake.log[0],
    lambda: train_variant(
        snakemake.params.model,
        snakemake.input.pairs,
        snakemake.wildcards.setting,
        int(snakemake.wildcards.fraction),
        snakemake.params.cultures,
        (snakemake.input.questions, snakemake.input.proportions),
        snakemake.params.preset,
        snakemake.params.scope,
        snakemake.params.seed,
        snakemake.params.checkpoints,
        snakemake.output.adapter,
        snakemake.output.loss,
        snakemake.output.stats,
        similarity_file=snakemake.input.similarity,
        country=snakemake.wildcards.get("country"),
        data=snakemake.wildcards.data,
    ),
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
