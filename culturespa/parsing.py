"""Turning a model's free-text reply into an option number.

Two parsers: ``parse_paper`` is what the authors' evaluation did (the first integer in the
reply, accepted if within 0..max_value, even when it is not one of the item's options);
``parse_strict`` also requires the number to be one of the item's option numbers.
Both return None for an invalid reply; callers count those, never drop them silently.
"""

from __future__ import annotations

import re
from typing import Iterable

_FIRST_INT = re.compile(r"\d+")

PAPER_MAX_ANSWER = 10  # evaluation (METHOD.md, score section)
PAIRS_MAX_ANSWER = 15  # step 3: valid if 0-15


def first_integer(reply: str | None) -> int | None:
    if not reply:
        return None
    m = _FIRST_INT.search(reply)
    return int(m.group()) if m else None


def parse_paper(reply: str | None, max_value: int = PAPER_MAX_ANSWER) -> int | None:
    n = first_integer(reply)
    return n if n is not None and 0 <= n <= max_value else None


def parse_strict(reply: str | None, option_numbers: Iterable[int]) -> int | None:
    n = first_integer(reply)
    return n if n is not None and n in set(option_numbers) else None
