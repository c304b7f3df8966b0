rule evaluate_wvs:
    input:
        model=model_input,
        adapters=adapter_inputs,
        questions=culturespa_file("data/wvs_questions.json"),
        proportions=culturespa_file("data/proportions_group_by_country.json"),
        examples=culturespa_file("data/self_alignment_examples.json"),
    output:
        "results/{model}/eval/{variant}/run{run}/{method}.jsonl",
    params:
        model=lambda wildcards: model_spec(wildcards.model),
        settings=config["answering"],
        evaluation=config["evaluation"],
        countries=COUNTRIES,
        catalogue=CULTURES,
    log:
        "logs/{model}/eval/{variant}/run{run}/{method}.log",
    benchmark:
        "results/benchmarks/{model}/eval/{variant}/run{run}/{method}.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        gpu=1,
        runtime=240,
    conda:
        "../envs/model.yaml"
    script:
        "../scripts/evaluate_wvs.py"


rule score_variant:
    input:
        questions=culturespa_file("data/wvs_questions.json"),
        proportions=culturespa_file("data/proportions_group_by_country.json"),
        answers=variant_answer_files,
    output:
        table="results/{model}/scores/{variant}.csv",
        matrices="results/{model}/scores/{variant}.matrices.csv",
        topics="results/{model}/scores/{variant}.topics.csv",
    params:
        countries=COUNTRIES,
        scoring=config["scoring"],
    log:
        "logs/{model}/scores/{variant}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/score_variant.py"


rule aggregate_alignment:
    input:
        tables=lambda wildcards: expand("results/{{model}}/scores/{variant}.csv", variant=VARIANTS),
        matrices=lambda wildcards: expand("results/{{model}}/scores/{variant}.matrices.csv", variant=VARIANTS),
        topics=lambda wildcards: expand("results/{{model}}/scores/{variant}.topics.csv", variant=VARIANTS),
    output:
        table="results/{model}/alignment.csv",
        matrices="results/{model}/matrices.csv",
        topics="results/{model}/alignment_by_topic.csv",
    log:
        "logs/{model}/alignment.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/aggregate_alignment.py"


rule evaluate_mmlu:
    input:
        model=model_input,
        adapters=adapter_inputs,
        zip=config["mmlu"]["zip"] or [],
        mapping=config["mmlu"]["mapping"] or [],
    output:
        "results/{model}/mmlu/{variant}.jsonl",
    params:
        model=lambda wildcards: model_spec(wildcards.model),
        mmlu=config["mmlu"],
    log:
        "logs/{model}/mmlu/{variant}.log",
    threads: 2
    resources:
        mem_mb=16000,
        gpu=1,
        runtime=240,
    conda:
        "../envs/model.yaml"
    script:
        "../scripts/evaluate_mmlu.py"


rule compare_mmlu:
    input:
        base="results/{model}/mmlu/base.jsonl",
        variants=expand("results/{{model}}/mmlu/{variant}.jsonl", variant=config["mmlu"]["variants"]),
    output:
        "results/{model}/mmlu.csv",
    params:
        variants=config["mmlu"]["variants"],
        seed=config["mmlu"]["seed"],
    log:
        "logs/{model}/mmlu/compare.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/compare_mmlu.py"
