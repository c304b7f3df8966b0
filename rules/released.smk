rule score_released:
    input:
        questions=culturespa_file("data/wvs_questions.json"),
        proportions=culturespa_file("data/proportions_group_by_country.json"),
        answers=lambda wildcards: released_answer_files(wildcards.model),
    output:
        table="results/released/{model}/alignment.csv",
        matrices="results/released/{model}/matrices.csv",
        topics="results/released/{model}/alignment_by_topic.csv",
        wide=expand("results/released/{{model}}/matrix/{method}.csv", method=persona_methods()),
    params:
        countries=lambda wildcards: released_countries(wildcards.model),
        methods=config["released"]["methods"],
        scoring=config["scoring"],
    log:
        "logs/released/{model}/score.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/score_released.py"
