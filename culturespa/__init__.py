"""culturespa: the logic behind the CultureSPA Snakemake workflow (Xu et al., NAACL 2025).

Each module holds one concern; the Snakemake scripts in ``scripts/`` only adapt the
``snakemake`` object to the functions here, so everything is testable without Snakemake.
"""

__version__ = "0.1.0"
