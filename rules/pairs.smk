# Step 3: culture-related QA pairs (CRQPC) and the RDS / CDS controls, one job per culture (so that
# adding a culture leaves the others' pairs, and their culture-specific adapters, as they are), then
# the culture-joint sets and the statistics of all cultures.


rule collect_pairs:
    input:
        pool="results/{model}/questions/{source}/pool.jsonl",
        unaware=f"results/{{model}}/answers/{{source}}/culture_unaware/{NO_PERSONA}.jsonl",
        aware="results/{model}/answers/{source}/{setting}/{country}.jsonl",
    output:
        sets=expand(
            "results/{{model}}/pairs/{{source}}/{{setting}}/{strategy}/{{country}}.jsonl",
            strategy=STRATEGIES,
        ),
        stats="results/{model}/pairs/{source}/{setting}/stats/{country}.csv",
        topics="results/{model}/pairs/{source}/{setting}/stats/{country}.topics.csv",
    log:
        "logs/{model}/pairs/{source}/{setting}/{country}.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        strategies=STRATEGIES,
        seed=config["pairs"]["seed"],
        answering=answering_params(),
    script:
        "../scripts/collect_pairs.py"


rule join_pairs:
    input:
        sets=expand(
            "results/{{model}}/pairs/{{source}}/{{setting}}/{strategy}/{country}.jsonl",
            strategy=STRATEGIES,
            country=COUNTRIES,
        ),
        stats=expand("results/{{model}}/pairs/{{source}}/{{setting}}/stats/{country}.csv", country=COUNTRIES),
        topics=expand("results/{{model}}/pairs/{{source}}/{{setting}}/stats/{country}.topics.csv", country=COUNTRIES),
    output:
        joint=expand("results/{{model}}/pairs/{{source}}/{{setting}}/{strategy}/joint.jsonl", strategy=STRATEGIES),
        stats="results/{model}/pairs/{source}/{setting}/stats.csv",
        topics="results/{model}/pairs/{source}/{setting}/topic_stats.csv",
    log:
        "logs/{model}/pairs/{source}/{setting}/joint.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        strategies=STRATEGIES,
        countries=COUNTRIES,
    script:
        "../scripts/join_pairs.py"
