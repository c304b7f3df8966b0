"""Step 1, filters: the paper's four filters and our near-duplicate filter, with counts."""

from culturespa.filters import filter_pool_files
from culturespa.logs import run_logged

run_logged(
    snakemake.log[0],
    lambda: filter_pool_files(
        snakemake.input.raw,
        snakemake.wildcards.source,
        snakemake.input.questions,
        snakemake.params.per_topic,
        snakemake.params.seed,
        snakemake.params.near_duplicate_threshold,
        snakemake.output.pool,
        snakemake.output.counts,
        snakemake.output.topics,
        snakemake.output.dropped,
    ),
)
