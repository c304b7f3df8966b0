"""Step 2: the model answers every pooled question, culture-unaware or as one culture."""

from culturespa.logs import run_logged
from culturespa.stages import answer_question_pool

run_logged(
    snakemake.log[0],
    lambda: answer_question_pool(
        snakemake.params.model,
        snakemake.input.pool,
        snakemake.params.method,
        snakemake.params.culture,
        snakemake.params.settings,
        snakemake.output[0],
        survey_files=(snakemake.input.get("questions"), snakemake.input.get("proportions")),
        catalogue=snakemake.params.get("catalogue"),
        similarity_file=snakemake.input.get("similarity"),
    ),
    threads=snakemake.threads,
)
