"""Prompting methods: which system and user prompt each method gives an item, for a culture.

The method ids are used in file names and tables; ``LABELS`` gives the paper's names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

from . import orders, prompts
from .cultures import Culture
from .seeds import NO_PERSONA  # noqa: F401  (re-exported: the persona of persona-free answers)
from .errors import ConfigError, DataFileError
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
CROSS_CULTURE = {P2, P2_P3}  # need the neighbours from country_similarity.json

# the cultures of data/country_similarity.json (pinned by its sha256): P2's neighbours are chosen among
# them, whatever the run's countries (a culture absent from the file gets computed similarities to them)
SIMILARITY_COUNTRIES = ("USA", "CAN", "BOL", "BRA", "GBR", "NLD", "DEU", "UKR", "CHN", "RUS", "IND", "THA",
                        "KEN", "NGA", "ETH", "ZWE", "AUS", "NZL")

log = logging.getLogger(__name__)


def uses_neighbours(method: str) -> bool:
    """Whether ``method``'s prompt names similar and different cultures (cross-culture thinking)."""
    return method in CROSS_CULTURE


def p2_candidates(catalogue) -> list[str]:
    """The culture codes P2's neighbours are chosen from (``neighbours``), those the catalogue defines."""
    return [c for c in SIMILARITY_COUNTRIES if c in catalogue]


@dataclass(frozen=True)
class ChatPrompt:
    key: str
    system: str
    user: str
    options: tuple[int, ...]  # the displayed option numbers (the labels asked for)
    mapping: orders.OptionOrder | None = None  # displayed -> original options (orders.map_records)


def load_similarity(path) -> dict[str, dict[str, float]]:
    """``data/country_similarity.json``: culture code -> {other code: similarity 0-100}, in file order."""
    from .io import read_json

    table = read_json(path)
    if not isinstance(table, dict) or not all(isinstance(row, dict) for row in table.values()):
        raise DataFileError(f"{path}: expected {{code: {{code: similarity}}}}")
    return table


def similarity_row(culture: str, similarity: Mapping[str, Mapping[str, float]], survey: Survey | None) -> dict[str, float]:
    """The culture's row of the similarity file; for a culture absent from the file (a user-added
    one), the same score computed from the survey's majority answers against every culture of the
    file, rounded as the file is (one decimal), in the file's order."""
    if culture in similarity:
        return dict(similarity[culture])
    if survey is None or not survey.has_data(culture):
        raise DataFileError(
            f"cross-culture thinking for {culture}: not in country_similarity.json and no survey answers "
            "to compute its similarities from"
        )
    row = {other: round(survey.similarity(culture, other), 1) for other in similarity if survey.has_data(other)}
    log.info(
        "cross-culture thinking for %s: not in country_similarity.json; similarities computed from the "
        "survey's majority answers (paper score, one decimal): %s", culture, row,
    )
    return row


def neighbours(
    culture: str,
    similarity: Mapping[str, Mapping[str, float]],
    cultures: Mapping[str, Culture],
    survey: Survey | None = None,
    n: int = prompts.N_CCT_NEIGHBOURS,
) -> tuple[list[Culture], list[Culture]]:
    """The n most similar cultures (most similar first) and the n least similar (least similar
    first), by the authors' rule (``utils.cross_culture``): the culture's row of
    ``country_similarity.json`` sorted ascending by value with a stable sort (ties keep the file's
    order); the first n are the different cultures, the last n in reverse order the similar ones.
    Candidates are every culture of the file, whatever the run's ``countries``; ``cultures`` (the
    config's catalogue) gives their adjectives."""
    row = similarity_row(culture, similarity, survey)
    ranked = [code for code, _ in sorted(row.items(), key=lambda kv: kv[1])]
    if len(ranked) < 2 * n:
        raise DataFileError(f"cross-culture thinking for {culture} needs {2 * n} other cultures, found {len(ranked)}")
    missing = [code for code in ranked[:n] + ranked[-n:] if code not in cultures]
    if missing:
        raise ConfigError(
            f"config key 'cultures': cross-culture thinking for {culture} names {', '.join(missing)} "
            "(from country_similarity.json), which the catalogue does not define"
        )
    return [cultures[c] for c in reversed(ranked[-n:])], [cultures[c] for c in ranked[:n]]


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
    similarity: Mapping[str, Mapping[str, float]] | None = None,
) -> list[ChatPrompt]:
    """One chat prompt per item for ``method`` and ``culture`` (None for culture-unaware), with
    the options listed in ``order`` (``orders``; self-alignment examples listed the same way).
    P2 and P2+P3 need ``similarity`` (``load_similarity``) and the ``catalogue``."""
    if method not in LABELS:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if method not in PERSONA_FREE and culture is None:
        raise ValueError(f"method {method} needs a culture")
    if method in CROSS_CULTURE and similarity is None:
        raise ValueError(f"method {method} needs country_similarity.json (similarity)")
    cct = None
    if method in CROSS_CULTURE:
        cct = neighbours(culture.code, similarity, {c.code: c for c in catalogue}, survey)
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


def training_system_prompts(setting: str, cultures: Sequence[Mapping], survey_files=None, similarity_file=None):
    """culture code -> the system prompt a training example of that culture gets: P1 for pairs
    collected culture-aware, P2 (with the culture's neighbours, ``neighbours``) for the CCT
    variant's pairs."""
    catalogue = {c["code"]: Culture(**c) for c in cultures}
    if setting != P2:
        return lambda code: system_prompt(setting, catalogue[code])
    survey = Survey.load(*survey_files) if survey_files else None
    similarity = load_similarity(similarity_file)
    return lambda code: system_prompt(setting, catalogue[code], neighbours(code, similarity, catalogue, survey))
