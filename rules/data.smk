from culturespa.fetch import verify_materialised


onstart:
    # A data file changed after it was fetched and verified must not reach a rule (main process, before any job).
    verify_materialised(culturespa_file(""), CHECKSUMS)


rule get_culturespa_file:
    output:
        "resources/culturespa/{relpath}",
    wildcard_constraints:
        relpath="|".join(re.escape(p) for p in CHECKSUMS),
    params:
        sha256=lambda wildcards: CHECKSUMS[wildcards.relpath],
    log:
        "logs/data/{relpath}.log",
    threads: 1
    resources:
        mem_mb=512,
        runtime=15,
    group:
        "data"
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/fetch_data.py"
