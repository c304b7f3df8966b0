"""Every table of the paper, one spec each: name, caption, builder, the named inputs of its rule,
the settings it takes from the config, and whether the authors' released answers can fill it.

The rules (rules/tables.smk) list each table's inputs by these names; ``tests/test_tables.py``
checks that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping

from ..errors import CultureSPAError
from ..registry import Spec, as_mapping
from . import ability, alignment, data, robustness, run_settings
from .formats import Table, write_all


@dataclass(frozen=True, kw_only=True)
class TableSpec(Spec):
    build: Callable[[Mapping, Mapping], Table]  # (named inputs, settings) -> Table


SPECS = [
    TableSpec(
        name="main_results",
        caption=(
            "Culture alignment of the base model with the prompting methods (culture-unaware, P1, P2, P3) and of "
            "CultureSPA answering with P1, per country and on average; reference rows: uniform random answers and "
            "one country's survey majority answers given for every country."
        ),
        build=alignment.main_results,
        inputs=("alignment",),
        settings=alignment.main_results_settings,
        released=True,
    ),
    TableSpec(
        name="combined_prompting",
        caption=(
            "CultureSPA combined with the prompting methods: each method on the base model and on CultureSPA "
            "(culture-joint), and the change."
        ),
        build=alignment.combined_prompting,
        inputs=("alignment",),
        settings=alignment.score_settings,
    ),
    TableSpec(
        name="joint_specific_cct",
        caption=(
            "Culture-joint vs culture-specific CultureSPA, and culture-joint training on pairs collected with "
            "cross-culture thinking (CCT, P2); every model answers with P1."
        ),
        build=alignment.joint_specific_cct,
        inputs=("alignment",),
        settings=alignment.score_settings,
    ),
    TableSpec(
        name="sampling_strategies",
        caption=(
            "Training data sampling: culture-related QA pairs (CRQPC) vs random (RDS) and culture-unrelated (CDS) "
            "samples of the same size per culture; culture-joint models answering with P1."
        ),
        build=alignment.sampling_strategies,
        inputs=("alignment",),
        settings=alignment.score_settings,
    ),
    TableSpec(
        name="alignment_by_continent",
        caption=(
            "Culture alignment per continent: the base model with each prompting method, and CultureSPA "
            "(culture-joint, culture-specific, CCT) and the sampling controls answering with P1, averaged over each "
            "continent's countries, with the paired differences."
        ),
        build=alignment.by_continent,
        inputs=("alignment",),
        settings=alignment.continent_settings,
    ),
    TableSpec(
        name="data_quantity",
        caption=(
            "Alignment of culture-joint CultureSPA trained on a growing share of the CRQPC pairs (answering with "
            "P1)."
        ),
        build=alignment.data_quantity,
        inputs=("alignment", "train_stats"),
        settings=alignment.score_settings,
    ),
    TableSpec(
        name="general_ability",
        caption=(
            "General ability: MMLU accuracy per category of the base model and of the fine-tuned models, and the "
            "change."
        ),
        build=ability.general_ability,
        inputs=("mmlu",),
        settings=ability.general_ability_settings,
    ),
    TableSpec(
        name="collected_pairs",
        caption=(
            "Culture-related QA pairs collected per culture: questions with a valid culture-unaware and "
            "culture-aware answer, how many of the two answers agree and differ, and the size of each pair set."
        ),
        build=data.collected_pairs,
        inputs=("pairs_stats",),
        settings=data.collected_pairs_settings,
    ),
    TableSpec(
        name="question_filtering",
        caption=(
            "Generated questions kept after each filter: the paper's four filters, then ours."
        ),
        build=data.question_filtering,
        inputs=("filter_counts",),
        settings=data.question_filtering_settings,
    ),
    TableSpec(
        name="topic_distribution",
        caption=(
            "Generated questions per WVS topic through the filters and in the final pool, and the culture-related "
            "QA pairs (CRQPC) collected per topic."
        ),
        build=data.topic_distribution,
        inputs=("topic_counts", "pool", "pair_topics"),
        settings=data.topic_distribution_settings,
    ),
    TableSpec(
        name="example_questions",
        caption=(
            "One generated question per WVS topic (the first of the topic in the final pool) with its options."
        ),
        build=data.example_questions,
        inputs=("pool",),
        settings=data.example_questions_settings,
    ),
    TableSpec(
        name="hyperparameters",
        caption=(
            "Settings of this run: fine-tuning, answering, question generation, pair collection, evaluation and "
            "scoring."
        ),
        build=run_settings.hyperparameters,
        inputs=(),
        settings=run_settings.hyperparameter_settings,
    ),
    TableSpec(
        name="prompt_templates",
        caption=(
            "Prompt templates of answering (per method) and of question generation; {name} marks a placeholder."
        ),
        build=run_settings.prompt_templates,
        inputs=("prompts",),
        settings=run_settings.prompt_templates_settings,
    ),
    TableSpec(
        name="alignment_by_topic",
        caption=(
            "Culture alignment per WVS topic, averaged over the countries: the base model culture-unaware and "
            "with P1, and CultureSPA answering with P1."
        ),
        build=alignment.alignment_by_topic,
        inputs=("by_topic",),
        settings=alignment.topic_settings,
        released=True,
    ),
    TableSpec(
        name="order_robustness",
        caption=robustness.CAPTIONS["order_robustness"],
        build=robustness.order_robustness_table,
        inputs=("alignment",),
        settings=robustness.order_settings,
        released=True,
    ),
    TableSpec(
        name="order_diagnostics",
        caption=robustness.CAPTIONS["order_diagnostics"],
        build=robustness.order_diagnostics_table,
        inputs=("alignment",),
        settings=robustness.order_settings,
        released=True,
    ),
]
REGISTRY: dict[str, TableSpec] = {s.name: s for s in SPECS}
TABLES = list(REGISTRY)
RELEASED_TABLES = [s.name for s in SPECS if s.released]


def spec(name: str) -> TableSpec:
    if name not in REGISTRY:
        raise CultureSPAError(f"unknown table {name!r} (known: {', '.join(TABLES)})")
    return REGISTRY[name]


def reading(*inputs: str) -> list[str]:
    """The tables whose inputs are exactly ``inputs`` (one rule renders them all)."""
    return [s.name for s in SPECS if s.inputs == inputs]


def settings(name: str, config: Mapping, **context) -> dict:
    """What table ``name`` takes from the config (its rule's params); ``context``: the rule's
    ``countries``, ``variants`` and ``source`` ('pipeline' or 'released')."""
    s = spec(name)
    if context.get("source") == "released" and not s.released:
        raise CultureSPAError(f"table {name!r} has no released version (only {', '.join(RELEASED_TABLES)})")
    return s.settings_for(config, **context)


def build(name: str, inputs, settings) -> Table:
    """Table ``name`` from its named inputs and settings, with its name and caption."""
    s = spec(name)
    table = s.build(as_mapping(inputs), as_mapping(settings))
    return replace(table, name=s.name, caption=s.caption)


def render(name: str, inputs, settings, outputs) -> Table:
    """Build table ``name`` and write outputs ``csv``, ``md`` and ``tex``."""
    table = build(name, inputs, settings)
    write_all(table, as_mapping(outputs))
    return table
