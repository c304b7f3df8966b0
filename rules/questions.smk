# Step 1: self-instruct question generation (one job per topic), then the filters.


rule generate_questions:
    input:
        model=model_input,
        questions=SURVEY_FILES["questions"],
    output:
        questions="results/{model}/questions/generate/raw/topic_{topic}.jsonl",
        stats="results/{model}/questions/generate/raw/topic_{topic}.stats.json",
    log:
        "logs/{model}/questions/generate/topic_{topic}.log",
    benchmark:
        "results/benchmarks/{model}/questions/generate/topic_{topic}.tsv"
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=32000,
        gpu=1,
        runtime=240,
    params:
        model=lambda wildcards: model_params(wildcards.model),
        settings={k: v for k, v in config["questions"].items() if k not in ("source", "near_duplicate_threshold")},
    script:
        "../scripts/generate_questions.py"


rule filter_questions:
    input:
        raw=raw_question_files,
        questions=SURVEY_FILES["questions"],
    output:
        pool="results/{model}/questions/{source}/pool.jsonl",
        counts="results/{model}/questions/{source}/filter_counts.csv",
        topics="results/{model}/questions/{source}/topic_counts.csv",
        dropped="results/{model}/questions/{source}/dropped.jsonl",
    log:
        "logs/{model}/questions/{source}/filter.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        per_topic=config["questions"]["per_topic"],
        seed=config["questions"]["seed"],
        near_duplicate_threshold=config["questions"]["near_duplicate_threshold"],
    script:
        "../scripts/filter_questions.py"
