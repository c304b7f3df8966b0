"""The Slurm profile, on a real one-node Slurm cluster started on this machine.

test_slurm_profile_dry_run, test_local_profile_dry_run, test_profiles_* (any user): the profiles
parse, name only existing rules, the model rules keep their GPU, the 41 downloads form one group job.

test_released_scoring_through_slurm (root only; installs Debian's slurmctld, slurmd, slurm-client and
munge when missing): the released-answer scoring runs through the Slurm executor plugin and gives
exactly the table a local run gives.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import LocalSlurm, SlurmUnavailable  # noqa: E402

TARGET = "results/released/Meta-Llama-3-8B-Instruct/alignment.csv"
PROFILE = REPO / "profiles" / "slurm"
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def rule_names() -> set[str]:
    return {m for smk in (REPO / "rules").glob("*.smk")
            for m in re.findall(r"^(?:rule|checkpoint) (\w+):", smk.read_text(), flags=re.M)}


def gpu_rules() -> set[str]:
    """Rules that declare a GPU in rules/*.smk."""
    names = set()
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule |checkpoint )", smk.read_text(), flags=re.M):
            head = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if head and re.search(r"^\s+gpu\s*=\s*[1-9]", block, flags=re.M):
                names.add(head.group(1))
    return names


def cpu_cluster_profile(dest: Path) -> Path:
    """The site profile as a CPU-only site with small nodes would adapt it: gpu=0 on the model
    rules, cores at most the node's; plus quick status checks and kept Slurm logs, for the test."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    set_resources = profile.setdefault("set-resources", {})
    for rule in gpu_rules() | set(set_resources):
        set_resources.setdefault(rule, {})["gpu"] = 0
    profile["cores"] = min(profile.get("cores", 1), os.cpu_count())  # one node of nproc CPUs
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["slurm-keep-successful-logs"] = True
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest


def snakemake_cmd(snakemake_bin, workdir: Path, data_dir: Path, *opts) -> list[str]:
    """Targets first: --configfile and --config take every word after them."""
    fast = workdir.parent / f"{workdir.name}-fast.yaml"
    fast.write_text("scoring:\n  n_boot: 100\n")
    return [snakemake_bin, TARGET, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *opts,
            "--configfile", str(REPO / "config.yaml"), str(fast), "--config", f"data_mirror={data_dir}"]


def test_slurm_profile_dry_run(snakemake_bin, data_dir, tmp_path):
    """Dry run of the paper configuration with the site profile, no cluster needed."""
    cmd = [snakemake_bin, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
           "--workflow-profile", str(PROFILE),
           "--configfile", str(REPO / "config.yaml"), "--config", f"data_mirror={data_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    # one job for all the paper's data files
    assert proc.stdout.count("rule get_culturespa_data:") == 1, out[-3000:]
    # every model job keeps its GPU and gets the profile's memory
    jobs = re.findall(r"^\s*rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", proc.stdout, flags=re.M)
    assert jobs
    for rule, resources in jobs:
        if rule in gpu_rules():
            assert "gpu=1" in resources, (rule, resources)
            assert int(re.search(r"mem_mb=(\d+)", resources).group(1)) >= 32000, (rule, resources)


@pytest.mark.parametrize("name", ["slurm", "local"])
def test_profiles_set_resources_of_existing_rules(name):
    """Snakemake silently ignores set-resources for an unknown rule: catch renamed rules here."""
    profile = yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())
    assert set(profile.get("set-resources", {})) <= rule_names()


def test_local_profile_dry_run(snakemake_bin, data_dir, tmp_path):
    cmd = [snakemake_bin, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
           "--workflow-profile", str(REPO / "profiles" / "local"),
           "--configfile", str(REPO / "config.yaml"), "--config", f"data_mirror={data_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert "gpu=1" in proc.stdout


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a local Slurm cluster needs root (apt-get install, munged, slurmd)")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        try:
            cluster.start()
        except SlurmUnavailable as e:
            pytest.skip(f"no local Slurm cluster: {e}")
        yield cluster
    finally:
        cluster.stop()


def test_released_scoring_through_slurm(data_dir, snakemake_bin, slurm, tmp_path):
    profile = cpu_cluster_profile(tmp_path / "profile")
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"

    # the same target without Slurm, side by side
    local = subprocess.Popen(snakemake_cmd(snakemake_bin, local_dir, data_dir, "--cores", "1"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = time.monotonic()
    # plain `timeout` does not stop Snakemake: -k sends SIGKILL 10 s after the TERM
    proc = subprocess.run(
        ["timeout", "-k", "10", "600",
         *snakemake_cmd(snakemake_bin, slurm_dir, data_dir, "--workflow-profile", str(profile))],
        capture_output=True, text=True, env=slurm.env, timeout=630,
    )
    elapsed = time.monotonic() - start
    local_out, _ = local.communicate(timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{out[-6000:]}\n{slurm.logs()}"
    assert local.returncode == 0, local_out[-5000:]

    # both cluster jobs went through sbatch, ran on the cluster and completed there: the downloads
    # and the scoring
    submitted = {}
    for _, jobid, log in SUBMITTED.findall(out):  # .snakemake/slurm_logs/<group_or_rule>/.../<jobid>.log
        parts = Path(log).parts
        submitted[parts[parts.index("slurm_logs") + 1]] = (jobid, Path(log))
    assert set(submitted) == {"rule_get_culturespa_data", "rule_score_released"}, out[-4000:]
    for name, (jobid, log) in submitted.items():
        record = slurm.job(jobid)
        assert record["JobState"] == "COMPLETED", record
        assert record["Partition"] == slurm.partition
        assert Path(record["WorkDir"]).resolve() == slurm_dir.resolve()
        assert log.is_file(), log  # kept: slurm-keep-successful-logs
        assert "steps (100%) done" in log.read_text(), log.read_text()[-3000:]
    assert slurm.job(submitted["rule_score_released"][0])["Comment"].startswith("rule_score_released")
    assert slurm.job(submitted["rule_get_culturespa_data"][0])["Comment"].startswith("rule_get_culturespa_data")

    # same table as the local run, to the last digit
    via_slurm = pd.read_csv(slurm_dir / TARGET)
    locally = pd.read_csv(local_dir / TARGET)
    pd.testing.assert_frame_equal(via_slurm, locally, check_exact=True)
    assert len(via_slurm) > 0
    print(f"Slurm run: {elapsed:.0f} s, SLURM jobs {sorted(j for j, _ in submitted.values())}")
