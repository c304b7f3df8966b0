"""Step 1, filters: the paper's four filters and our near-duplicate filter, with counts."""

from culturespa.logs import run_logged
from culturespa.stages import filter_question_pool

run_logged(
    snakemake.log[0],
    lambda: filter_question_pool(
        snakemake.input.raw,
        snakemake.wildcards.source,
        snakemake.input.questions,
        snakemake.params.settings,
        snakemake.output,
    ),
)
