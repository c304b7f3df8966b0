# Step 2: every pooled question answered culture-unaware (persona "none") and as each culture, with
# P1 (culture_aware) or P2 (cross_culture).


rule answer_questions:
    input:
        unpack(lambda wildcards: P2_FILES),
        model=model_input,
        pool="results/{model}/questions/{source}/pool.jsonl",
    output:
        "results/{model}/answers/{source}/{method}/{persona}.jsonl",
    log:
        "logs/{model}/answers/{source}/{method}/{persona}.log",
    benchmark:
        "results/benchmarks/{model}/answers/{source}/{method}/{persona}.tsv"
    wildcard_constraints:
        method="culture_unaware|culture_aware|cross_culture",
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=32000,
        gpu=1,
        runtime=240,
    params:
        model=lambda wildcards: model_params(wildcards.model),
        answering=answering_params(),
        cultures=lambda wildcards: prompt_cultures(wildcards.persona, wildcards.method),
    script:
        "../scripts/answer_questions.py"
