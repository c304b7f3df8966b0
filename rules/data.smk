from culturespa.fetch import verify_materialised


onstart:
    # A data file changed after it was fetched and verified must not reach a rule (main process, before any job).
    verify_materialised(culturespa_file(""), CHECKSUMS)


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
    script:
        "../scripts/fetch_data.py"
