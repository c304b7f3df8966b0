"""Every adapter of a model with its status (trained / not trained, and why) in one CSV."""

from culturespa.logs import run_logged
from culturespa.untrained import write_adapter_summary

run_logged(
    snakemake.log[0],
    lambda: write_adapter_summary(snakemake.input.stats, snakemake.output[0], snakemake.wildcards.model),
)
