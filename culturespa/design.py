"""The paper's comparisons: which variant and method fill each figure and table.

Variant ids are ``{scope}-{data}-{setting}-{percent}`` (see rules/common.smk) or ``base``.
Figures and tables ask for these ids; a variant that was not run shows as missing.
"""

from __future__ import annotations

from .methods import CULTURE_UNAWARE, LABELS as METHOD_LABELS, P1, P1_P3, P2, P2_P3, P3  # noqa: F401

BASE = "base"
CULTURESPA = "joint-crqpc-culture_aware-100"
SPECIFIC = "specific-crqpc-culture_aware-100"
CCT = "joint-crqpc-cross_culture-100"
SAMPLING = {"CRQPC": CULTURESPA, "RDS": "joint-rds-culture_aware-100", "CDS": "joint-cds-culture_aware-100"}
FRACTIONS = tuple(range(10, 101, 10))
PAPER_SCORE = "paper_score"
AVG = "AVG"

# Table 1 / figure 1: prompting baselines on the base model, then CultureSPA answering with P1
MAIN_ROWS = [
    (BASE, CULTURE_UNAWARE),
    (BASE, P1),
    (BASE, P2),
    (BASE, P3),
    (CULTURESPA, P1),
]
# CultureSPA combined with the prompting methods, next to the same prompts on the base model
COMBINED_METHODS = [P1, P2, P3, P1_P3, P2_P3]
# culture-joint vs culture-specific vs cross-culture thinking (CCT) training data
TRAINING_VARIANTS = {"Culture-joint": CULTURESPA, "Culture-specific": SPECIFIC, "CCT (joint)": CCT}


def fraction_variant(percent: int, data: str = "crqpc", setting: str = "culture_aware") -> str:
    return f"joint-{data}-{setting}-{percent}"


def variant_label(variant: str) -> str:
    if variant == BASE:
        return "Base model"
    scope, data, setting, percent = variant.split("-")
    parts = [f"CultureSPA ({scope})", data.upper()]
    if setting != "culture_aware":
        parts.append("CCT" if setting == "cross_culture" else setting)
    if percent != "100":
        parts.append(f"{percent}% data")
    return ", ".join(parts)


SHORT_METHOD = {CULTURE_UNAWARE: "Unaware", P1: "P1", P2: "P2", P3: "P3", P1_P3: "P1+P3", P2_P3: "P2+P3"}


def short_label(variant: str, method: str) -> str:
    """'P1', 'CultureSPA+P1', 'RDS-joint+P1': for crowded axes."""
    m = SHORT_METHOD.get(method, method)
    if variant == BASE:
        return m
    scope, data, setting, percent = variant.split("-")
    name = "CultureSPA" if variant == CULTURESPA else "-".join(
        [data.upper(), scope] + (["CCT"] if setting == "cross_culture" else []) + ([f"{percent}%"] if percent != "100" else []))
    return f"{name}+{m}"


def row_label(variant: str, method: str) -> str:
    """'P1' on the base model is the prompting baseline; on a tuned model it names the prompt used."""
    method_label = METHOD_LABELS.get(method, method)
    return method_label if variant == BASE else f"{variant_label(variant)} + {method_label}"


# --- paired comparisons (issue 16): each a difference in the paper score with a paired CI -----------

# the paper's comparisons beyond "a tuned model vs the base model with the same prompt": joint vs
# specific vs CCT (same P1 prompt), CRQPC vs its controls
HEAD_TO_HEAD = [
    ((CULTURESPA, P1), (SPECIFIC, P1)),
    ((CULTURESPA, P1), (CCT, P1)),
    ((CULTURESPA, P1), (SAMPLING["RDS"], P1)),
    ((CULTURESPA, P1), (SAMPLING["CDS"], P1)),
]


def delta_metric(base_variant: str, base_method: str) -> str:
    """The metric name of a paired difference against (base_variant, base_method), in alignment.csv."""
    return f"paper_score_delta_vs_{base_variant}/{base_method}"


def comparisons(present) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """The paired comparisons among the (variant, method) cells ``present``: every tuned cell against
    the base model with the same prompt (CultureSPA vs P1, each training-data control, each data
    fraction, CultureSPA with P1+P3 vs P1+P3...), then ``HEAD_TO_HEAD``."""
    present = set(present)
    out = [((v, m), (BASE, m)) for v, m in sorted(present) if v != BASE and (BASE, m) in present]
    out += [(a, b) for a, b in HEAD_TO_HEAD if a in present and b in present]
    return out
