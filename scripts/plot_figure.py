"""Draw one paper figure from its rule's named inputs and settings."""

from culturespa.figures import render
from culturespa.logs import run_logged

run_logged(
    snakemake.log[0],
    lambda: render(snakemake.params.figure, snakemake.input, snakemake.params.settings, snakemake.output),
)
