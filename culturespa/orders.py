"""Option orders: the same survey item with its options listed in another order.

An evaluation dimension beyond the paper (its prompts list the options in the survey's order
only). Orders (config ``evaluation.orders``):

* ``original``: the survey's order; the prompts are byte-identical to the paper's.
* ``reversed``: the last option first.
* ``permuted``: a random permutation per item, seeded from (``evaluation.order_seed``, qid), so an
  item is listed the same way in every run, country and method. With two options it is the
  original or the reversed order (each with probability 1/2).

The displayed options are numbered afresh in the new order, from the item's own first number
(an item numbered from 0 keeps 0-based numbers), so a prompt never shows a number out of its
sequence. Every answer is mapped back to the original option before scoring: records keep the
original-numbered ``choice`` and ``probs`` (the scoring code is order-blind), plus ``order``,
``displayed_choice`` (the number the model gave or was read at) and ``position`` (0-based place
of the answer in the listing, for position bias).

In the self-alignment prompts (P3, P1+P3, P2+P3) the five answered example questions are listed
in the same kind of order as the question (each reversed, or each permuted with its own seed),
with their answers given by the displayed number: the prompt stays self-consistent, and a model
that copies the examples' answer positions cannot look order-robust by doing so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from .engine import CHOICE_TEMPERATURE, derive_seed, draw_choice
from .errors import ConfigError
from .wvs import Item

ORIGINAL = "original"
REVERSED = "reversed"
PERMUTED = "permuted"
ORDERS = (ORIGINAL, REVERSED, PERMUTED)
MEAN = "mean"  # the ``order`` of rows averaged over the orders (the order-robust value)


@dataclass(frozen=True)
class OptionOrder:
    """How one item's options are listed: displayed position k shows original option ``perm[k]``
    (0-based indices). Displayed numbers run ``first, first + 1, ...`` in displayed order."""

    order: str
    first: int
    perm: tuple[int, ...]

    @property
    def n_options(self) -> int:
        return len(self.perm)

    @property
    def numbers(self) -> list[int]:
        """The option numbers of the item (displayed and original use the same set)."""
        return list(range(self.first, self.first + len(self.perm)))

    @property
    def identity(self) -> bool:
        return self.perm == tuple(range(len(self.perm)))

    def original_number(self, displayed: int) -> int:
        """The original option number behind a displayed number."""
        k = int(displayed) - self.first
        if not 0 <= k < len(self.perm):
            raise ValueError(f"{displayed} is not one of the displayed numbers {self.numbers}")
        return self.first + self.perm[k]

    def position(self, original: int) -> int:
        """0-based displayed position of an original option number."""
        j = int(original) - self.first
        if not 0 <= j < len(self.perm):
            raise ValueError(f"{original} is not one of the option numbers {self.numbers}")
        return self.perm.index(j)

    def displayed_number(self, original: int) -> int:
        return self.first + self.position(original)

    def to_original(self, displayed_values: Sequence[float]) -> list[float]:
        """Values over the displayed options (e.g. probabilities) reordered over the original options."""
        if len(displayed_values) != len(self.perm):
            raise ValueError(f"{len(displayed_values)} values for {len(self.perm)} options")
        out = [0.0] * len(self.perm)
        for k, j in enumerate(self.perm):
            out[j] = displayed_values[k]
        return out

    def display(self, item: Item) -> Item:
        """The item as shown: options in displayed order (numbers follow from ``item.first``)."""
        if item.n_options != len(self.perm) or item.first != self.first:
            raise ValueError(f"{item.qid}: this order is for {len(self.perm)} options from {self.first}")
        return replace(item, options=tuple(item.options[j] for j in self.perm))


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ConfigError(f"evaluation.orders: {order!r} is not one of {', '.join(ORDERS)}")
    return order


def option_order(item: Item, order: str, seed: int = 0) -> OptionOrder:
    """The listing of ``item`` in ``order``; ``seed`` (evaluation.order_seed) matters for
    ``permuted`` only."""
    k = item.n_options
    check_order(order)
    if order == ORIGINAL:
        perm = tuple(range(k))
    elif order == REVERSED:
        perm = tuple(range(k - 1, -1, -1))
    else:
        rng = np.random.default_rng(derive_seed(seed, "option_order", item.qid))
        perm = tuple(int(j) for j in rng.permutation(k))
    return OptionOrder(order, item.first, perm)


# --- answers ----------------------------------------------------------------------------------


def map_record(record: Mapping, mapping: OptionOrder, *, seed: int, choice: str = "sample",
               temperature: float = CHOICE_TEMPERATURE) -> dict:
    """An engine record (displayed numbering) with its answer mapped back to the original options.

    logprob mode (``probs`` present): ``probs`` are reordered over the original options and, unless
    the listing is the original one, ``choice`` is drawn again from them in the original option
    order with the engine's own draw (``seed``, the record's key, ``temperature``; or the argmax):
    the same random number decides the answer in every order, so a model whose distribution does
    not move with the order answers the same in every order (order consistency measures the model,
    not the sampling). generate mode: the parsed number is mapped back; a number the paper's parser
    accepts but that is not an option (e.g. 7 on a 1-4 scale) names no listed option and is kept
    as it is, as the paper's scoring keeps it in the original order; ``position`` is then None.
    """
    out = dict(record)
    shown = record.get("choice")
    probs = record.get("probs")
    numbers = mapping.numbers
    if probs is not None:
        original_probs = mapping.to_original(probs)
        out["probs"] = original_probs
        if mapping.identity:
            original = shown
        elif choice == "argmax":
            original = numbers[int(np.argmax(original_probs))]
        else:
            original = draw_choice(numbers, original_probs, seed, record["key"], temperature)
        out["reply"] = str(mapping.displayed_number(original))
    elif shown is not None and int(shown) in numbers:
        original = mapping.original_number(shown)
    else:
        original = shown
    listed = original is not None and int(original) in numbers
    out["choice"] = original
    out["displayed_choice"] = mapping.displayed_number(original) if listed else shown
    out["position"] = mapping.position(original) if listed else None
    out["order"] = mapping.order
    return out


def map_records(records: Sequence[Mapping], prompts: Sequence, engine, seed: int) -> list[dict]:
    """``map_record`` for every engine record, with the mapping of the chat prompt of the same key
    (``methods.build_prompts(..., order=...)``) and the engine's choice settings."""
    by_key = {p.key: p.mapping for p in prompts}
    out = []
    for rec in records:
        mapping = by_key.get(rec["key"])
        if mapping is None:
            raise ValueError(f"record {rec['key']!r} has no chat prompt with an option order")
        out.append(map_record(rec, mapping, seed=seed, choice=engine.choice, temperature=engine.choice_temperature))
    return out
