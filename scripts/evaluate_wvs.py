"""Step 5: a base model or an adapter answers the WVS items for every country with one method."""

from culturespa.logs import run_logged
from culturespa.stages import evaluate_wvs

run_logged(
    snakemake.log[0],
    lambda: evaluate_wvs(
        snakemake.params.model,
        snakemake.wildcards.variant,
        snakemake.wildcards.method,
        int(snakemake.wildcards.run),
        snakemake.input,
        snakemake.params.countries,
        snakemake.params.catalogue,
        snakemake.params.settings,
        snakemake.params.evaluation,
        snakemake.output[0],
    ),
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
