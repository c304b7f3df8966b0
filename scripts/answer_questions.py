"""Step 2: the model answers every pooled question, culture-unaware or as one culture (P1 or P2)."""

from culturespa.answering import AnswerSettings, answer_pool, runtime_keys
from culturespa.logs import run_logged

persona = snakemake.wildcards.persona
run_logged(
    snakemake.log[0],
    lambda: answer_pool(
        snakemake.params.model,
        AnswerSettings.from_config(snakemake.params.answering, runtime_keys(snakemake.config["answering"])),
        snakemake.input.pool,
        snakemake.wildcards.method,
        next((c for c in snakemake.params.cultures if c["code"] == persona), None),
        snakemake.output[0],
        survey_files=(snakemake.input.questions, snakemake.input.proportions),
        cultures=snakemake.params.cultures,
        similarity_file=snakemake.input.similarity,
    ),
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
