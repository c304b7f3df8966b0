# The authors' released Llama-3-8B-Instruct answers, scored with the paper's score and ours.


rule score_released:
    input:
        unpack(lambda wildcards: SURVEY_FILES),
        answers=lambda wildcards: released_answer_files(wildcards.model),
    output:
        table="results/released/{model}/alignment.csv",
        matrices="results/released/{model}/matrices.csv",
        topics="results/released/{model}/alignment_by_topic.csv",
        wide=expand("results/released/{{model}}/matrix/{method}.csv", method=persona_methods()),
    log:
        "logs/released/{model}/score.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        countries=lambda wildcards: released_countries(wildcards.model),
        methods=config["released"]["methods"],
        scoring=config["scoring"],
    script:
        "../scripts/score_released.py"
