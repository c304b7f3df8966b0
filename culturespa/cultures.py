"""Cultures (countries) as configuration: ISO code, adjective, article, continent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .errors import ConfigError


@dataclass(frozen=True)
class Culture:
    code: str  # ISO 3166-1 alpha-3
    adjective: str  # "American", "New Zealand"
    article: str  # "a" or "an", as the persona sentence needs
    continent: str

    @property
    def with_article(self) -> str:
        return f"{self.article} {self.adjective}"


# The catalogue is `cultures` followed by `extra_cultures`: an overlay config file (a second
# --configfile) replaces lists, so it adds cultures under `extra_cultures` and keeps the catalogue.
CATALOGUE_KEYS = ("cultures", "extra_cultures")


def catalogue_entries(config: Mapping) -> list[tuple[str, dict]]:
    """(config key, entry) for every culture of the merged catalogue, in config order; a code
    defined twice is an error naming both keys."""
    out: list[tuple[str, dict]] = []
    seen: dict[str, str] = {}
    for key in CATALOGUE_KEYS:
        for i, entry in enumerate(config.get(key) or []):
            where, code = f"{key}[{i}]", entry["code"]
            if code in seen:
                raise ConfigError(
                    f"config key '{where}.code': duplicate culture code {code!r} (already defined at '{seen[code]}')"
                )
            seen[code] = where
            out.append((where, dict(entry)))
    return out


def culture_entries(config: Mapping) -> list[dict]:
    """The merged catalogue (``cultures`` + ``extra_cultures``) as config entries: what every
    reader of the catalogue uses instead of ``config["cultures"]``."""
    return [entry for _, entry in catalogue_entries(config)]


def catalogue_from_config(config: Mapping) -> dict[str, Culture]:
    """All cultures the config describes (``cultures`` + ``extra_cultures``), keyed by code, in config order."""
    return {
        e["code"]: Culture(e["code"], e["adjective"], e["article"], e["continent"]) for e in culture_entries(config)
    }


def select(catalogue: Mapping[str, Culture], codes: Iterable[str], key: str = "countries") -> list[Culture]:
    """The cultures named by ``codes``, failing on an unknown code with the config key."""
    chosen = []
    for i, code in enumerate(codes):
        if code not in catalogue:
            raise ConfigError(
                f"config key '{key}[{i}]': unknown culture code {code!r}; add it under 'extra_cultures' "
                f"(known: {', '.join(catalogue)})"
            )
        chosen.append(catalogue[code])
    return chosen


def continents_of(codes: Iterable[str], catalogue: Mapping[str, Culture]) -> dict[str, list[str]]:
    """Continent -> the codes of ``codes`` on it (continents in order of first appearance, codes in
    the order given): the groups the per-continent averages are taken over."""
    out: dict[str, list[str]] = {}
    for code in codes:
        out.setdefault(catalogue[code].continent, []).append(code)
    return out
