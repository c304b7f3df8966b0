from culturespa.fetch import verify_materialised


onstart:
    # A data file changed after it was fetched and verified must not reach a rule (main process, before any job).
    verify_materialised(culturespa_file(""), CHECKSUMS)
    verify_materialised(mmlu_file(""), MMLU_CHECKSUMS)


# The paper's released data (41 files, 4.5 MB), fetched in one job from data_mirror or the authors'
# repository at the pinned commit, each file verified against its pinned sha256 (culturespa/fetch.py).
rule get_culturespa_data:
    output:
        [culturespa_file(p) for p in CHECKSUMS],
    log:
        "logs/data/culturespa.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=15,
    params:
        checksums=CHECKSUMS,
        dataset="culturespa",
    script:
        "../scripts/fetch_data.py"


# MMLU as LLaMA-Factory distributes it (culturespa/fetch.py says where from), verified like the data.
rule get_mmlu_data:
    output:
        [mmlu_file(p) for p in MMLU_CHECKSUMS],
    log:
        "logs/data/mmlu.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=15,
    params:
        checksums=MMLU_CHECKSUMS,
        dataset="mmlu",
    script:
        "../scripts/fetch_data.py"
