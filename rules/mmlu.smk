# General ability: MMLU of the base model and of culture-joint adapters, and the change.


rule evaluate_mmlu:
    input:
        model=model_input,
        adapter=lambda wildcards: [] if wildcards.variant == "base" else adapter_input(wildcards),
        zip=mmlu_file("mmlu.zip"),
        mapping=mmlu_file("mapping.json"),
    output:
        "results/{model}/mmlu/{variant}.jsonl",
    log:
        "logs/{model}/mmlu/{variant}.log",
    benchmark:
        "results/benchmarks/{model}/mmlu/{variant}.tsv"
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=32000,
        gpu=1,
        runtime=240,
    params:
        model=lambda wildcards: model_params(wildcards.model),
        mmlu={
            k: config["mmlu"][k]
            for k in ("subjects", "max_per_subject", "k_shot", "seed", "format", "shots", "letters")
        },
    script:
        "../scripts/evaluate_mmlu.py"


rule compare_mmlu:
    input:
        base="results/{model}/mmlu/base.jsonl",
        variants=expand("results/{{model}}/mmlu/{variant}.jsonl", variant=config["mmlu"]["variants"]),
    output:
        "results/{model}/mmlu.csv",
    log:
        "logs/{model}/mmlu/compare.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        variants=config["mmlu"]["variants"],
        seed=config["mmlu"]["seed"],
    script:
        "../scripts/compare_mmlu.py"
