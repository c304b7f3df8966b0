"""Configuration checks beyond the JSON schema: cross-references and paths.

The schema (schemas/config.schema.yaml) checks types and shapes; ``check_config`` checks what a
schema cannot: that every culture code used is defined and has survey data, and that paths exist.
Both run before any job, so a bad config never starts a run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from .cultures import catalogue_from_config, select
from .errors import ConfigError, CultureSPAError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"

# Countries with answers in the pinned data/proportions_group_by_country.json (its sha256 is pinned,
# so this set cannot change under us).
SURVEY_COUNTRIES = frozenset(
    "AUS BOL BRA CAN CHN DEU ETH GBR IND KEN MEX NGA NLD NZL RUS THA UKR USA ZWE".split()
)


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def validate_schema(config: Mapping[str, Any], schema_path: str | Path = SCHEMA_PATH) -> None:
    """Raise ConfigError naming the first offending key (the deepest error is the most useful)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (-len(e.absolute_path), str(e.absolute_path)))
    if errors:
        e = errors[0]
        raise ConfigError(f"config key '{_key(e.absolute_path)}': {e.message}")


def countries(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("countries") or [c["code"] for c in config["cultures"]])


VARIANT_PATTERN = re.compile(r"(joint|specific)-(crqpc|rds|cds)-(culture_aware|cross_culture)-([0-9]+)")


def check_variant(variant: str, key: str) -> None:
    """``{joint|specific}-{crqpc|rds|cds}-{culture_aware|cross_culture}-{percent}``, the percent of
    the pairs trained on in 1..100 (a fraction in (0, 1])."""
    m = VARIANT_PATTERN.fullmatch(str(variant))
    if not m:
        raise ConfigError(
            f"config key '{key}': {variant!r} is not a variant name "
            "({joint|specific}-{crqpc|rds|cds}-{culture_aware|cross_culture}-{percent})"
        )
    percent = int(m.group(4))
    if not 1 <= percent <= 100:
        raise ConfigError(
            f"config key '{key}': {variant!r} trains on {percent}% of the pairs; the percent must be in "
            f"1..100 (a fraction in (0, 1])"
        )


def check_config(config: Mapping[str, Any], workdir: str | Path = ".") -> None:
    """Semantic checks; each error names the config key to fix."""
    catalogue = catalogue_from_config(config)
    for i, code in enumerate(catalogue):
        if code not in SURVEY_COUNTRIES:
            raise ConfigError(
                f"config key 'cultures[{i}]': {code} has no survey answers in "
                f"proportions_group_by_country.json (available: {', '.join(sorted(SURVEY_COUNTRIES))})"
            )
    select(catalogue, countries(config), key="countries")
    baseline = config.get("scoring", {}).get("majority_baseline")
    if baseline is not None and baseline not in SURVEY_COUNTRIES:
        raise ConfigError(f"config key 'scoring.majority_baseline': {baseline} has no survey answers")
    for i, name in enumerate(config.get("run_models", [])):
        if name not in config.get("models", {}):
            raise ConfigError(f"config key 'run_models[{i}]': model {name!r} is not defined under 'models'")
    for name, spec in config.get("models", {}).items():
        path = spec.get("path")
        if path and (path.startswith((".", "/")) or Path(path).exists()) and not Path(workdir, path).exists():
            raise ConfigError(f"config key 'models.{name}.path': local folder {path!r} does not exist")
    for key in ("sft", "mmlu"):
        for i, variant in enumerate((config.get(key) or {}).get("variants") or []):
            check_variant(variant, f"{key}.variants[{i}]")
            if key == "mmlu" and not variant.startswith("joint-"):
                raise ConfigError(
                    f"config key 'mmlu.variants[{i}]': {variant} has one adapter per culture; MMLU compares one "
                    "model with the base model: name a culture-joint variant"
                )
    for i, name in enumerate(config.get("run_models", [])):
        gguf = config.get("models", {}).get(name, {}).get("gguf")
        if gguf and not (Path(workdir) / "resources" / "models" / name).is_dir():
            from .models import packaged_file

            try:
                packaged_file(gguf["package"], gguf["file"])
            except CultureSPAError as e:
                raise ConfigError(f"config key 'models.{name}.gguf' (run_models[{i}]): {e}") from None
    for key in ("data_mirror", "mmlu_mirror"):
        mirror = config.get(key)
        if mirror and not (Path(workdir) / mirror).is_dir():
            raise ConfigError(f"config key '{key}': directory {mirror!r} does not exist")

