"""Render one table of the paper from the results files into CSV, Markdown and LaTeX."""

from culturespa.logs import run_logged
from culturespa.tables import render

run_logged(
    snakemake.log[0],
    lambda: render(snakemake.params.table, snakemake.input, snakemake.params.settings, snakemake.output),
)
