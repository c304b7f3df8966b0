"""Fetch one released data file (mirror or download) and verify its pinned sha256."""

from culturespa.fetch import materialise
from culturespa.logs import run_logged

run_logged(
    snakemake.log[0],
    lambda: materialise(
        snakemake.wildcards.relpath,
        snakemake.output[0],
        snakemake.params.sha256,
        # read from the config, not params: where a verified file came from must not trigger a rerun
        snakemake.config["data_mirror"],
        snakemake.config["data_base_url"],
    ),
)
