"""General ability: MMLU 5-shot for the base model or an adapter."""

from culturespa.logs import run_logged
from culturespa.stages import evaluate_mmlu

run_logged(
    snakemake.log[0],
    lambda: evaluate_mmlu(
        snakemake.params.model,
        snakemake.wildcards.variant,
        snakemake.input,
        snakemake.params.mmlu,
        snakemake.output[0],
    ),
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
