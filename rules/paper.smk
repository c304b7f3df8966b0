# What the rules of rules/tables.smk and rules/figures.smk need from the config: the settings of
# each table and figure (their params) and the lists of targets (`rule all`, `rule paper`).
# Functions only (rules/tables.smk includes this file), so that the rule files stay lint-clean.
# Needs from rules/common.smk: COUNTRIES, RUN_MODELS, VARIANTS, configured_variants; from
# rules/released.smk: released_countries(model).

from culturespa import design, figures, tables
from culturespa.results import released_methods


def output_context(released, model):
    """Whose answers a table or figure shows: our run, or the authors' released answers of ``model``."""
    if released:
        return {"source": "released", "variants": released_methods(config), "countries": released_countries(model)}
    return {"source": "pipeline", "variants": configured_variants(config), "countries": COUNTRIES}


# --- tables -----------------------------------------------------------------------------------------


def table_settings(wildcards):
    """What {table} takes from the config (only that: a config change re-renders only the tables
    that show it)."""
    return tables.settings(wildcards.table, config, **output_context(False, wildcards.model))


def released_table_settings(wildcards):
    return tables.settings(wildcards.table, config, **output_context(True, wildcards.model))


def table_caption(wildcards):
    return tables.spec(wildcards.table).caption


def trained_fraction_stats(wildcards):
    """train_stats.json of the data-quantity variants the run trains (sft.variants)."""
    fractions = [design.fraction_variant(p) for p in design.FRACTIONS]
    return [f"results/{wildcards.model}/sft/{v}/train_stats.json" for v in fractions if v in VARIANTS]


def table_targets(model):
    """Every table of a model run by the pipeline, in the three formats."""
    return expand("results/{model}/tables/{table}.{ext}", model=model, table=tables.TABLES, ext=tables.FORMATS)


def released_table_targets(model):
    """The tables the authors' released answers of ``model`` fill, in the three formats."""
    return expand(
        "results/released/{model}/tables/{table}.{ext}", model=model, table=tables.RELEASED_TABLES, ext=tables.FORMATS
    )


# --- figures ----------------------------------------------------------------------------------------


def figure_settings(figure):
    """The params function of ``figure`` under {root}: what it takes from the config."""

    def settings(wildcards):
        context = output_context(wildcards.root.endswith("released"), wildcards.model)
        return figures.settings(figure, config, model=wildcards.model, **context)

    return settings


def figure_roots(figure):
    """{root} of ``figure``: our runs, and the released answers where they can fill it."""
    return "results|results/released" if figures.spec(figure).released else "results"


def figure_targets(model):
    """Every figure of a model run by the pipeline (PDF and PNG)."""
    return expand(
        "results/{model}/figures/{figure}.{ext}", model=model, figure=figures.MODEL_FIGURES, ext=("pdf", "png")
    )


def released_figure_targets(model):
    return expand(
        "results/released/{model}/figures/{figure}.{ext}",
        model=model,
        figure=figures.RELEASED_FIGURES,
        ext=("pdf", "png"),
    )


def paper_tables():
    """Every table: for each run model, and for the released answers."""
    out = []
    for model in RUN_MODELS:
        out += table_targets(model)
    for model in config["released"]["models"]:
        out += released_table_targets(model)
    return out


def paper_figures():
    """Every figure: the framework figure, for each run model, and for the released answers."""
    out = ["results/figures/figure2_framework.png", "results/figures/figure2_framework.pdf"]
    for model in RUN_MODELS:
        out += figure_targets(model)
    for model in config["released"]["models"]:
        out += released_figure_targets(model)
    return out


def paper_outputs():
    """Every figure and table."""
    return paper_figures() + paper_tables()
