rule collect_pairs:
    input:
        pool="results/{model}/questions/{source}/pool.jsonl",
        unaware="results/{model}/answers/{source}/culture_unaware.jsonl",
        aware=expand("results/{{model}}/answers/{{source}}/{{setting}}/{country}.jsonl", country=COUNTRIES),
    output:
        pairs=expand(
            "results/{{model}}/pairs/{{source}}/{{setting}}/{strategy}/{country}.jsonl",
            strategy=config["pairs"]["strategies"],
            country=COUNTRIES + ["joint"],
        ),
        stats="results/{model}/pairs/{source}/{setting}/stats.csv",
        topics="results/{model}/pairs/{source}/{setting}/topic_stats.csv",
    wildcard_constraints:
        setting="culture_aware|cross_culture",
    params:
        countries=COUNTRIES,
        strategies=config["pairs"]["strategies"],
        seed=config["pairs"]["seed"],
        answering=config["answering"],
    log:
        "logs/{model}/pairs/{source}/{setting}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/collect_pairs.py"
