"""Step 3 for one culture: its CRQPC / RDS / CDS pairs and its rows of the statistics."""

from culturespa.logs import run_logged
from culturespa.pairs import collect_culture_files

run_logged(
    snakemake.log[0],
    lambda: collect_culture_files(
        snakemake.input.pool,
        snakemake.input.unaware,
        snakemake.input.aware,
        snakemake.wildcards.country,
        snakemake.params.seed,
        dict(zip(snakemake.params.strategies, snakemake.output.sets)),
        snakemake.output.stats,
        snakemake.output.topics,
        setting=snakemake.wildcards.setting,
        answering=snakemake.params.answering,
    ),
)
