"""Step 4: train one QLoRA adapter (culture-joint, or one culture's culture-specific adapter)."""

from culturespa.logs import run_logged
from culturespa.stages import finetune_variant

run_logged(
    snakemake.log[0],
    lambda: finetune_variant(
        snakemake.params.model,
        snakemake.wildcards,
        snakemake.input,
        snakemake.params.preset,
        snakemake.params.catalogue,
        snakemake.params.seed,
        snakemake.params.checkpoints,
        snakemake.output,
    ),
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
