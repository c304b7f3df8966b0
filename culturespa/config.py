"""Configuration checks beyond the JSON schema: cross-references and paths.

The schema (schemas/config.schema.yaml) checks types and shapes; ``check_config`` checks what a
schema cannot: that every culture code used is defined and has survey data, and that paths exist.
Both run before any job, so a bad config never starts a run. ``check_config`` also expands ``~``
and environment variables in every path key (the keys the schema marks ``format: path``), once,
in place, so every rule sees the expanded path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from .cultures import catalogue_entries, culture_entries, select
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
    return list(config.get("countries") or [c["code"] for c in culture_entries(config)])


# --- path keys ------------------------------------------------------------------------------

PATH_FORMAT = "path"  # schema annotation of a key that holds a file or folder path
LOCAL_PREFIXES = ("~", "/", ".", "$")  # a model path starting so is a local folder, never a hub id


def path_keys(schema: Mapping, config: Mapping, prefix: tuple = ()) -> list[tuple]:
    """The config keys (as tuples) that the schema marks ``format: path`` and the config sets;
    ``additionalProperties`` schemas (e.g. ``models.<name>``) apply to every key they cover."""
    out = []
    if not isinstance(config, Mapping):
        return out
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, value in config.items():
        sub = props.get(key, extra if isinstance(extra, Mapping) else None)
        if sub is None:
            continue
        if sub.get("format") == PATH_FORMAT and isinstance(value, str):
            out.append((*prefix, key))
        elif isinstance(value, Mapping):
            out += path_keys(sub, value, (*prefix, key))
    return out


def _dotted(key: tuple) -> str:
    return ".".join(map(str, key))


def expand_path(value: str, key: str) -> str:
    """``~`` and ``$VAR`` / ``${VAR}`` expanded; an unset variable is an error naming the key."""
    expanded = os.path.expandvars(os.path.expanduser(value))
    unset = re.search(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expanded)
    if unset:
        raise ConfigError(f"config key '{key}': environment variable {unset.group(1)} in {value!r} is not set")
    return expanded


def expand_paths(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict[str, str]:
    """Expand ``~`` and environment variables in every path key of ``config``, in place.
    Returns {dotted key: the value as written} for the keys it changed."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    written = {}
    for key in path_keys(schema, config):
        *parents, last = key
        node = config
        for part in parents:
            node = node[part]
        raw = node[last]
        node[last] = expand_path(raw, _dotted(key))
        if node[last] != raw:
            written[_dotted(key)] = raw
    return written


def is_local_model_path(written: str, workdir: str | Path = ".") -> bool:
    """A model ``path`` as written in the config is a local folder when it starts with ``~``,
    ``/``, ``.`` or ``$``, or names something that exists; otherwise a hub id (``org/name``)."""
    return written.startswith(LOCAL_PREFIXES) or Path(workdir, os.path.expandvars(os.path.expanduser(written))).exists()


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


def check_config(config: dict, workdir: str | Path = ".") -> None:
    """Semantic checks; each error names the config key to fix. Expands the path keys first
    (``expand_paths``, in place), so the checks and every rule see expanded paths."""
    written = expand_paths(config)
    entries = catalogue_entries(config)
    for where, entry in entries:
        if entry["code"] not in SURVEY_COUNTRIES:
            raise ConfigError(
                f"config key '{where}': {entry['code']} has no survey answers in "
                f"proportions_group_by_country.json (available: {', '.join(sorted(SURVEY_COUNTRIES))})"
            )
    select({e["code"]: e for _, e in entries}, countries(config), key="countries")
    baseline = config.get("scoring", {}).get("majority_baseline")
    if baseline is not None and baseline not in SURVEY_COUNTRIES:
        raise ConfigError(f"config key 'scoring.majority_baseline': {baseline} has no survey answers")
    for i, name in enumerate(config.get("run_models", [])):
        if name not in config.get("models", {}):
            raise ConfigError(f"config key 'run_models[{i}]': model {name!r} is not defined under 'models'")
    for i, name in enumerate(config.get("run_models", [])):
        path = config["models"][name].get("path")
        key = f"models.{name}.path"
        if path and is_local_model_path(written.get(key, path), workdir) and not Path(workdir, path).is_dir():
            shown = f"{written[key]!r} ({path})" if key in written else repr(path)
            raise ConfigError(
                f"config key '{key}' (run_models[{i}]): local model folder {shown} does not exist "
                "(a Hugging Face hub id is written org/name)"
            )
    for variant in (config.get("evaluation") or {}).get("variant_methods") or {}:
        if variant not in (config.get("sft") or {}).get("variants", []):
            raise ConfigError(f"config key 'evaluation.variant_methods.{variant}': not a variant of sft.variants")
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
            shown = f"{written[key]!r} ({mirror})" if key in written else repr(mirror)
            raise ConfigError(f"config key '{key}': directory {shown} does not exist")

