"""Fetch the pinned files of one dataset (mirror or download), each verified against its sha256."""

from culturespa.fetch import DATASETS, materialise_all
from culturespa.logs import run_logged

keys = DATASETS[snakemake.params.dataset]
run_logged(
    snakemake.log[0],
    lambda: materialise_all(
        snakemake.params.checksums,
        snakemake.output,
        # read from the config, not params: where a verified file came from must not trigger a rerun
        snakemake.config[keys["mirror"]],
        snakemake.config[keys["base_url"]],
    ),
)
