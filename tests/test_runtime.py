"""Wall time per step from Snakemake's benchmark TSVs (culturespa.runtime, `python -m culturespa run-time`)."""

from __future__ import annotations

import pytest

from conftest import REPO

from culturespa import runtime
from culturespa.cli import main
from culturespa.errors import DataFileError

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
JOBS = {  # the rules' benchmark paths (rules/*.smk), with wall seconds
    "answers/released/culture_unaware/none.tsv": 100.0,
    "answers/released/culture_aware/USA.tsv": 200.0,
    "answers/released/culture_aware/CHN.tsv": 300.0,
    "sft/joint-crqpc-culture_aware-100.tsv": 1000.0,
    "sft/specific-crqpc-culture_aware-100/USA.tsv": 400.0,
    "eval/base/culture_aware/original/USA.tsv": 60.0,
    "eval/joint-crqpc-culture_aware-100/culture_aware/original/USA.tsv": 50.0,
    "mmlu/base.tsv": 30.0,
}


def write_benchmarks(root, jobs=JOBS):
    for rel, seconds in jobs.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + f"{seconds}\t0:00:00\t1\t1\t1\t1\t0\t0\t50\t{seconds / 10}\n")


def test_step_table_sums_each_part_step_and_the_run(tmp_path):
    write_benchmarks(tmp_path)
    times = runtime.job_times(tmp_path)
    assert len(times) == len(JOBS)
    table = runtime.step_table(times).set_index(["step", "part"])
    aware = table.loc[("2 culture-unaware / culture-aware answers", "culture_aware (released questions)")]
    assert aware.jobs == 2 and aware.median_job_s == 250.0 and aware.max_job_s == 300.0
    assert table.loc[("2 culture-unaware / culture-aware answers", "all")].job_hours == round(600 / 3600, 3)
    assert table.loc[("4 fine-tuning (QLoRA)", "joint")].jobs == 1
    assert table.loc[("4 fine-tuning (QLoRA)", "specific")].job_hours == round(400 / 3600, 3)
    assert table.loc[("5 WVS evaluation", "base model, culture_aware")].jobs == 1
    assert table.loc[("5 WVS evaluation", "tuned models, culture_aware")].jobs == 1
    assert table.loc[("total", "all")].job_hours == round(sum(JOBS.values()) / 3600, 3)
    steps = list(dict.fromkeys(s for s, _ in table.index))
    assert steps == [runtime.STEPS[k] for k in ("answers", "sft", "eval", "mmlu")] + ["total"]


def test_run_time_command_prints_markdown_and_reads_a_snapshot(tmp_path, capsys):
    write_benchmarks(tmp_path / "bench")
    assert main(["run-time", str(tmp_path / "bench")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| step | part |") and "| total | all | 8 | 0.59 |" in out
    # a snapshot folder: its benchmarks/ subfolder
    write_benchmarks(tmp_path / "snap" / "benchmarks")
    (tmp_path / "snap" / "PROVENANCE.json").write_text("{}")
    assert main(["run-time", str(tmp_path / "snap")]) == 0
    assert capsys.readouterr().out == out


def test_bad_benchmarks_are_errors(tmp_path, capsys):
    with pytest.raises(DataFileError, match="no benchmark folder"):
        runtime.job_times(tmp_path / "missing")
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "x.tsv").write_text("not\ta benchmark\n")
    with pytest.raises(DataFileError, match="not a Snakemake benchmark TSV"):
        runtime.job_times(tmp_path)
    assert main(["run-time", str(tmp_path)]) == 1
    assert "not a Snakemake benchmark TSV" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert runtime.step_table(runtime.job_times(tmp_path / "empty")).empty


def test_each_job_log_names_its_commit_and_the_snapshot_counts_them(tmp_path):
    """A resumable run can span code changes: every job's log names the commit it ran at, and a
    snapshot's provenance counts the jobs per commit (logs from before this line: "not recorded")."""
    import subprocess

    from culturespa.logs import code_commit, run_logged
    from culturespa.snapshot import job_commits

    logs = tmp_path / "logs" / "M"
    (logs / "eval").mkdir(parents=True)
    run_logged(str(logs / "eval" / "USA.log"), lambda: None)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert code_commit().split("+")[0] == head
    (logs / "eval" / "CHN.log").write_text(f"2026-11-30 12:00:00,000 INFO culturespa: code: commit {'a' * 40}\n")
    (logs / "old.log").write_text("2026-11-29 12:00:00,000 INFO culturespa.engine: 10 prompts\n")
    assert job_commits(logs) == {code_commit(): 1, "a" * 40: 1, "not recorded": 1}
    assert job_commits(tmp_path / "nowhere") == {}
    assert code_commit(tmp_path) is None  # not a git checkout
