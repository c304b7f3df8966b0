"""Score one variant's WVS answers (every method and run) into the tidy alignment table."""

from culturespa.logs import run_logged
from culturespa.stages import score_variant

run_logged(
    snakemake.log[0],
    lambda: score_variant(
        snakemake.wildcards.model,
        snakemake.wildcards.variant,
        snakemake.input,
        snakemake.params.countries,
        snakemake.params.scoring,
        snakemake.output,
    ),
)
