"""Step 3, all cultures: the culture-joint pair sets and the statistics tables."""

from culturespa.logs import run_logged
from culturespa.pairs import join_culture_files

strategies, countries = snakemake.params.strategies, snakemake.params.countries
sets = list(snakemake.input.sets)  # expand() order: strategy-major, then country
run_logged(
    snakemake.log[0],
    lambda: join_culture_files(
        {s: sets[i * len(countries) : (i + 1) * len(countries)] for i, s in enumerate(strategies)},
        dict(zip(strategies, snakemake.output.joint)),
        snakemake.input.stats,
        snakemake.input.topics,
        snakemake.output.stats,
        snakemake.output.topics,
    ),
)
