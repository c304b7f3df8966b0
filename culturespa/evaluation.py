"""Step 5: a model (base, or with an adapter) answers the WVS items as one persona with one method.

One job per (model, variant, run, method, persona): ``persona`` is a country code, or ``none`` for a
persona-free method (culture-unaware) asked once. A culture-specific variant is evaluated per
country with that country's adapter only.
"""

from __future__ import annotations

import logging
import random
from typing import Mapping, Sequence

from . import io, methods
from .answering import AnswerSettings, engine_prompts, load_engine
from .cultures import Culture
from .methods import NO_PERSONA
from .orders import ORIGINAL, map_records
from .seeds import persona_seed, run_seed
from .untrained import evaluation_reason, not_answered
from .models import ModelSpec
from .survey import Survey
from .wvs import Item

log = logging.getLogger(__name__)



def evaluation_items(survey: Survey, max_items: int | None, seed: int = 0) -> list[Item]:
    """All evaluation items, or a seeded sample of ``max_items`` of them (in survey order)."""
    if not max_items or max_items >= len(survey.items):
        return list(survey.items)
    keep = set(random.Random(seed).sample(range(len(survey.items)), max_items))
    return [it for i, it in enumerate(survey.items) if i in keep]


def evaluate_persona(
    model: ModelSpec | Mapping,
    settings: AnswerSettings,
    method: str,
    persona: str,
    runs: int,
    survey_files: tuple[str, str],
    examples_file: str,
    cultures: Sequence[Mapping],
    out_path: str,
    max_items: int | None = None,
    adapter: str | None = None,
    order: str = ORIGINAL,
    order_seed: int = 0,
    similarity_file: str | None = None,
) -> list[dict]:
    """The WVS answers of one persona (a country code, or ``none``) with ``method``, the options
    listed in ``order`` (``orders``), for each of ``runs`` evaluation runs, written to ``out_path``
    as JSONL records {persona, method, order, run, key, choice, probs, option_mass, reply,
    displayed_choice, position}; ``choice`` and ``probs`` refer to the original options.

    Runs differ by their seed only. In logprob mode they share one forward pass (the option
    probabilities do not depend on the seed) and each run draws its own answers from them; in
    generate mode each run samples its replies. ``survey_files``: the WVS questions and
    per-country answer shares; ``examples_file``: the self-alignment example order; ``cultures``:
    catalogue records of the persona and of every culture its prompt may name (P2 neighbours);
    ``adapter``: a LoRA adapter folder merged into the model first; ``similarity_file``: the
    country similarity table (P2's neighbours). Run r is seeded ``seeds.run_seed`` then
    ``seeds.persona_seed`` (its draws independent of, or shared with, the other personas')."""
    from .engine import answer_journaled, draw_choice

    survey = Survey.load(*survey_files)
    example_order = io.read_json(examples_file)
    items = evaluation_items(survey, max_items)
    catalogue = [Culture(**c) for c in cultures]
    culture = None if persona == NO_PERSONA else next(c for c in catalogue if c.code == persona)
    similarity = methods.load_similarity(similarity_file) if similarity_file else None
    chat = methods.build_prompts(method, items, culture, survey, catalogue, example_order, order=order,
                                 order_seed=order_seed, similarity=similarity)
    prompts = engine_prompts(chat)
    cell = {"persona": persona, "method": method}
    why = evaluation_reason(adapter) if adapter else None
    if why:  # the adapter had nothing to train on: no model is loaded, every answer says why
        log.warning("%s/%s: %s: its %d answers per run are recorded as not answered", method, persona, why, len(chat))
        rows = [{**cell, "order": order, "run": run, **rec}
                for run in range(runs) for rec in not_answered([p.key for p in chat], why)]
        io.write_jsonl(out_path, rows)
        return rows
    engine = load_engine(model, settings, adapter)
    seed_of = lambda run: persona_seed(run_seed(settings.seed, run), settings.draws, method, persona)  # noqa: E731
    rows: list[dict] = []
    journals = []  # one per answering pass (``<out>.run<r>.partial``), kept until the output is written
    if settings.mode == "logprob":
        first, journal = answer_journaled(engine, prompts, f"{out_path}.run0", mode="logprob",
                                          seed=seed_of(0))
        journals.append(journal)
        for run in range(runs):
            seed = seed_of(run)
            drawn = first if run == 0 or settings.choice == "argmax" else [
                {**rec, "choice": draw_choice(p.options, rec["probs"], seed, p.key, engine.choice_temperature)}
                for p, rec in zip(prompts, first)]
            rows += [{**cell, "run": run, **rec} for rec in map_records(drawn, chat, engine, seed)]
    else:
        for run in range(runs):
            seed = seed_of(run)
            records, journal = answer_journaled(engine, prompts, f"{out_path}.run{run}", mode="generate", seed=seed)
            journals.append(journal)
            rows += [{**cell, "run": run, **rec} for rec in map_records(records, chat, engine, seed)]
    io.write_jsonl(out_path, rows)
    for journal in journals:
        journal.remove()
    return rows
