rule answer_pool_culture_unaware:
    input:
        model=model_input,
        pool="results/{model}/questions/{source}/pool.jsonl",
    output:
        "results/{model}/answers/{source}/culture_unaware.jsonl",
    params:
        model=lambda wildcards: model_spec(wildcards.model),
        settings=config["answering"],
        method="culture_unaware",
        culture=None,
    log:
        "logs/{model}/answers/{source}/culture_unaware.log",
    threads: 2
    resources:
        mem_mb=16000,
        gpu=1,
        runtime=240,
    conda:
        "../envs/model.yaml"
    script:
        "../scripts/answer_pool.py"


rule answer_pool_culture_aware:
    input:
        model=model_input,
        pool="results/{model}/questions/{source}/pool.jsonl",
        questions=culturespa_file("data/wvs_questions.json"),
        proportions=culturespa_file("data/proportions_group_by_country.json"),
    output:
        "results/{model}/answers/{source}/{setting}/{country}.jsonl",
    wildcard_constraints:
        setting="culture_aware|cross_culture",
    params:
        model=lambda wildcards: model_spec(wildcards.model),
        settings=config["answering"],
        method=lambda wildcards: wildcards.setting,
        culture=lambda wildcards: culture_record(wildcards.country),
        catalogue=CULTURES,
    log:
        "logs/{model}/answers/{source}/{setting}/{country}.log",
    threads: 2
    resources:
        mem_mb=16000,
        gpu=1,
        runtime=240,
    conda:
        "../envs/model.yaml"
    script:
        "../scripts/answer_pool.py"
