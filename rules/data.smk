from culturespa.fetch import verify_materialised


onstart:
    # A data file changed after it was fetched and verified must not reach a rule (main process, before any job).
    verify_materialised(culturespa_file(""), CHECKSUMS)
    verify_materialised(mmlu_file(""), MMLU_CHECKSUMS)


rule get_culturespa_file:
    output:
        "resources/culturespa/{relpath}",
    log:
        "logs/data/{relpath}.log",
    wildcard_constraints:
        relpath="|".join(re.escape(p) for p in CHECKSUMS),
    group:
        "data"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=15,
    params:
        sha256=lambda wildcards: CHECKSUMS[wildcards.relpath],
        dataset="culturespa",
    script:
        "../scripts/fetch_data.py"


# MMLU as LLaMA-Factory distributes it (culturespa/fetch.py says where from), verified like the data.
rule get_mmlu_file:
    output:
        "resources/mmlu/{relpath}",
    log:
        "logs/data/mmlu/{relpath}.log",
    wildcard_constraints:
        relpath="|".join(re.escape(p) for p in MMLU_CHECKSUMS),
    group:
        "data"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=15,
    params:
        sha256=lambda wildcards: MMLU_CHECKSUMS[wildcards.relpath],
        dataset="mmlu",
    script:
        "../scripts/fetch_data.py"
