"""Wall time per step of a run, from the per-job benchmark TSVs Snakemake writes under
``results/benchmarks/{model}/`` (the rules' ``benchmark:`` paths).

Only the wall-clock column (``s``) is read: under the job server (``culturespa.jobserver``) the TSV
measures the waiting client, whose wall time is the job's but whose CPU time and memory are not.
Job hours add up the jobs' own wall times; with several jobs side by side the run's elapsed time is
shorter, and the table says how many jobs each step had.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import DataFileError

# the first folder of a benchmark path -> the step, in the method's order
STEPS = {"questions": "1 question generation", "answers": "2 culture-unaware / culture-aware answers",
         "sft": "4 fine-tuning (QLoRA)", "eval": "5 WVS evaluation", "mmlu": "5 MMLU"}
COLUMNS = ["step", "part", "jobs", "job_hours", "median_job_s", "max_job_s"]


def _part(parts: tuple[str, ...]) -> str:
    """What a job did within its step, from its benchmark path (rules/*.smk ``benchmark:``)."""
    kind = parts[0]
    if kind == "answers":  # answers/{source}/{method}/{persona}.tsv
        return f"{parts[2]} ({parts[1]} questions)"
    if kind == "sft":  # sft/joint-{data}-{setting}-{fraction}.tsv or sft/specific-.../{country}.tsv
        return parts[1].removesuffix(".tsv").split("-")[0]
    if kind == "eval":  # eval/{variant}/{method}/{order}/{persona}.tsv
        variant = "base model" if parts[1] == "base" else "tuned models"
        return f"{variant}, {parts[2]}"
    if kind == "mmlu":
        return "base model" if parts[1] == "base.tsv" else "tuned models"
    return "generation rounds" if kind == "questions" else "/".join(parts[:-1])


def job_times(bench_dir: str | Path) -> pd.DataFrame:
    """One row per job: its benchmark path (relative), step, part and wall seconds."""
    bench_dir = Path(bench_dir)
    if not bench_dir.is_dir():
        raise DataFileError(f"{bench_dir}: no benchmark folder (the run's results/benchmarks/MODEL)")
    rows = []
    for path in sorted(bench_dir.rglob("*.tsv")):
        rel = path.relative_to(bench_dir)
        try:
            seconds = pd.read_csv(path, sep="\t")["s"]
        except (pd.errors.ParserError, pd.errors.EmptyDataError, KeyError) as e:
            raise DataFileError(f"{path}: not a Snakemake benchmark TSV ({e})") from e
        if seconds.empty:
            raise DataFileError(f"{path}: a benchmark TSV without a row")
        rows.append({"job": str(rel), "step": STEPS.get(rel.parts[0], rel.parts[0]), "part": _part(rel.parts),
                     "seconds": float(seconds.mean())})  # repeat() benchmarks: their mean
    return pd.DataFrame(rows, columns=["job", "step", "part", "seconds"])


def step_table(times: pd.DataFrame) -> pd.DataFrame:
    """Per step and part, then a row per step and a total: jobs, job hours, median and longest job."""
    if times.empty:
        return pd.DataFrame(columns=COLUMNS)
    order = {name: i for i, name in enumerate(STEPS.values())}

    def summary(group: pd.DataFrame, step: str, part: str) -> dict:
        return {"step": step, "part": part, "jobs": len(group), "job_hours": round(group.seconds.sum() / 3600, 3),
                "median_job_s": round(group.seconds.median(), 1), "max_job_s": round(group.seconds.max(), 1)}

    rows = []
    for step in sorted(times.step.unique(), key=lambda s: (order.get(s, len(order)), s)):
        in_step = times[times.step == step]
        for part in sorted(in_step.part.unique()):
            rows.append(summary(in_step[in_step.part == part], step, part))
        rows.append(summary(in_step, step, "all"))
    rows.append(summary(times, "total", "all"))
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(table: pd.DataFrame) -> str:
    head = "| step | part | jobs | job hours | median job (s) | longest job (s) |\n| --- | --- | ---: | ---: | ---: | ---: |\n"
    return head + "".join(
        f"| {r.step} | {r.part} | {r.jobs} | {r.job_hours:.2f} | {r.median_job_s:.0f} | {r.max_job_s:.0f} |\n"
        for r in table.itertuples()
    )
