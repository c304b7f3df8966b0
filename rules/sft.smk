# Step 4: QLoRA adapters. A variant is {joint|specific}-{crqpc|rds|cds}-{culture_aware|cross_culture}-
# {percent}: one culture-joint adapter, or one adapter per culture. Checkpoints go to an undeclared
# folder (params), so Snakemake keeps them when it reruns a killed job and training resumes from them.


rule finetune_joint:
    input:
        unpack(lambda wildcards: P2_FILES),
        model=model_input,
        pairs=f"results/{{model}}/pairs/{SOURCE}/{{setting}}/{{data}}/joint.jsonl",
    output:
        adapter=directory("results/{model}/sft/joint-{data}-{setting}-{fraction}/adapter"),
        loss="results/{model}/sft/joint-{data}-{setting}-{fraction}/loss.csv",
        stats="results/{model}/sft/joint-{data}-{setting}-{fraction}/train_stats.json",
    log:
        "logs/{model}/sft/joint-{data}-{setting}-{fraction}.log",
    benchmark:
        "results/benchmarks/{model}/sft/joint-{data}-{setting}-{fraction}.tsv"
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=48000,
        gpu=1,
        runtime=720,
    params:
        model=lambda wildcards: model_params(wildcards.model),
        preset=sft_preset("joint"),
        scope="joint",
        cultures=training_cultures,
        seed=config["pairs"]["seed"],
        checkpoints="checkpoints/{model}/joint-{data}-{setting}-{fraction}",
    script:
        "../scripts/finetune.py"


rule finetune_specific:
    input:
        unpack(lambda wildcards: P2_FILES),
        model=model_input,
        pairs=f"results/{{model}}/pairs/{SOURCE}/{{setting}}/{{data}}/{{country}}.jsonl",
    output:
        adapter=directory("results/{model}/sft/specific-{data}-{setting}-{fraction}/{country}/adapter"),
        loss="results/{model}/sft/specific-{data}-{setting}-{fraction}/{country}/loss.csv",
        stats="results/{model}/sft/specific-{data}-{setting}-{fraction}/{country}/train_stats.json",
    log:
        "logs/{model}/sft/specific-{data}-{setting}-{fraction}/{country}.log",
    benchmark:
        "results/benchmarks/{model}/sft/specific-{data}-{setting}-{fraction}/{country}.tsv"
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=48000,
        gpu=1,
        runtime=240,
    params:
        model=lambda wildcards: model_params(wildcards.model),
        preset=sft_preset("specific"),
        scope="specific",
        cultures=training_cultures,
        seed=config["pairs"]["seed"],
        checkpoints="checkpoints/{model}/specific-{data}-{setting}-{fraction}/{country}",
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
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/summarise_adapters.py"
