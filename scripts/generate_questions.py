"""Step 1 for one topic: self-instruct question generation with the model."""

from culturespa.logs import run_logged
from culturespa.questions import generate_topic_file

run_logged(
    snakemake.log[0],
    lambda: generate_topic_file(
        snakemake.params.model,
        int(snakemake.wildcards.topic),
        snakemake.input.questions,
        snakemake.params.settings,
        snakemake.output.questions,
        snakemake.output.stats,
    ),
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
