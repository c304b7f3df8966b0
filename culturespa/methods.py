"""Prompting methods: which system and user prompt each method gives an item, for a culture.

The method ids are used in file names and tables; ``LABELS`` gives the paper's names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from . import orders, prompts
from .cultures import Culture
from .survey import Survey
from .wvs import Item

CULTURE_UNAWARE = "culture_unaware"
P1 = "culture_aware"
P2 = "cross_culture"
P3 = "self_alignment"
P1_P3 = "culture_aware_self_alignment"
P2_P3 = "cross_culture_self_alignment"

LABELS = {
    CULTURE_UNAWARE: "Culture-unaware",
    P1: "Culture-aware (P1)",
    P2: "Cross-culture thinking (P2)",
    P3: "Self-alignment (P3)",
    P1_P3: "P1+P3",
    P2_P3: "P2+P3",
}
METHODS = list(LABELS)
PERSONA_FREE = {CULTURE_UNAWARE}  # answers do not depend on the country
NO_PERSONA = "none"  # the persona of persona-free answers, in file names and tables


# the cultures of data/country_similarity.json (pinned by its sha256): P2's neighbours of these
# cultures are chosen among them, whatever the run's countries
SIMILARITY_COUNTRIES = ("USA", "CAN", "BOL", "BRA", "GBR", "NLD", "DEU", "UKR", "CHN", "RUS", "IND", "THA",
                        "KEN", "NGA", "ETH", "ZWE", "AUS", "NZL")


def uses_neighbours(method: str) -> bool:
    """Whether ``method``'s prompt names similar and different cultures (cross-culture thinking)."""
    return method in (P2, P2_P3)


def p2_candidates(code: str, catalogue) -> list[str]:
    """The culture codes P2's neighbours of ``code`` are chosen from: the cultures of the
    similarity file for a culture in it, every catalogued culture for one that is not."""
    if code in SIMILARITY_COUNTRIES:
        return [c for c in SIMILARITY_COUNTRIES if c in catalogue]
    return list(catalogue)


@dataclass(frozen=True)
class ChatPrompt:
    key: str
    system: str
    user: str
    options: tuple[int, ...]  # the displayed option numbers (the labels asked for)
    mapping: orders.OptionOrder | None = None  # displayed -> original options (orders.map_records)


def neighbours(culture: str, candidates: Sequence[Culture], survey: Survey, n: int = prompts.N_CCT_NEIGHBOURS):
    """The n most similar (most similar first) and n least similar (least similar first) cultures,
    by the paper score between majority answers; ties keep catalogue order."""
    others = [c for c in candidates if c.code != culture and survey.has_data(c.code)]
    if len(others) < 2 * n:
        raise ValueError(f"cross-culture thinking for {culture} needs {2 * n} other cultures with survey data")
    sims = {c.code: survey.similarity(culture, c.code) for c in others}
    ranked = sorted(others, key=lambda c: -sims[c.code])
    return ranked[:n], sorted(others, key=lambda c: sims[c.code])[:n]


def self_alignment_examples(
    qid: str, country: str, order: Mapping[str, Sequence[str]], survey: Survey, items_by_id: Mapping[str, Item]
) -> list[tuple[Item, int]]:
    """The first 5 questions in ``order[qid]`` with a survey majority answer for ``country``."""
    majority = {q: d.majority for q, d in survey.dists.get(country, {}).items()}
    chosen = []
    for other in order.get(qid, []):
        if other != qid and other in majority and other in items_by_id:
            chosen.append((items_by_id[other], majority[other]))
            if len(chosen) == prompts.N_SELF_ALIGNMENT_EXAMPLES:
                break
    return chosen


def system_prompt(method: str, culture: Culture | None, cct_neighbours=None) -> str:
    if method in (CULTURE_UNAWARE, P3):
        return prompts.system_culture_unaware()
    if method in (P1, P1_P3):
        return prompts.system_culture_aware(culture)
    if method in (P2, P2_P3):
        similar, different = cct_neighbours
        return prompts.system_cross_culture(culture, similar, different)
    raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")


def build_prompts(
    method: str,
    items: Sequence[Item],
    culture: Culture | None,
    survey: Survey | None = None,
    catalogue: Sequence[Culture] = (),
    example_order: Mapping[str, Sequence[str]] | None = None,
    order: str = orders.ORIGINAL,
    order_seed: int = 0,
) -> list[ChatPrompt]:
    """One chat prompt per item for ``method`` and ``culture`` (None for culture-unaware), with
    the options listed in ``order`` (``orders``; self-alignment examples listed the same way)."""
    if method not in LABELS:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if method not in PERSONA_FREE and culture is None:
        raise ValueError(f"method {method} needs a culture")
    cct = neighbours(culture.code, catalogue, survey) if method in (P2, P2_P3) else None
    system = system_prompt(method, culture, cct)
    uses_examples = method in (P3, P1_P3, P2_P3)
    by_id = {it.qid: it for it in survey.items} if uses_examples else {}
    orders.check_order(order)
    out = []
    for item in items:
        mapping = orders.option_order(item, order, order_seed)
        shown = mapping.display(item)
        if uses_examples:
            examples = self_alignment_examples(item.qid, culture.code, example_order or {}, survey, by_id)
            user = prompts.render_self_alignment(shown, [_displayed_example(ex, answer, order, order_seed)
                                                         for ex, answer in examples])
        else:
            user = prompts.render_question(shown)
        out.append(ChatPrompt(item.qid, system, user, tuple(shown.numbers), mapping))
    return out


def _displayed_example(item: Item, answer: int, order: str, seed: int) -> tuple[Item, int]:
    """An answered example listed in ``order``, its answer given by the displayed number."""
    mapping = orders.option_order(item, order, seed)
    return mapping.display(item), mapping.displayed_number(answer)


def training_system_prompts(setting: str, cultures: Sequence[Mapping], survey_files=None):
    """culture code -> the system prompt a training example of that culture gets: P1 for pairs
    collected culture-aware, P2 (with the culture's neighbours) for the CCT variant's pairs."""
    catalogue = {c["code"]: Culture(**c) for c in cultures}
    if setting != P2:
        return lambda code: system_prompt(setting, catalogue[code])
    survey = Survey.load(*survey_files)
    candidates = list(catalogue.values())
    return lambda code: system_prompt(setting, catalogue[code], neighbours(code, candidates, survey))
