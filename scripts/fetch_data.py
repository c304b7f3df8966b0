"""Fetch one pinned data file (mirror or download) and verify its sha256."""

from culturespa.fetch import DATASETS, materialise
from culturespa.logs import run_logged

keys = DATASETS[snakemake.params.dataset]
run_logged(
    snakemake.log[0],
    lambda: materialise(
        snakemake.wildcards.relpath,
        snakemake.output[0],
        snakemake.params.sha256,
        # read from the config, not params: where a verified file came from must not trigger a rerun
        snakemake.config[keys["mirror"]],
        snakemake.config[keys["base_url"]],
    ),
)
