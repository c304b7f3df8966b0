"""Asking a model multiple-choice questions: the engine built from the config, and step 2.

``AnswerSettings`` is the config's ``answering`` section. ``output_keys`` names the keys that can
change an answer in a given mode: the rules pass only those as params, so that changing a key that
cannot change an answer (``compile``, ``batch_size`` in logprob mode) reruns no job; the others
reach the job through ``runtime`` keys read straight from the config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Mapping, Sequence

from . import io, methods
from .cultures import Culture
from .models import ModelSpec, as_spec
from .seeds import NO_PERSONA, persona_seed

log = logging.getLogger(__name__)

# keys that change answers in both modes, and those that change them only in generate mode
# (free-text sampling; batches are seeded as a whole, so the batch plan matters there)
_OUTPUT_KEYS = ("mode", "choice", "temperature", "draws", "seed")
_GENERATE_KEYS = ("top_p", "max_new_tokens", "batch_size")
# keys that change how fast answers come, not what they are (in logprob mode: up to rounding)
RUNTIME_KEYS = ("batch_size", "compile")


@dataclass(frozen=True)
class AnswerSettings:
    mode: str = "logprob"
    choice: str = "sample"
    temperature: float = 0.6
    top_p: float = 0.9
    max_new_tokens: int = 256
    batch_size: int | str = "auto"  # a number, or auto: from free GPU memory (engine.auto_batch_size)
    compile: str = "auto"
    draws: str = "independent"  # seeds.persona_seed
    seed: int = 42

    @classmethod
    def from_config(cls, *sections: Mapping) -> "AnswerSettings":
        """From the config's ``answering`` section (or from params plus runtime keys; later
        sections win)."""
        known = {f.name for f in fields(cls)}
        merged: dict = {}
        for section in sections:
            merged.update({k: v for k, v in dict(section or {}).items() if k in known})
        return cls(**merged)


def output_keys(answering: Mapping) -> dict:
    """The keys of the ``answering`` section that can change an answer, for the rules' params."""
    keys = _OUTPUT_KEYS + (_GENERATE_KEYS if answering.get("mode") == "generate" else ())
    return {k: answering[k] for k in keys if k in answering}


def runtime_keys(answering: Mapping) -> dict:
    return {k: answering[k] for k in RUNTIME_KEYS if k in answering}


def load_engine(model: ModelSpec | Mapping, settings: AnswerSettings, adapter: str | None = None):
    """The answering engine on ``model``, with a LoRA adapter merged in when given."""
    from .engine import Engine

    spec = as_spec(model)
    options = dict(
        batch_size=settings.batch_size,
        choice=settings.choice,
        choice_temperature=settings.temperature,  # logprob draws at the sampling temperature (the paper's 0.6)
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_new_tokens=settings.max_new_tokens,
        compile=settings.compile,
    )
    if adapter is None:
        net, tokenizer = spec.load()
        return Engine(net, tokenizer, name=spec.name, **options)
    from .finetune import load_for_inference

    net = load_for_inference(spec, adapter)
    return Engine(net, spec.load_tokenizer(), name=f"{spec.name}+{adapter}", **options)


def engine_prompts(chat: Sequence[methods.ChatPrompt]):
    from .engine import Prompt

    return [Prompt(p.key, p.system, p.user, list(p.options)) for p in chat]


def answer_pool(
    model: ModelSpec | Mapping,
    settings: AnswerSettings,
    pool_path: str,
    method: str,
    culture: Mapping | None,
    out_path: str,
    survey_files: tuple[str, str] | None = None,
    cultures: Sequence[Mapping] = (),
    similarity_file: str | None = None,
) -> None:
    """Step 2: every pooled question answered once, culture-unaware or as ``culture`` (P1, or P2,
    whose neighbours come from the similarity file, the candidate ``cultures`` and, for a culture
    absent from the file, the survey files), seeded per persona (``seeds.persona_seed``)."""
    from .engine import answer_to_file
    from .filters import to_items
    from .parsing import PAIRS_MAX_ANSWER
    from .survey import Survey

    survey = Survey.load(*survey_files) if survey_files else None
    items = to_items(io.read_jsonl(pool_path))
    this = Culture(**culture) if culture else None
    similarity = methods.load_similarity(similarity_file) if similarity_file else None
    chat = methods.build_prompts(method, items, this, survey, [Culture(**c) for c in cultures], similarity=similarity)
    seed = persona_seed(settings.seed, settings.draws, method, culture["code"] if culture else NO_PERSONA)
    answer_to_file(load_engine(model, settings), engine_prompts(chat), out_path, mode=settings.mode, seed=seed,
                   max_answer=PAIRS_MAX_ANSWER)
