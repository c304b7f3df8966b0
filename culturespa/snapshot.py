"""A results snapshot: the tidy tables a finished run's figures and tables read, small enough to commit,
and their restoration into ``results/`` so that every figure and table renders without a model.

``take`` copies, from ``results/{model}/`` of a finished run, every file matching ``SNAPSHOT_FILES``
(alignment, matrices, per-topic scores, pair statistics, MMLU, question-filter counts and pool,
adapter summary, loss curves and training statistics) and the per-job benchmark TSVs of
``results/benchmarks/{model}/``, with the configuration files that made them and the commit they ran
at (``PROVENANCE``), and the wall time of each step (``RUN_TIME``). ``restore`` copies them back into
a working directory's ``results/`` (after which ``snakemake paper --allowed-rules ...`` renders from
them: ``RENDER_RULES``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from . import runtime
from .errors import DataFileError
from .io import atomic_dir, atomic_path, write_json
from .logs import CODE_PATTERN, REPO, code_commit

# relative to results/{model}/
SNAPSHOT_FILES = (
    "alignment.csv",
    "matrices.csv",
    "alignment_by_topic.csv",
    "mmlu.csv",
    "questions/*/filter_counts.csv",
    "questions/*/topic_counts.csv",
    "questions/*/pool.jsonl",
    "pairs/*/*/stats.csv",
    "pairs/*/*/topic_stats.csv",
    "sft/adapters.csv",
    "sft/**/loss.csv",
    "sft/**/train_stats.json",
)
BENCHMARKS = "benchmarks"  # the snapshot's folder of results/benchmarks/{model}/
PROVENANCE = "PROVENANCE.json"
RUN_TIME = "run_time.csv"  # wall time per step (culturespa.runtime), from the benchmark TSVs
# the rules that turn a snapshot into figures and tables, besides the figure and table rules
# themselves: the released answers' data and scores and the framework figure (none runs a model)
RENDER_RULES = ("paper", "tables", "get_culturespa_data", "score_released", "export_rulegraph")


def _files(root: Path, patterns: Iterable[str]) -> list[Path]:
    out = set()
    for pattern in patterns:
        out.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(out)


def take(workdir: str | Path, model: str, dest: str | Path, config_files: Iterable[str | Path] = (),
         note: str = "") -> dict:
    """Copy a finished run's tidy results of ``model`` (under ``workdir``) into ``dest``, replacing
    what was there, with ``config_files`` and a provenance record (commit, files, sizes)."""
    workdir, dest = Path(workdir), Path(dest)
    src = workdir / "results" / model
    if not (src / "alignment.csv").is_file():
        raise DataFileError(f"{src}: no alignment.csv; is the run finished?")
    files = _files(src, SNAPSHOT_FILES)
    bench_src = workdir / "results" / "benchmarks" / model
    benches = _files(bench_src, ("**/*.tsv",)) if bench_src.is_dir() else []
    with atomic_dir(dest) as tmp:  # a snapshot is the old one or the whole new one, never half of each
        copies = [(p, tmp / p.relative_to(src)) for p in files]
        copies += [(p, tmp / BENCHMARKS / p.relative_to(bench_src)) for p in benches]
        copies += [(Path(cfg), tmp / Path(cfg).name) for cfg in config_files]
        for source, target in copies:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        if benches:  # the wall time of each step, for the README (python -m culturespa run-time)
            runtime.step_table(runtime.job_times(tmp / BENCHMARKS)).to_csv(tmp / RUN_TIME, index=False)
        provenance = {"model": model, "commit": code_commit(), "job_commits": job_commits(workdir / "logs" / model),
                      "configs": [Path(cfg).name for cfg in config_files],
                      "files": [str(p.relative_to(src)) for p in files], "benchmarks": len(benches),
                      "bytes": sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()), "note": note}
        write_json(tmp / PROVENANCE, provenance)
    return provenance


def read_provenance(src: Path) -> dict:
    if not (src / PROVENANCE).is_file():
        raise DataFileError(f"{src}: not a results snapshot (no {PROVENANCE}); a finished run makes one with "
                            "`python -m culturespa snapshot` (`make replication-snapshot` after `make replication`)")
    return json.loads((src / PROVENANCE).read_text())


def restore(src: str | Path, workdir: str | Path = ".") -> list[Path]:
    """Copy a snapshot (``take``'s ``dest``) into ``workdir/results/{model}/`` (its benchmark TSVs into
    ``results/benchmarks/{model}/``); returns the files written."""
    src, workdir = Path(src), Path(workdir)
    provenance = read_provenance(src)
    model = provenance["model"]
    bench = src / BENCHMARKS
    copies = [(src / rel, workdir / "results" / model / rel) for rel in provenance["files"]]
    copies += [(path, workdir / "results" / "benchmarks" / model / path.relative_to(bench))
               for path in (_files(bench, ("**/*.tsv",)) if bench.is_dir() else [])]
    written = []
    for source, target in copies:
        with atomic_path(target) as tmp:
            shutil.copy2(source, tmp)
        written.append(target)
    return written


def render_rules(repo: str | Path) -> list[str]:
    """Every rule that draws a figure or writes a table (rules/figures.smk, rules/tables.smk), and
    ``RENDER_RULES``: what ``snakemake paper --allowed-rules`` needs to render from a snapshot."""
    import re

    from .figures import FIGURES

    repo = Path(repo)
    names = set(RENDER_RULES) | set(FIGURES)
    for smk in ("tables.smk", "figures.smk"):
        text = (repo / "rules" / smk).read_text()
        names |= set(re.findall(r"^rule (\w+):", text, flags=re.M))
        names |= set(re.findall(r"^use rule \w+ as (\w+) with:", text, flags=re.M))
    return sorted(names)


REPORT = "results/report.html"  # under the working directory: the Snakemake report of the rendered outputs


def render(src: str | Path, workdir: str | Path = ".", cores: int = 2, extra: Iterable[str] = (),
           tables_only: bool = False) -> int:
    """Restore the snapshot ``src`` into ``workdir`` and render every figure and table of the paper
    from it with Snakemake (``paper``), no model job allowed, under the configuration the snapshot
    records (config.yaml and the snapshot's own config files), then the Snakemake HTML report of
    them (``REPORT``); ``tables_only``: the tables (``tables``), no figure and no report;
    ``extra``: more Snakemake arguments (e.g. ``--config data_mirror=...``, which must come last).
    Returns Snakemake's exit status."""
    import sys

    src, workdir = Path(src).resolve(), Path(workdir)
    provenance = read_provenance(src)
    restore(src, workdir)
    configs = [str(REPO / "config.yaml")] + [str(src / c) for c in provenance["configs"] if c != "config.yaml"]
    target = "tables" if tables_only else "paper"
    cmd = [sys.executable, "-m", "snakemake", target, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--cores", str(cores), "--allowed-rules", *render_rules(REPO), "--configfile", *configs]
    status = subprocess.run([*cmd, *extra]).returncode
    if status == 0 and not tables_only:
        status = subprocess.run([*cmd, "--report", str(workdir.resolve() / REPORT), *extra]).returncode
    return status


def job_commits(logs: Path) -> dict[str, int]:
    """How many of the run's jobs (their logs under ``logs``) ran at each commit; "not recorded":
    logs from before jobs named their code. A run resumed across code changes shows several."""
    counts: dict[str, int] = {}
    for log in sorted(logs.rglob("*.log")) if logs.is_dir() else []:
        found = CODE_PATTERN.findall(log.read_text(errors="replace"))
        key = found[-1] if found else "not recorded"
        counts[key] = counts.get(key, 0) + 1
    return counts
