"""config/paper_exact.yaml: the paper's protocol, planned in full (dry run), MMLU included."""

import re

import pytest

from conftest import REPO
from test_workflow_released import run_snakemake

from culturespa.cli import load_config


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs."""
    table = output[output.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def layered() -> dict:
    """config.yaml, then config/paper_exact.yaml, as Snakemake layers them (validated, checked)."""
    return load_config([REPO / "config/paper_exact.yaml"], workdir=REPO)


def test_paper_exact_is_a_valid_overlay():
    config = layered()
    assert config["answering"]["mode"] == "generate" and config["answering"]["draws"] == "independent"
    assert config["questions"]["near_duplicate_threshold"] is None and config["evaluation"]["runs"] == 1
    assert config["sft"]["preset"] == "paper"  # 4-bit QLoRA stays; paper_bf16 is one key away


@pytest.mark.slow
def test_dry_run_plans_the_papers_grid_with_mmlu(snakemake_bin, tmp_path):
    proc = run_snakemake(snakemake_bin, tmp_path, "-n", targets=("all",),
                         configfiles=[REPO / "config/paper_exact.yaml"])
    jobs = job_counts(proc.stdout)
    config = layered()
    n_countries, n_variants = len(config["countries"]), len(config["sft"]["variants"])
    assert jobs["generate_questions"] == 13 and jobs["filter_questions"] == 1
    # step 2: culture-unaware once, then P1 and P2 per country, one job each
    assert jobs["answer_questions"] == 1 + n_countries * len(config["pairs"]["settings"])
    # step 3: one pair job per (setting, country), then the culture-joint sets per setting
    assert jobs["collect_pairs"] == n_countries * len(config["pairs"]["settings"]) and jobs["join_pairs"] == 2
    specific = sum(v.startswith("specific-") for v in config["sft"]["variants"])
    assert jobs["finetune_joint"] == n_variants - specific and jobs["finetune_specific"] == specific * n_countries
    # one evaluation cell per (variant, method, country), original order only; culture-unaware asked once
    base = config["evaluation"]["base_methods"]
    tuned = config["evaluation"]["tuned_methods"]
    assert config["evaluation"]["orders"] == ["original"]
    assert jobs["evaluate_wvs"] == (1 + (len(base) - 1) * n_countries) + n_variants * len(tuned) * n_countries
    # MMLU fetched (zip and mapping in one job), the base model and each configured adapter, and the comparison
    assert jobs["get_mmlu_data"] == 1
    assert jobs["evaluate_mmlu"] == 1 + len(config["mmlu"]["variants"]) and jobs["compare_mmlu"] == 1
