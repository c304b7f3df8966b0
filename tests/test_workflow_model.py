"""End to end, steps 1-6 on the real SmolLM2-135M-Instruct, at the smallest budget (tests/configs/tiny.yaml),
with adapters that have nothing to train on: a culture with 0 culture-related pairs (NLD) and a joint
adapter whose 10% of the pairs rounds to none do not stop the run. Their adapters are written as not
trained, their evaluations as not answered, their cells are missing with the reason in the tables and
figures, and the run's closing message and adapters.csv name them. Then dry runs on the finished run:
only new work is planned."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import MODEL_RULES, REPO
from test_workflow_released import run_snakemake

pytestmark = pytest.mark.slow
MODEL = "SmolLM2-135M-Instruct"
ORDERS = ("original",)  # tests/configs/tiny.yaml evaluation.orders
MMLU = REPO.parent / "shared" / "benchmarks" / "mmlu"
JOINT = "joint-crqpc-culture_aware-100"
SPECIFIC = "specific-crqpc-culture_aware-100"
JOINT10 = "joint-crqpc-culture_aware-10"
NLD_REASON = "0 culture-related pairs for NLD"
JOINT_REASON = "0 of the 1 culture-related pairs for any culture at 10%"


@pytest.fixture(scope="module")
def tiny_run(snakemake_bin, data_dir, tmp_path_factory):
    if not (MMLU / "mmlu.zip").is_file():
        pytest.skip(f"MMLU not found at {MMLU}")
    work = tmp_path_factory.mktemp("tiny")
    paths = work / "paths.yaml"
    paths.write_text(f"data_mirror: {data_dir}\nmmlu_mirror: {MMLU}\n")
    proc = run_snakemake(snakemake_bin, work, targets=("all",), configfiles=[REPO / "tests/configs/tiny.yaml", paths])
    (work / "run.out").write_text(proc.stdout + proc.stderr)
    return work / "results" / MODEL


def test_steps_1_to_3(tiny_run):
    counts = pd.read_csv(tiny_run / "questions/released/filter_counts.csv").set_index("stage")["n_kept"]
    assert counts["endpoint_card"] == 12847 and counts["per_topic_budget"] == 13
    stats = pd.read_csv(tiny_run / "pairs/released/culture_aware/stats.csv").set_index("culture")
    assert list(stats.index) == ["USA", "NLD"]
    assert (stats.valid + stats.invalid_unaware.clip(upper=0) <= 13).all()
    # the precondition of the not-trained adapters (if the engine's answers change, see tiny.yaml)
    assert (stats.loc["USA", "n_CRQPC"], stats.loc["NLD", "n_CRQPC"]) == (1, 0)
    joint = [json.loads(x) for x in (tiny_run / "pairs/released/culture_aware/crqpc/joint.jsonl").read_text().splitlines()]
    assert len(joint) == stats.n_CRQPC.sum() == 1
    answers = [json.loads(x) for x in (tiny_run / "answers/released/culture_aware/USA.jsonl").read_text().splitlines()]
    assert len(answers) == 13 and all(abs(sum(a["probs"]) - 1) < 1e-6 for a in answers)


def test_step_4_adapter_and_loss(tiny_run):
    for root in (tiny_run / "sft" / JOINT, tiny_run / "sft" / SPECIFIC / "USA"):
        assert (root / "adapter/adapter_config.json").is_file()
        loss = pd.read_csv(root / "loss.csv")
        assert len(loss) == 2 and loss["loss"].notna().all()
        stats = json.loads((root / "train_stats.json").read_text())
        assert stats["n_examples"] == 1


def test_adapters_with_no_pairs_are_written_as_not_trained(tiny_run):
    nld = tiny_run / "sft" / SPECIFIC / "NLD"
    assert json.loads((nld / "adapter/not_trained.json").read_text()) == {
        "status": "not_trained", "reason": NLD_REASON, "n_pairs": 0}
    loss = pd.read_csv(nld / "loss.csv")
    assert loss.empty and list(loss.columns) == ["step", "epoch", "loss", "learning_rate"]
    stats = json.loads((nld / "train_stats.json").read_text())
    assert (stats["status"], stats["reason"]) == ("not_trained", NLD_REASON)
    joint = json.loads((tiny_run / "sft" / JOINT10 / "adapter/not_trained.json").read_text())
    assert joint["reason"] == JOINT_REASON
    summary = pd.read_csv(tiny_run / "sft/adapters.csv")
    not_trained = summary[summary.status == "not_trained"]
    assert sorted(zip(not_trained.variant, not_trained.country, not_trained.reason)) == [
        (JOINT10, "joint", JOINT_REASON), (SPECIFIC, "NLD", NLD_REASON)]


def test_the_run_says_which_adapters_were_not_trained(tiny_run):
    out = (tiny_run.parent.parent / "run.out").read_text()
    assert f"{MODEL}: {SPECIFIC} (NLD) not trained: {NLD_REASON}" in out
    assert f"{MODEL}: {JOINT10} not trained: {JOINT_REASON}" in out
    log = (tiny_run.parent.parent / f"logs/{MODEL}/sft/{SPECIFIC}/NLD.log").read_text()
    assert f"not trained: {NLD_REASON}" in log


def test_evaluations_of_not_trained_adapters_are_not_answered_with_the_reason(tiny_run):
    def cell(variant, country, order="original"):
        path = tiny_run / f"eval/{variant}/culture_aware/{order}/{country}.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()]

    nld = cell(SPECIFIC, "NLD")
    assert len(nld) == 12 and all(r["status"] == "not_answered" and r["choice"] is None for r in nld)
    assert {r["reason"] for r in nld} == {f"not trained: {NLD_REASON}"}
    assert all(r["choice"] is not None for r in cell(SPECIFIC, "USA"))
    for country in ("USA", "NLD"):
        assert {r["reason"] for r in cell(JOINT10, country)} == {f"not trained: {JOINT_REASON}"}


def test_step_5_tables(tiny_run):
    table = pd.read_csv(tiny_run / "alignment.csv")
    assert set(table.variant) == {"base", JOINT, SPECIFIC, JOINT10}
    avg = table[(table.country == "AVG") & (table.metric == "paper_score")].set_index(["variant", "method", "order"])
    for variant, method in [("base", "culture_unaware"), ("base", "culture_aware"), (JOINT, "culture_aware"),
                            (SPECIFIC, "culture_aware")]:
        row = avg.loc[(variant, method, "original")]
        assert 0 < row["value"] <= 100 and row["n_valid"] + row["n_invalid"] <= 2 * 12  # countries x items
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    # the paired difference CultureSPA - base with P1, with its CI
    delta = table[(table.metric == "paper_score_delta_vs_base/culture_aware") & (table.country == "AVG")
                  & (table.variant == JOINT)]
    row = delta.iloc[0]
    assert len(delta) == 1 and row.value == pytest.approx(avg.loc[(JOINT, "culture_aware", "original"), "value"]
                                                          - avg.loc[("base", "culture_aware", "original"), "value"])
    assert row.ci_low <= row.value <= row.ci_high
    mmlu = pd.read_csv(tiny_run.parent.parent / "results" / MODEL / "mmlu.csv")
    assert {"accuracy_base", "accuracy", "delta"} <= set(mmlu.metric)


def test_cells_of_not_trained_adapters_are_missing_with_the_reason(tiny_run):
    table = pd.read_csv(tiny_run / "alignment.csv")
    cell = table.query("variant == @SPECIFIC and method == 'culture_aware' and metric == 'paper_score' "
                       "and order == 'original'").set_index("country")
    assert np.isnan(cell.loc["NLD", "value"]) and cell.loc["NLD", "reason"] == f"not trained: {NLD_REASON}"
    assert 0 < cell.loc["USA", "value"] <= 100 and 0 < cell.loc["AVG", "value"] <= 100  # AVG over USA alone
    joint = table.query("variant == @JOINT10 and metric == 'paper_score'")
    assert joint["value"].isna().all() and set(joint["reason"]) == {f"not trained: {JOINT_REASON}"}
    mmlu = pd.read_csv(tiny_run / "mmlu.csv").query("variant == @JOINT10 and metric == 'delta'")
    assert mmlu["value"].isna().all() and set(mmlu["reason"]) == {f"not trained: {JOINT_REASON}"}
    assert f"(NLD): not trained: {NLD_REASON}" in (tiny_run / "tables/joint_specific_cct.md").read_text()
    assert f"not trained: {JOINT_REASON}" in (tiny_run / "tables/data_quantity.md").read_text()
    assert f"not trained: {JOINT_REASON}" in (tiny_run / "tables/general_ability.md").read_text()


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


def test_a_snapshot_renders_every_table_again_without_a_model(tiny_run, data_dir, tmp_path):
    """``make replication-snapshot`` then ``render-snapshot --tables-only``, on the tiny run: the tidy
    tables copied out, restored into a fresh directory, every table written again identical, no model
    job. (Figures and the report from a snapshot: tests/test_replication_snapshot.py, on the committed
    research-scale one.)"""
    import subprocess
    import sys

    from culturespa.tables import TABLES

    snap = tmp_path / "snapshot"
    cli = [sys.executable, "-m", "culturespa"]
    taken = subprocess.run([*cli, "snapshot", "--model", MODEL, "--dest", str(snap), "-d", str(tiny_run.parent.parent),
                            "--configfile", str(REPO / "tests/configs/tiny.yaml")],
                           capture_output=True, text=True, cwd=REPO)
    assert taken.returncode == 0, taken.stderr
    provenance = json.loads((snap / "PROVENANCE.json").read_text())
    assert provenance["configs"] == ["tiny.yaml"] and "alignment.csv" in provenance["files"]
    assert "not recorded" not in provenance["job_commits"] and sum(provenance["job_commits"].values()) >= 20
    assert not list(snap.rglob("*.safetensors")) and not list(snap.rglob("*.jsonl"))[1:]  # no weights, only the pool
    run_time = (snap / "run_time.csv").read_text()  # wall time per step, from the jobs' benchmark TSVs
    assert "5 WVS evaluation" in run_time and "4 fine-tuning (QLoRA)" in run_time and "\ntotal,all," in run_time
    fresh = tmp_path / "fresh"
    drawn = subprocess.run([*cli, "render-snapshot", str(snap), "-d", str(fresh), "--cores", "1", "--tables-only", "--",
                            "--config", f"data_mirror={data_dir}"], capture_output=True, text=True, cwd=REPO)
    out = drawn.stdout + drawn.stderr
    assert drawn.returncode == 0, out[-4000:]
    assert not any(f"rule {rule}:" in out for rule in MODEL_RULES)
    root = fresh / "results" / MODEL
    for name in TABLES:
        assert (root / "tables" / f"{name}.md").read_text() == (tiny_run / "tables" / f"{name}.md").read_text(), name
    assert not (root / "figures").exists() and not (fresh / "results" / "report.html").exists()


# --- an incremental DAG: only new work is planned ------------------------------------------------


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


def test_later_jobs_run_in_the_job_server_and_log_their_own_usage(tiny_run):
    logs = list((tiny_run.parent.parent / "logs" / MODEL).rglob("*.log"))
    where = [m.group(1) for log in logs for m in [re.search(r"job ran (in the job server|in its own process)",
                                                            log.read_text())] if m]
    # every job logs where it ran; the first job starts the server (unless an earlier test's server with
    # the same key is still up) and runs itself, and the jobs after the server is ready are its forks
    assert len(where) >= 20 and where.count("in the job server") >= len(where) // 2, where


def test_a_finished_run_plans_nothing(tiny_run, snakemake_bin):
    assert planned_jobs(snakemake_bin, tiny_run.parent.parent) == []


def test_adding_a_country_plans_only_its_jobs_and_what_depends_on_all(tiny_run, snakemake_bin, tmp_path):
    overlay = tmp_path / "add_nga.yaml"
    overlay.write_text("countries: [USA, NLD, NGA]\n")
    jobs = planned_jobs(snakemake_bin, tiny_run.parent.parent, overlay)
    model_jobs = [(rule, out) for rule, out in jobs if rule in MODEL_RULES]
    countries = ("USA", "NLD", "NGA")
    expected = {
        ("answer_questions", f"results/{MODEL}/answers/released/culture_aware/NGA.jsonl"),
        # the new culture's own adapter, and the joint adapters (their pair set changed)
        ("finetune_specific", f"results/{MODEL}/sft/{SPECIFIC}/NGA/adapter"),
        ("finetune_joint", f"results/{MODEL}/sft/{JOINT}/adapter"),
        ("finetune_joint", f"results/{MODEL}/sft/{JOINT10}/adapter"),
        *{("evaluate_wvs", f"results/{MODEL}/eval/{variant}/culture_aware/{order}/NGA.jsonl")
          for variant in ("base", SPECIFIC) for order in ORDERS},
        *{("evaluate_wvs", f"results/{MODEL}/eval/{variant}/culture_aware/{order}/{c}.jsonl")
          for variant in (JOINT, JOINT10) for c in countries for order in ORDERS},
        *{("evaluate_mmlu", f"results/{MODEL}/mmlu/{variant}.jsonl") for variant in (JOINT, JOINT10)},
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
