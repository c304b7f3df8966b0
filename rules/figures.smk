# Figures of the paper (and two of ours), drawn from the tidy results tables only: a finished
# results/ regenerates them with `snakemake paper`. culturespa/figures holds one spec per figure
# (caption file, builder, input names, settings); the rules below name each figure's inputs, and
# tests/test_figures.py checks that they match the specs. {root} is results (our runs) or
# results/released (the authors' released answers, scored), the latter only for the figures
# they can fill. The params functions (figure_settings, figure_roots) and the target lists
# (paper_outputs) live in rules/paper.smk, which rules/tables.smk includes. Needs SOURCE from
# rules/common.smk.

from culturespa import figures


rule export_rulegraph:
    output:
        "results/workflow/rulegraph.dot",
    log:
        "logs/workflow/rulegraph.log",
    localrule: True
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        snakefile=workflow.main_snakefile,
        config=config,
    script:
        "../scripts/export_rulegraph.py"


rule figure2_framework:
    input:
        rulegraph="results/workflow/rulegraph.dot",
    output:
        pdf="results/figures/figure2_framework.pdf",
        png=report(
            "results/figures/figure2_framework.png",
            caption="../report/figures/figure2_framework.rst",
            category="Figures",
            subcategory="Workflow",
        ),
    log:
        "logs/figures/figure2_framework.log",
    localrule: True
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="figure2_framework",
        settings=figures.settings("figure2_framework", config),
    script:
        "../scripts/plot_figure.py"


# the figures drawn from alignment.csv alone
for _figure in figures.reading("alignment"):

    rule:
        name:
            _figure
        input:
            alignment="{root}/{model}/alignment.csv",
        output:
            pdf=f"{{root}}/{{model}}/figures/{_figure}.pdf",
            png=report(
                f"{{root}}/{{model}}/figures/{_figure}.png",
                caption=f"../report/figures/{_figure}.rst",
                category="Figures",
                subcategory="{model}",
                labels={"model": "{model}", "figure": _figure},
            ),
        log:
            f"logs/{{root}}/{{model}}/figures/{_figure}.log",
        wildcard_constraints:
            root=figure_roots(_figure),
        localrule: True
        conda:
            "../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            figure=_figure,
            settings=figure_settings(_figure),
        script:
            "../scripts/plot_figure.py"


# the figures drawn from the country x country matrices (and alignment.csv)
for _figure in figures.reading("alignment", "matrices"):

    rule:
        name:
            _figure
        input:
            alignment="{root}/{model}/alignment.csv",
            matrices="{root}/{model}/matrices.csv",
        output:
            pdf=f"{{root}}/{{model}}/figures/{_figure}.pdf",
            png=report(
                f"{{root}}/{{model}}/figures/{_figure}.png",
                caption=f"../report/figures/{_figure}.rst",
                category="Figures",
                subcategory="{model}",
                labels={"model": "{model}", "figure": _figure},
            ),
        log:
            f"logs/{{root}}/{{model}}/figures/{_figure}.log",
        wildcard_constraints:
            root=figure_roots(_figure),
        localrule: True
        conda:
            "../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            figure=_figure,
            settings=figure_settings(_figure),
        script:
            "../scripts/plot_figure.py"


rule figure3_data:
    input:
        stats=expand(
            "results/{{model}}/pairs/{source}/{setting}/stats.csv",
            source=SOURCE,
            setting=config["pairs"]["settings"],
        ),
        topic_stats=expand(
            "results/{{model}}/pairs/{source}/{setting}/topic_stats.csv",
            source=SOURCE,
            setting=config["pairs"]["settings"],
        ),
    output:
        pdf="results/{model}/figures/figure3_data.pdf",
        png=report(
            "results/{model}/figures/figure3_data.png",
            caption="../report/figures/figure3_data.rst",
            category="Figures",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "figure3_data"},
        ),
    log:
        "logs/results/{model}/figures/figure3_data.log",
    localrule: True
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="figure3_data",
        settings=figures.settings("figure3_data", config),
    script:
        "../scripts/plot_figure.py"
