rule generate_questions:
    input:
        model=model_input,
        questions=culturespa_file("data/wvs_questions.json"),
    output:
        questions="results/{model}/questions/generate/raw/topic_{topic}.jsonl",
        stats="results/{model}/questions/generate/raw/topic_{topic}.stats.json",
    params:
        model=lambda wildcards: model_spec(wildcards.model),
        settings=config["questions"],
    log:
        "logs/{model}/questions/generate/topic_{topic}.log",
    threads: 2
    resources:
        mem_mb=16000,
        gpu=1,
        runtime=240,
    conda:
        "../envs/model.yaml"
    script:
        "../scripts/generate_questions.py"


rule filter_questions:
    input:
        raw=raw_question_files,
        questions=culturespa_file("data/wvs_questions.json"),
    output:
        pool="results/{model}/questions/{source}/pool.jsonl",
        counts="results/{model}/questions/{source}/filter_counts.csv",
        topics="results/{model}/questions/{source}/topic_counts.csv",
        dropped="results/{model}/questions/{source}/dropped.jsonl",
    params:
        settings=config["questions"],
    log:
        "logs/{model}/questions/{source}/filter.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/filter_questions.py"
