"""All variants of a model in one table: the mean over evaluation runs and their spread."""

from culturespa.logs import run_logged
from culturespa.stages import aggregate_alignment

run_logged(
    snakemake.log[0],
    lambda: aggregate_alignment(
        snakemake.input.tables, snakemake.input.matrices, snakemake.input.topics, snakemake.output
    ),
)
