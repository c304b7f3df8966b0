"""End to end, steps 1-5 on the real SmolLM2-135M-Instruct, at the smallest budget (tests/configs/tiny.yaml)."""

import json

import pandas as pd
import pytest

from conftest import REPO
from test_workflow_released import run_snakemake

pytestmark = pytest.mark.slow
MODEL = "SmolLM2-135M-Instruct"
ORDERS = ("original", "reversed")  # config.yaml evaluation.orders (tests/configs/tiny.yaml keeps them)
MMLU = REPO.parent / "shared" / "benchmarks" / "mmlu"


@pytest.fixture(scope="module")
def tiny_run(snakemake_bin, data_dir, tmp_path_factory):
    if not (MMLU / "mmlu.zip").is_file():
        pytest.skip(f"MMLU not found at {MMLU}")
    work = tmp_path_factory.mktemp("tiny")
    paths = work / "paths.yaml"
    paths.write_text(f"data_mirror: {data_dir}\nmmlu_mirror: {MMLU}\n")
    run_snakemake(snakemake_bin, work, targets=("all",), configfiles=[REPO / "tests/configs/tiny.yaml", paths])
    return work / "results" / MODEL


def test_steps_1_to_3(tiny_run):
    counts = pd.read_csv(tiny_run / "questions/released/filter_counts.csv").set_index("stage")["n_kept"]
    assert counts["endpoint_card"] == 12847 and counts["per_topic_budget"] == 52
    stats = pd.read_csv(tiny_run / "pairs/released/culture_aware/stats.csv")
    assert list(stats.culture) == ["USA", "CHN"]
    assert (stats.valid + stats.invalid_unaware.clip(upper=0) <= 52).all()
    joint = [json.loads(x) for x in (tiny_run / "pairs/released/culture_aware/crqpc/joint.jsonl").read_text().splitlines()]
    assert len(joint) == stats.n_CRQPC.sum() > 0
    answers = [json.loads(x) for x in (tiny_run / "answers/released/culture_aware/USA.jsonl").read_text().splitlines()]
    assert len(answers) == 52 and all(abs(sum(a["probs"]) - 1) < 1e-6 for a in answers)


def test_step_4_adapter_and_loss(tiny_run):
    root = tiny_run / "sft/joint-crqpc-culture_aware-100"
    assert (root / "adapter/adapter_config.json").is_file()
    loss = pd.read_csv(root / "loss.csv")
    assert len(loss) == 2 and loss["loss"].notna().all()
    stats = json.loads((root / "train_stats.json").read_text())
    assert stats["n_examples"] > 0


def test_step_5_tables(tiny_run):
    table = pd.read_csv(tiny_run / "alignment.csv")
    assert set(table.variant) == {"base", "joint-crqpc-culture_aware-100"}
    avg = table[(table.country == "AVG") & (table.metric == "paper_score")].set_index(["variant", "method", "order"])
    joint = "joint-crqpc-culture_aware-100"
    for variant, method in [("base", "culture_unaware"), ("base", "culture_aware"), (joint, "culture_aware")]:
        for order in ("original", "reversed", "mean"):  # both option orders and the order-robust mean
            row = avg.loc[(variant, method, order)]
            assert 0 < row["value"] <= 100 and row["n_valid"] + row["n_invalid"] <= 2 * 2 * 12
            assert row["ci_low"] <= row["value"] <= row["ci_high"]
    # the paired difference CultureSPA - base with P1, with its CI, per order
    delta = table[(table.metric == "paper_score_delta_vs_base/culture_aware") & (table.country == "AVG")]
    assert set(delta.order) == {"original", "reversed", "mean"}
    row = delta[delta.order == "original"].iloc[0]
    assert row.value == pytest.approx(avg.loc[(joint, "culture_aware", "original"), "value"]
                                      - avg.loc[("base", "culture_aware", "original"), "value"])
    assert row.ci_low <= row.value <= row.ci_high
    consistency = table[(table.metric == "order_consistency") & (table.order == "mean") & (table.country == "AVG")]
    assert len(consistency) == 3 and consistency.value.between(0, 1).all()
    mmlu = pd.read_csv(tiny_run.parent.parent / "results" / MODEL / "mmlu.csv")
    assert {"accuracy_base", "accuracy", "delta"} <= set(mmlu.metric)


def test_step_6_figures_tables_and_report(tiny_run, snakemake_bin):
    from culturespa.figures import MODEL_FIGURES
    from culturespa.tables import TABLES

    for name in MODEL_FIGURES:
        for ext in ("pdf", "png"):
            assert (tiny_run / "figures" / f"{name}.{ext}").stat().st_size > 5_000, name
    assert (tiny_run.parent / "figures" / "figure2_framework.png").is_file()
    for name in TABLES:
        for ext in ("csv", "md", "tex"):
            assert (tiny_run / "tables" / f"{name}.{ext}").is_file(), name
    # a variant the tiny run did not train is reported missing, with the reason, not as a number
    sampling = (tiny_run / "tables" / "sampling_strategies.md").read_text()
    assert "joint-rds-culture_aware-100 is not in sft.variants" in sampling
    work = tiny_run.parent.parent
    report = work / "report.html"
    paths = work / "paths.yaml"
    run_snakemake(snakemake_bin, work, "--report", str(report), targets=(),
                  configfiles=[REPO / "tests/configs/tiny.yaml", paths])
    html = report.read_text(errors="replace")
    assert report.stat().st_size > 100_000 and "figure1_alignment" in html


# --- an incremental DAG: only new work is planned ------------------------------------------------

MODEL_RULES = {"convert_gguf_model", "generate_questions", "answer_questions", "finetune_joint",
               "finetune_specific", "evaluate_wvs", "evaluate_mmlu"}


def planned_jobs(snakemake_bin, work, *overlays) -> list[tuple[str, str]]:
    """(rule, first output) of every job a dry run on the finished ``work`` plans."""
    import re

    proc = run_snakemake(snakemake_bin, work, "-n", "--nocolor", targets=("all",),
                         configfiles=[REPO / "tests/configs/tiny.yaml", work / "paths.yaml", *overlays])
    jobs = []
    # a job in a group (evaluate_wvs: group "eval") is listed indented under its group
    for block in re.split(r"\n(?=[ \t]*(?:local)?rule \w+:)", proc.stdout):
        head = re.match(r"\s*(?:local)?rule (\w+):", block)
        output = re.search(r"^\s+output: ([^,\n]+)", block, flags=re.M)
        if head and head.group(1) != "all":
            jobs.append((head.group(1), output.group(1) if output else ""))
    return jobs


def test_a_finished_run_plans_nothing(tiny_run, snakemake_bin):
    assert planned_jobs(snakemake_bin, tiny_run.parent.parent) == []


def test_adding_a_country_plans_only_its_jobs_and_what_depends_on_all(tiny_run, snakemake_bin, tmp_path):
    overlay = tmp_path / "add_nga.yaml"
    overlay.write_text("countries: [USA, CHN, NGA]\n")
    jobs = planned_jobs(snakemake_bin, tiny_run.parent.parent, overlay)
    model_jobs = [(rule, out) for rule, out in jobs if rule in MODEL_RULES]
    joint = "joint-crqpc-culture_aware-100"
    expected = {
        ("answer_questions", f"results/{MODEL}/answers/released/culture_aware/NGA.jsonl"),
        ("finetune_joint", f"results/{MODEL}/sft/{joint}/adapter"),
        *{("evaluate_wvs", f"results/{MODEL}/eval/base/culture_aware/{order}/NGA.jsonl") for order in ORDERS},
        *{("evaluate_wvs", f"results/{MODEL}/eval/{joint}/culture_aware/{order}/{c}.jsonl")
          for c in ("USA", "CHN", "NGA") for order in ORDERS},
        ("evaluate_mmlu", f"results/{MODEL}/mmlu/{joint}.jsonl"),
    }
    assert set(model_jobs) == expected and len(model_jobs) == len(expected)
    pair_jobs = {out for rule, out in jobs if rule == "collect_pairs"}
    assert pair_jobs == {f"results/{MODEL}/pairs/released/culture_aware/crqpc/NGA.jsonl"}


def test_a_setting_that_changes_no_output_reruns_no_model_job(tiny_run, snakemake_bin, tmp_path):
    overlay = tmp_path / "speed.yaml"
    overlay.write_text("answering:\n  compile: always\n  batch_size: 3\nscoring:\n  n_boot: 60\n")
    jobs = planned_jobs(snakemake_bin, tiny_run.parent.parent, overlay)
    assert not [job for job in jobs if job[0] in MODEL_RULES]
    assert {rule for rule, _ in jobs} >= {"score_variant", "aggregate_alignment"}  # n_boot changes the CIs
