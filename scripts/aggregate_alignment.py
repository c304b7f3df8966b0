"""All variants of a model in one table: the mean over evaluation runs and their spread, per country and continent."""

from culturespa.logs import run_logged
from culturespa.scoring import aggregate_alignment_files

run_logged(
    snakemake.log[0],
    lambda: aggregate_alignment_files(
        snakemake.input.tables,
        snakemake.input.matrices,
        snakemake.input.topics,
        snakemake.output.table,
        snakemake.output.matrices,
        snakemake.output.topics,
        boot_paths=dict(zip(snakemake.params.variants, snakemake.input.boots)),
        ci_level=snakemake.params.ci_level,
        continents=snakemake.params.continents,
    ),
)
