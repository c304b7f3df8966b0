"""The survey side of a comparison: items, majority answers and distributions as arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .wvs import Distribution, Item, load_distributions, load_items


@dataclass
class Survey:
    items: list[Item]
    countries: list[str]
    dists: dict[str, dict[str, Distribution]]

    def __post_init__(self):
        self.qids = [it.qid for it in self.items]
        self.index = {q: i for i, q in enumerate(self.qids)}
        self.first = np.array([it.first for it in self.items])
        self.n_options = np.array([it.n_options for it in self.items])
        self.max_dist = self.n_options - 1.0
        self.majority = np.full((len(self.countries), len(self.items)), np.nan)
        for ci, c in enumerate(self.countries):
            for qid, d in self.dists.get(c, {}).items():
                if qid in self.index:
                    self.majority[ci, self.index[qid]] = d.majority

    @classmethod
    def load(cls, questions: str | Path, proportions: str | Path, countries: Sequence[str] | None = None) -> "Survey":
        items = load_items(questions)
        dists = load_distributions(proportions, items)
        return cls(items, list(countries) if countries is not None else list(dists), dists)

    def has_data(self, country: str) -> bool:
        return bool(self.dists.get(country))

    def row(self, country: str) -> int:
        return self.countries.index(country)

    def distribution(self, country: str, qid: str) -> np.ndarray | None:
        d = self.dists.get(country, {}).get(qid)
        return None if d is None else d.shares

    def similarity(self, a: str, b: str) -> float:
        """Reference similarity: the paper score between two countries' majority answers."""
        from .metrics import paper_score

        return paper_score(self.majority[self.row(a)], self.majority[self.row(b)], self.max_dist)
