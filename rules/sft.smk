rule finetune_joint:
    input:
        model=model_input,
        pairs=f"results/{{model}}/pairs/{SOURCE}/{{setting}}/{{data}}/joint.jsonl",
        questions=culturespa_file("data/wvs_questions.json"),
        proportions=culturespa_file("data/proportions_group_by_country.json"),
    output:
        adapter=directory("results/{model}/sft/joint-{data}-{setting}-{fraction}/adapter"),
        loss="results/{model}/sft/joint-{data}-{setting}-{fraction}/loss.csv",
        stats="results/{model}/sft/joint-{data}-{setting}-{fraction}/train_stats.json",
    params:
        model=lambda wildcards: model_spec(wildcards.model),
        preset=sft_preset("joint"),
        catalogue=CULTURES,
        seed=config["pairs"]["seed"],
        # undeclared, so Snakemake keeps it when it reruns a killed job: training resumes from it
        checkpoints="checkpoints/{model}/joint-{data}-{setting}-{fraction}",
    log:
        "logs/{model}/sft/joint-{data}-{setting}-{fraction}.log",
    benchmark:
        "results/benchmarks/{model}/sft/joint-{data}-{setting}-{fraction}.tsv"
    threads: 2
    resources:
        mem_mb=32000,
        gpu=1,
        runtime=720,
    conda:
        "../envs/model.yaml"
    script:
        "../scripts/finetune.py"


rule finetune_specific:
    input:
        model=model_input,
        pairs=f"results/{{model}}/pairs/{SOURCE}/{{setting}}/{{data}}/{{country}}.jsonl",
        questions=culturespa_file("data/wvs_questions.json"),
        proportions=culturespa_file("data/proportions_group_by_country.json"),
    output:
        adapter=directory("results/{model}/sft/specific-{data}-{setting}-{fraction}/{country}/adapter"),
        loss="results/{model}/sft/specific-{data}-{setting}-{fraction}/{country}/loss.csv",
        stats="results/{model}/sft/specific-{data}-{setting}-{fraction}/{country}/train_stats.json",
    params:
        model=lambda wildcards: model_spec(wildcards.model),
        preset=sft_preset("specific"),
        catalogue=CULTURES,
        seed=config["pairs"]["seed"],
        checkpoints="checkpoints/{model}/specific-{data}-{setting}-{fraction}/{country}",
    log:
        "logs/{model}/sft/specific-{data}-{setting}-{fraction}/{country}.log",
    benchmark:
        "results/benchmarks/{model}/sft/specific-{data}-{setting}-{fraction}/{country}.tsv"
    threads: 2
    resources:
        mem_mb=32000,
        gpu=1,
        runtime=240,
    conda:
        "../envs/model.yaml"
    script:
        "../scripts/finetune.py"


# Every adapter of a model with its status (trained / not_trained, and why): the run's record of
# which adapters had no pairs to train on; the run's closing message (Snakefile onsuccess) lists them.
rule summarise_adapters:
    input:
        stats=adapter_stats_files,
    output:
        "results/{model}/sft/adapters.csv",
    log:
        "logs/{model}/sft/adapters.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/summarise_adapters.py"
