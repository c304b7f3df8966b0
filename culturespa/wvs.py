"""The World Values Survey wave 7 items and per-country answer distributions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .errors import DataFileError

# Topic name -> inclusive id ranges (METHOD.md, "Inputs"); Q234A sits in political participation.
TOPICS: list[tuple[str, list[tuple[int, int]]]] = [
    ("Social Values, Attitudes & Stereotypes", [(1, 45)]),
    ("Happiness and Well-being", [(46, 56)]),
    ("Social Capital, Trust & Organizational Membership", [(57, 105)]),
    ("Economic Values", [(106, 111)]),
    ("Corruption", [(112, 120)]),
    ("Migration", [(121, 130)]),
    ("Security", [(131, 151)]),
    ("Postmaterialist Index", [(152, 157)]),
    ("Science & Technology", [(158, 163)]),
    ("Religious Values", [(164, 175)]),
    ("Ethical Values and Norms", [(176, 198)]),
    ("Political Interest & Political Participation", [(199, 234)]),
    ("Political Culture & Political Regimes", [(235, 259)]),
]
TOPIC_NAMES = [name for name, _ in TOPICS]

ZERO_BASED_RANGES = [(94, 105), (119, 119), (122, 129), (241, 249)]
EXCLUDED_FROM_EVALUATION = {f"Q{i}" for i in range(260, 291)} | {"Q223"}

_QID = re.compile(r"Q(\d+)(A?)")


def qid_number(qid: str) -> int:
    m = _QID.fullmatch(qid)
    if not m:
        raise ValueError(f"not a WVS question id: {qid!r}")
    return int(m.group(1))


def _in_ranges(n: int, ranges) -> bool:
    return any(lo <= n <= hi for lo, hi in ranges)


def topic_index(qid: str) -> int:
    n = qid_number(qid)
    for i, (_, ranges) in enumerate(TOPICS):
        if _in_ranges(n, ranges):
            return i
    raise ValueError(f"{qid} belongs to no topic")


def is_zero_based(qid: str) -> bool:
    return _in_ranges(qid_number(qid), ZERO_BASED_RANGES)


@dataclass(frozen=True)
class Item:
    """One multiple-choice survey item (a WVS question or a generated one)."""

    qid: str
    text: str
    options: tuple[str, ...]
    first: int = 1  # number of the first option: 0 or 1
    topic: int | None = None

    @property
    def n_options(self) -> int:
        return len(self.options)

    @property
    def numbers(self) -> list[int]:
        return list(range(self.first, self.first + len(self.options)))

    @property
    def max_distance(self) -> int:
        return len(self.options) - 1


def load_items(path: str | Path, evaluation_only: bool = True) -> list[Item]:
    """WVS items from ``wvs_questions.json``; by default the 259 evaluation items."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataFileError(f"{path}: cannot read WVS questions: {e}") from e
    items = []
    for rec in raw:
        qid = rec["Q_id"]
        if evaluation_only and qid in EXCLUDED_FROM_EVALUATION:
            continue
        n = qid_number(qid)
        topic = topic_index(qid) if n <= 259 else None
        items.append(Item(qid, rec["question"], tuple(rec["option_lst"]), 0 if is_zero_based(qid) else 1, topic))
    return items


@dataclass(frozen=True)
class Distribution:
    """A country's answer shares for one item, renormalised over the item's options.

    ``missing`` is the share that fell on no option (don't know, no answer) before
    renormalisation; ``majority`` is the option with the largest raw share (first on ties,
    in the order of the released file, which is by share).
    """

    shares: np.ndarray  # over item.numbers, sums to 1
    missing: float
    majority: int


def load_distributions(path: str | Path, items: list[Item]) -> dict[str, dict[str, Distribution]]:
    """Per country, per qid: the survey distribution. Empty cells (no data) are skipped."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataFileError(f"{path}: cannot read answer proportions: {e}") from e
    by_qid = {it.qid: it for it in items}
    out: dict[str, dict[str, Distribution]] = {}
    for country, cells in raw.items():
        table = {}
        for qid, shares in cells.items():
            if not shares or qid not in by_qid:
                continue
            item = by_qid[qid]
            vec = np.zeros(item.n_options)
            for key, share in shares.items():
                k = int(key) - item.first
                if not 0 <= k < item.n_options:
                    raise DataFileError(f"{path}: {country} {qid} has option {key} outside {item.numbers}")
                vec[k] = share
            total = float(vec.sum())
            if total <= 0:
                continue
            majority = int(max(shares, key=shares.get))
            table[qid] = Distribution(vec / total, max(0.0, 1.0 - total), majority)
        out[country] = table
    return out


def majority_answers(dists: Mapping[str, Distribution]) -> dict[str, int]:
    return {qid: d.majority for qid, d in dists.items()}
