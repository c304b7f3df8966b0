"""General ability: MMLU for the base model or a culture-joint adapter."""

from culturespa.logs import run_logged
from culturespa.mmlu import evaluate_file

mmlu = snakemake.params.mmlu
run_logged(
    snakemake.log[0],
    lambda: evaluate_file(
        snakemake.params.model,
        snakemake.input.adapter or None,
        snakemake.input.zip,
        snakemake.input.mapping,
        mmlu["subjects"],
        mmlu["max_per_subject"],
        mmlu["k_shot"],
        mmlu["seed"],
        snakemake.output[0],
        fmt=mmlu["format"],
        shots=mmlu["shots"],
        letters=mmlu["letters"],
    ),
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
