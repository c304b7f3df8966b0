# Step 5: one job per evaluation cell (model, variant, method, option order, persona): the persona is a
# country, or "none" for culture-unaware answers (asked once, scored against every country); the order
# lists each item's options as the survey does (original), reversed or permuted (evaluation.orders).
# A culture-specific variant's cell loads that country's adapter only. A cell holds every evaluation run:
# in logprob mode the runs share one forward pass and differ only in their draws. Scoring gathers the cells.


rule evaluate_wvs:
    input:
        unpack(lambda wildcards: P2_FILES),
        model=model_input,
        adapter=adapter_input,
        examples=culturespa_file("data/self_alignment_examples.json"),
    output:
        "results/{model}/eval/{variant}/{method}/{order}/{persona}.jsonl",
    log:
        "logs/{model}/eval/{variant}/{method}/{order}/{persona}.log",
    benchmark:
        "results/benchmarks/{model}/eval/{variant}/{method}/{order}/{persona}.tsv"
    group:
        "eval"
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=32000,
        gpu=1,
        runtime=120,
    params:
        model=lambda wildcards: model_params(wildcards.model),
        answering=answering_params(),
        runs=config["evaluation"]["runs"],
        order_seed=config["evaluation"]["order_seed"],
        max_items=lambda wildcards: method_max_items(wildcards.method),
        cultures=lambda wildcards: prompt_cultures(wildcards.persona, wildcards.method),
    script:
        "../scripts/evaluate_wvs.py"


rule score_variant:
    input:
        unpack(lambda wildcards: P2_FILES),
        answers=variant_answer_files,
    output:
        table=temp("results/{model}/scores/{variant}.csv"),
        matrices=temp("results/{model}/scores/{variant}.matrices.csv"),
        topics=temp("results/{model}/scores/{variant}.topics.csv"),
        boot=temp("results/{model}/scores/{variant}.boot.npz"),
    log:
        "logs/{model}/scores/{variant}.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        countries=COUNTRIES,
        scoring=config["scoring"],
        order_seed=config["evaluation"]["order_seed"],
    script:
        "../scripts/score_variant.py"


rule aggregate_alignment:
    input:
        tables=expand("results/{{model}}/scores/{variant}.csv", variant=VARIANTS),
        matrices=expand("results/{{model}}/scores/{variant}.matrices.csv", variant=VARIANTS),
        topics=expand("results/{{model}}/scores/{variant}.topics.csv", variant=VARIANTS),
        boots=expand("results/{{model}}/scores/{variant}.boot.npz", variant=VARIANTS),
    output:
        table="results/{model}/alignment.csv",
        matrices="results/{model}/matrices.csv",
        topics="results/{model}/alignment_by_topic.csv",
    log:
        "logs/{model}/alignment.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        variants=VARIANTS,
        ci_level=config["scoring"]["ci_level"],
        continents=continents_of(COUNTRIES, CATALOGUE),
    script:
        "../scripts/aggregate_alignment.py"
