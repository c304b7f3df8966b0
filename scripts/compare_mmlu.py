"""MMLU accuracy of each adapter against the base model, with paired bootstrap CIs."""

from culturespa.logs import run_logged
from culturespa.mmlu import compare_files

run_logged(
    snakemake.log[0],
    lambda: compare_files(
        snakemake.wildcards.model,
        snakemake.input.base,
        dict(zip(snakemake.params.variants, snakemake.input.variants)),
        snakemake.params.seed,
        snakemake.output[0],
    ),
)
