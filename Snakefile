# culturespa: CultureSPA (Xu et al., NAACL 2025) end to end, from raw inputs to every figure and table.
#
# results/ is the workflow's public interface:
#   results/released/{model}/alignment.csv           released answers scored with our metrics
#   results/released/{model}/matrix/{method}.csv     prompted-as x scored-against country matrix
#   results/{model}/questions/{source}/pool.jsonl    step 1: filtered question pool (+ filter_counts.csv)
#   results/{model}/answers/{source}/culture_unaware.jsonl, .../{setting}/{country}.jsonl   step 2
#   results/{model}/pairs/{source}/{setting}/{strategy}/{country|joint}.jsonl (+ stats.csv)  step 3
#   results/{model}/sft/{variant}/[{country}/]adapter, loss.csv, train_stats.json                step 4
#   results/{model}/sft/adapters.csv               every adapter's status (trained / not_trained, and why)
#     variant = {joint|specific}-{crqpc|rds|cds}-{culture_aware|cross_culture}-{percent}
#   results/{model}/eval/{variant}/run{run}/{method}.jsonl     WVS answers (variant base: no adapter)
#   results/{model}/scores/{variant}.csv, results/{model}/alignment.csv, matrices.csv            step 5
#   results/{model}/mmlu/{variant}.jsonl, results/{model}/mmlu.csv      general ability vs base
#   results/{model}/alignment_by_topic.csv                               alignment per WVS topic
#   results/[released/]{model}/figures/{figure}.{pdf,png}, tables/{table}.{csv,md,tex}   step 6
#   results/figures/figure2_framework.{pdf,png}      the framework figure, from the rule graph
#
# Resources fetched at run time (checksum-verified) live in resources/, logs in logs/.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/released.smk"
include: "rules/models.smk"
include: "rules/questions.smk"
include: "rules/answers.smk"
include: "rules/pairs.smk"
include: "rules/sft.smk"
include: "rules/evaluate.smk"
include: "rules/mmlu.smk"
include: "rules/tables.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
        paper_outputs(),


# the closing message names every adapter that had no pairs to train on (results/{model}/sft/adapters.csv)
onsuccess:
    from culturespa.untrained import report_not_trained

    report_not_trained(f"results/{m}/sft/adapters.csv" for m in RUN_MODELS)


# every figure and table, from a finished results/ (re-runs nothing upstream that is up to date)
rule paper:
    input:
        paper_outputs(),


# every table only (no figure): seconds, e.g. to check a snapshot
rule tables:
    input:
        paper_tables(),
