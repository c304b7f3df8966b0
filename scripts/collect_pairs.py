"""Step 3: culture-related QA pairs (CRQPC) and the RDS / CDS controls, with statistics."""

from culturespa.logs import run_logged
from culturespa.stages import collect_pair_sets

run_logged(
    snakemake.log[0],
    lambda: collect_pair_sets(
        snakemake.input.pool,
        snakemake.input.unaware,
        dict(zip(snakemake.params.countries, snakemake.input.aware)),
        snakemake.params.strategies,
        snakemake.params.seed,
        snakemake.output,
        setting=snakemake.wildcards.setting,
        answering=snakemake.params.answering,
    ),
)
