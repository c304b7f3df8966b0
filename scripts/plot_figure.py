"""Draw one paper figure from the tidy results tables."""

from culturespa.figures import render
from culturespa.logs import run_logged

run_logged(
    snakemake.log[0],
    lambda: render(
        snakemake.params.figure,
        snakemake.input,
        snakemake.params,
        snakemake.output,
        model=snakemake.wildcards.get("model"),
    ),
)
