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


def catalogue_from_config(config: Mapping) -> dict[str, Culture]:
    """All cultures the config describes, keyed by code, in config order."""
    catalogue: dict[str, Culture] = {}
    for i, entry in enumerate(config["cultures"]):
        code = entry["code"]
        if code in catalogue:
            raise ConfigError(f"cultures[{i}].code: duplicate culture code {code!r}")
        catalogue[code] = Culture(code, entry["adjective"], entry["article"], entry["continent"])
    return catalogue


def select(catalogue: Mapping[str, Culture], codes: Iterable[str], key: str = "countries") -> list[Culture]:
    """The cultures named by ``codes``, failing on an unknown code with the config key."""
    chosen = []
    for i, code in enumerate(codes):
        if code not in catalogue:
            raise ConfigError(
                f"config key '{key}[{i}]': unknown culture code {code!r}; add it under 'cultures' "
                f"(known: {', '.join(catalogue)})"
            )
        chosen.append(catalogue[code])
    return chosen
