# The authors' released Llama-3-8B-Instruct answers, scored with the paper's score and ours.


def released_countries(model):
    """Every catalogued culture the authors released answers for (independent of 'countries')."""
    return [c for c in CATALOGUE if f"result/{model}/wvs_result_culture_aware_{c}_0.json" in CHECKSUMS]


def persona_methods():
    return [m for m in config["released"]["methods"] if m != "culture_unaware"]


def released_answer_files(model):
    """The released answer files that the configured methods and countries need."""
    wanted = []
    for method in config["released"]["methods"]:
        if method == "culture_unaware":
            wanted.append(f"result/{model}/wvs_result_culture_unaware_0.json")
        else:
            wanted += [f"result/{model}/wvs_result_{method}_{c}_0.json" for c in released_countries(model)]
    return [culturespa_file(p) for p in wanted if p in CHECKSUMS]


rule score_released:
    input:
        unpack(lambda wildcards: SURVEY_FILES),
        answers=lambda wildcards: released_answer_files(wildcards.model),
    output:
        table="results/released/{model}/alignment.csv",
        matrices="results/released/{model}/matrices.csv",
        topics="results/released/{model}/alignment_by_topic.csv",
        wide=expand("results/released/{{model}}/matrix/{method}.csv", method=persona_methods()),
    log:
        "logs/released/{model}/score.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        countries=lambda wildcards: released_countries(wildcards.model),
        methods=config["released"]["methods"],
        scoring=config["scoring"],
    script:
        "../scripts/score_released.py"
