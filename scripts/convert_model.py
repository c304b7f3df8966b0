"""Convert a GGUF model shipped in a Python package into a Hugging Face folder (offline)."""

from culturespa.logs import run_logged
from culturespa.models import convert_packaged_gguf

run_logged(
    snakemake.log[0],
    lambda: convert_packaged_gguf(snakemake.params.gguf["package"], snakemake.params.gguf["file"], snakemake.output[0]),
    threads=snakemake.threads,
)
