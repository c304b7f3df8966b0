"""The workflow's rules as Snakemake parses them (snakemake.api), without running anything: for
tests that check the rules against the table and figure registries."""

from __future__ import annotations

import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def workflow():
    """The parsed workflow of this repository under config.yaml (its rules and their inputs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        wf = api.workflow(resource_settings=ResourceSettings(), snakefile=REPO / "Snakefile", workdir=REPO,
                          config_settings=ConfigSettings(configfiles=[REPO / "config.yaml"]))
        return wf._workflow  # parsing only: no DAG, no jobs


def producers(path: str) -> list:
    """The rules whose outputs match ``path``."""
    return [r for r in workflow().rules if r.is_producer(path)]


def caption_of(rule, output: str) -> str | None:
    """The report caption file of a rule's named output, relative to the repository."""
    report = getattr(rule.output, output).flags.get("report")
    if report is None or report.caption is None:
        return None
    caption = report.caption  # a source file object once the workflow is parsed
    path = caption.get_path_or_uri(secret_free=True) if hasattr(caption, "get_path_or_uri") else str(caption)
    return str(Path(path).resolve().relative_to(REPO))
