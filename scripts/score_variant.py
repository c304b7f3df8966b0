"""Score one variant's WVS answers (every method, run and persona) into the tidy alignment tables."""

from culturespa.logs import run_logged
from culturespa.scoring import score_variant_files

run_logged(
    snakemake.log[0],
    lambda: score_variant_files(
        snakemake.wildcards.model,
        snakemake.wildcards.variant,
        snakemake.input.answers,
        (snakemake.input.questions, snakemake.input.proportions),
        snakemake.params.countries,
        snakemake.params.scoring,
        snakemake.output.table,
        snakemake.output.matrices,
        snakemake.output.topics,
        order_seed=snakemake.params.order_seed,
        boot_out=snakemake.output.boot,
    ),
)
