"""The workflow's own rule graph (Graphviz dot), for the framework figure."""

from culturespa.figures import export_rulegraph
from culturespa.logs import run_logged

run_logged(
    snakemake.log[0],
    lambda: export_rulegraph(snakemake.params.snakefile, snakemake.params.config, snakemake.output[0]),
)
