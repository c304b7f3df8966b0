"""Score the authors' released answers into the tidy alignment table and the country matrices."""

from culturespa.logs import run_logged
from culturespa.released import score_released_files

run_logged(
    snakemake.log[0],
    lambda: score_released_files(
        snakemake.wildcards.model,
        snakemake.input.answers,
        snakemake.params.methods,
        (snakemake.input.questions, snakemake.input.proportions),
        snakemake.params.countries,
        snakemake.params.scoring,
        snakemake.output.table,
        snakemake.output.matrices,
        snakemake.output.wide,
        snakemake.output.topics,
    ),
)
