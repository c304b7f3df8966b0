"""End to end on SmolLM2 (tests/configs/not_trained.yaml): a culture with 0 culture-related pairs,
and a joint adapter whose 10% of the pairs rounds to none, do not stop the run. Their adapters are
written as not trained, their evaluations as not answered, their cells are missing with the
reason in the tables and figures, and the run's closing message and adapters.csv name them."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from test_workflow_released import run_snakemake

pytestmark = pytest.mark.slow
MODEL = "SmolLM2-135M-Instruct"
MMLU = REPO.parent / "shared" / "benchmarks" / "mmlu"
SPECIFIC = "specific-crqpc-culture_aware-100"
JOINT10 = "joint-crqpc-culture_aware-10"
NLD_REASON = "0 culture-related pairs for NLD"
JOINT_REASON = "0 of the 2 culture-related pairs for any culture at 10%"


@pytest.fixture(scope="module")
def run(snakemake_bin, data_dir, tmp_path_factory):
    if not (MMLU / "mmlu.zip").is_file():
        pytest.skip(f"MMLU not found at {MMLU}")
    work = tmp_path_factory.mktemp("not_trained")
    paths = work / "paths.yaml"
    paths.write_text(f"data_mirror: {data_dir}\nmmlu_mirror: {MMLU}\n")
    root = f"results/{MODEL}"
    targets = [f"{root}/sft/adapters.csv", f"{root}/alignment.csv", f"{root}/mmlu.csv",
               *(f"{root}/tables/{t}.md" for t in ("joint_specific_cct", "data_quantity", "general_ability")),
               *(f"{root}/figures/{f}.png" for f in ("figure5_matrices", "figure6_data_quantity"))]
    # 9 minutes on 2 shared cores when measured; the limit leaves room for a busier machine
    proc = run_snakemake(snakemake_bin, work, targets=targets, timeout=2400,
                         configfiles=[REPO / "tests/configs/not_trained.yaml", paths])
    return work / "results" / MODEL, proc.stdout + proc.stderr


def test_precondition_nld_has_no_pair(run):
    root, _ = run
    stats = pd.read_csv(root / "pairs/released/culture_aware/stats.csv").set_index("culture")
    # if the engine's answers change, pick another culture with 0 pairs for the config (see its comment)
    assert stats.loc["NLD", "n_CRQPC"] == 0 and stats.loc["USA", "n_CRQPC"] == stats.loc["CHN", "n_CRQPC"] == 1


def test_adapters_are_written_as_not_trained(run):
    root, _ = run
    nld = root / "sft" / SPECIFIC / "NLD"
    assert json.loads((nld / "adapter/not_trained.json").read_text()) == {
        "status": "not_trained", "reason": NLD_REASON, "n_pairs": 0}
    loss = pd.read_csv(nld / "loss.csv")
    assert loss.empty and list(loss.columns) == ["step", "epoch", "loss", "learning_rate"]
    stats = json.loads((nld / "train_stats.json").read_text())
    assert (stats["status"], stats["reason"]) == ("not_trained", NLD_REASON)
    for country in ("USA", "CHN"):  # the others are trained
        assert (root / "sft" / SPECIFIC / country / "adapter/adapter_config.json").is_file()
        assert json.loads((root / "sft" / SPECIFIC / country / "train_stats.json").read_text())["status"] == "trained"
    joint = json.loads((root / "sft" / JOINT10 / "adapter/not_trained.json").read_text())
    assert joint["reason"] == JOINT_REASON
    summary = pd.read_csv(root / "sft/adapters.csv")
    not_trained = summary[summary.status == "not_trained"]
    assert sorted(zip(not_trained.variant, not_trained.country, not_trained.reason)) == [
        (JOINT10, "joint", JOINT_REASON), (SPECIFIC, "NLD", NLD_REASON)]


def test_the_run_says_which_adapters_were_not_trained(run):
    root, out = run
    assert f"{MODEL}: {SPECIFIC} (NLD) not trained: {NLD_REASON}" in out
    assert f"{MODEL}: {JOINT10} not trained: {JOINT_REASON}" in out
    log = (root.parent.parent / f"logs/{MODEL}/sft/{SPECIFIC}/NLD.log").read_text()
    assert f"not trained: {NLD_REASON}" in log


def test_evaluations_are_not_answered_with_the_reason(run):
    root, _ = run

    def cell(variant, country):
        path = root / f"eval/{variant}/culture_aware/original/{country}.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()]

    nld = cell(SPECIFIC, "NLD")
    assert len(nld) == 10 and all(r["status"] == "not_answered" and r["choice"] is None for r in nld)
    assert {r["reason"] for r in nld} == {f"not trained: {NLD_REASON}"}
    assert all(r["choice"] is not None for c in ("USA", "CHN") for r in cell(SPECIFIC, c))
    for country in ("USA", "CHN", "NLD"):
        assert {r["reason"] for r in cell(JOINT10, country)} == {f"not trained: {JOINT_REASON}"}


def test_cells_are_missing_with_the_reason(run):
    root, _ = run
    table = pd.read_csv(root / "alignment.csv")
    cell = table.query("variant == @SPECIFIC and method == 'culture_aware' and metric == 'paper_score'")
    cell = cell.set_index("country")
    assert np.isnan(cell.loc["NLD", "value"]) and cell.loc["NLD", "reason"] == f"not trained: {NLD_REASON}"
    assert 0 < cell.loc["USA", "value"] <= 100 and 0 < cell.loc["AVG", "value"] <= 100  # AVG of USA and CHN
    joint = table.query("variant == @JOINT10 and metric == 'paper_score'")
    assert joint["value"].isna().all() and set(joint["reason"]) == {f"not trained: {JOINT_REASON}"}
    mmlu = pd.read_csv(root / "mmlu.csv").query("variant == @JOINT10 and metric == 'delta'")
    assert mmlu["value"].isna().all() and set(mmlu["reason"]) == {f"not trained: {JOINT_REASON}"}
    notes = (root / "tables/joint_specific_cct.md").read_text()
    assert f"(NLD): not trained: {NLD_REASON}" in notes
    assert f"not trained: {JOINT_REASON}" in (root / "tables/data_quantity.md").read_text()
    assert f"not trained: {JOINT_REASON}" in (root / "tables/general_ability.md").read_text()
    for name in ("figure5_matrices", "figure6_data_quantity"):
        assert (root / "figures" / f"{name}.png").stat().st_size > 5_000
