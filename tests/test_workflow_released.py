"""End-to-end Snakemake runs of the data acquisition and the released-output scoring."""

import os
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import REPO
from test_fetch import http_mirror  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


RELEASED_TABLE = "results/released/Meta-Llama-3-8B-Instruct/alignment.csv"


# The cores of one Snakemake run: both on 2 cores, one each where two pytest-xdist workers share them
# (a model job's torch threads then do not contend with the other worker's).
CORES = max(1, (os.cpu_count() or 2) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def run_snakemake(snakemake_bin, workdir, *args, targets=(RELEASED_TABLE,), configfiles=(), check=True, timeout=1200):
    """Targets first: --configfile and --config take every word after them."""
    cmd = [snakemake_bin, *targets, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", str(CORES),
           "--configfile", str(REPO / "config.yaml"), *map(str, configfiles), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def test_released_scoring_downloads_and_scores(snakemake_bin, http_mirror, tmp_path):  # noqa: F811
    fast = tmp_path / "fast.yaml"
    fast.write_text(f"data_base_url: {http_mirror}\nscoring:\n  n_boot: 100\n")
    run_snakemake(snakemake_bin, tmp_path, configfiles=[fast])
    table = pd.read_csv(tmp_path / "results/released/Meta-Llama-3-8B-Instruct/alignment.csv")
    avg = table[(table.country == "AVG") & (table.metric == "paper_score")].set_index("method")["value"]
    assert avg["culture_unaware"] == pytest.approx(62.36, abs=0.01)
    assert avg["culture_aware"] == pytest.approx(66.61, abs=0.01)
    matrix = pd.read_csv(tmp_path / "results/released/Meta-Llama-3-8B-Instruct/matrix/culture_aware.csv", index_col=0)
    assert matrix.shape == (18, 18)
    log = (tmp_path / "logs/data/culturespa.log").read_text()
    assert "verified sha256" in log and "127.0.0.1" in log
    # the base-model figures and tables of the paper, from the released answers alone
    root = "results/released/Meta-Llama-3-8B-Instruct"
    targets = [f"{root}/figures/figure1_alignment.png", f"{root}/figures/figure5_matrices.png",
               f"{root}/tables/main_results.md"]
    run_snakemake(snakemake_bin, tmp_path, targets=targets, configfiles=[fast])
    main = (tmp_path / root / "tables/main_results.md").read_text()
    assert "66.61 [" in main and "not released by the authors" in main


def test_corrupted_mirror_stops_the_run_and_leaves_no_file(snakemake_bin, data_dir, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(data_dir, mirror)
    target = mirror / "data/proportions_group_by_country.json"
    target.chmod(0o644)
    target.write_text(target.read_text().replace("0.9", "0.8", 1))
    work = tmp_path / "work"
    proc = run_snakemake(snakemake_bin, work, "--config", f"data_mirror={mirror}", check=False)
    assert proc.returncode != 0
    assert "checksum mismatch" in proc.stdout + proc.stderr
    assert "data/proportions_group_by_country.json" in proc.stdout + proc.stderr
    assert not (work / "resources/culturespa/data/proportions_group_by_country.json").exists()
    assert not (work / "results/released/Meta-Llama-3-8B-Instruct/alignment.csv").exists()


def test_schema_error_stops_before_any_job(snakemake_bin, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scoring:\n  n_boot: lots\n")
    proc = run_snakemake(snakemake_bin, tmp_path, "-n", configfiles=[bad], check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "n_boot" in out and "is not of type 'integer'" in out


def test_corrupted_mmlu_mirror_stops_the_run_naming_the_file(snakemake_bin, tmp_path):
    shared = REPO.parent / "shared" / "benchmarks" / "mmlu"
    if not (shared / "mmlu.zip").is_file():
        pytest.skip(f"no MMLU mirror at {shared}")
    bad = tmp_path / "mmlu"
    bad.mkdir()
    shutil.copy(shared / "mapping.json", bad / "mapping.json")
    (bad / "mmlu.zip").write_bytes((shared / "mmlu.zip").read_bytes()[:-10])
    work = tmp_path / "work"
    proc = run_snakemake(snakemake_bin, work, "--config", f"mmlu_mirror={bad}",
                         targets=("resources/mmlu/mmlu.zip", "resources/mmlu/mapping.json"), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "mmlu.zip: checksum mismatch" in out
    assert not (work / "resources/mmlu/mmlu.zip").exists()
