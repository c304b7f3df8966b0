"""Fetch one released data file or MMLU file (mirror or download) and verify its pinned sha256."""

import logging

from culturespa.fetch import DATASETS, materialise
from culturespa.logs import run_logged


def main():
    keys = DATASETS[snakemake.params.dataset]
    source = materialise(
        snakemake.wildcards.relpath,
        snakemake.output[0],
        snakemake.params.sha256,
        # read from the config, not params: where a verified file came from must not trigger a rerun
        snakemake.config[keys["mirror"]],
        snakemake.config[keys["base_url"]],
    )
    logging.info("%s: verified sha256 %s (from %s)", snakemake.wildcards.relpath, snakemake.params.sha256, source)


run_logged(snakemake.log[0], main)
