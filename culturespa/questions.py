"""Step 1: self-instruct generation of culture-related survey questions, per topic.

The model is asked for one new question of a topic at a time, shown five example questions
of that topic (METHOD.md, "Step 1"). A reply counts only if it is a JSON object with
``Question``/``question`` and ``Options``/``options``; other replies are discarded and the
model is asked again, up to a bound on the number of generations.

Prompts are generated in rounds of ``batch_size`` (the engine batches them); every prompt of
a round draws its examples from the seeds and from the questions generated in earlier
rounds, which is how the authors' one-at-a-time loop behaves with a batch of one.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from .errors import ConfigError, CultureSPAError
from .prompts import SYSTEM_QUESTION_GENERATION, render_generation_prompt
from .wvs import TOPIC_NAMES, Item

N_EXAMPLES = 5
N_GENERATED_EXAMPLES = 2  # once the topic has generated questions: 3 seeds + 2 generated
DEFAULT_ATTEMPTS_PER_QUESTION = 3  # default bound: 3 generations per wanted question

Example = tuple[str, Sequence[str]]  # (question, options)
Chat = tuple[str, str]  # (system, user)
GenerateTexts = Callable[[list[Chat], int], list[str]]  # (chats, seed) -> one reply per chat


# --- parsing a reply ------------------------------------------------------------------------


def _first_json_object(reply: str) -> dict | None:
    """The first JSON object in the text (tolerates prose around it and ``` fences)."""
    decoder = json.JSONDecoder()
    start = reply.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(reply, start)
        except json.JSONDecodeError:
            start = reply.find("{", start + 1)
            continue
        return obj if isinstance(obj, dict) else None
    return None


def _field(obj: Mapping, name: str):
    """``Name`` or ``name``, capitalised first as the authors' parser did."""
    if name.capitalize() in obj:
        return obj[name.capitalize()]
    return obj.get(name)


REPLY_PARSING = ("lenient", "strict")


def parse_generated(reply: str | None, strict: bool = False) -> tuple[str, list[str]] | None:
    """(question, options) from a model reply, or None when the reply does not count.

    Counts: the first JSON object of the reply has a non-blank string under
    ``Question``/``question`` and a non-empty list of strings under ``Options``/``options``.
    The object may sit in other text (prose, ``` fences, even a JSON list around it);
    ``strict``: the whole reply must be that JSON object, as the authors' ``json.loads(reply)``
    (``questions.reply_parsing: strict``). Not accepted (as the authors' ``json.loads`` + key
    lookup would not): the key ``"Question:"`` (the typo of the prompt's own example), fields
    outside a JSON object; nor numbers as options (the authors' filtering notebook joins the
    options as strings). Nothing is repaired or invented.
    """
    if not reply:
        return None
    if strict:
        try:
            obj = json.loads(reply)
        except json.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
    else:
        obj = _first_json_object(reply)
    if obj is None:
        return None
    question, options = _field(obj, "question"), _field(obj, "options")
    if not isinstance(question, str) or not question.strip():
        return None
    if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
        return None
    return question, list(options)


# --- examples and prompts -------------------------------------------------------------------


def topic_seeds(items: Sequence[Item], topic: int) -> list[Item]:
    """The WVS items of a topic: the seed questions of its generation."""
    seeds = [it for it in items if it.topic == topic]
    if not seeds:
        raise ConfigError(f"topic {topic}: no WVS seed items (pass the evaluation items of wvs.load_items)")
    return seeds


def sample_examples(rng: random.Random, seeds: Sequence[Example], generated: Sequence[Example]) -> list[Example]:
    """Five examples of one topic, shuffled: 5 seeds while nothing is generated, then 3 + 2.

    With a single generated question it is 4 seeds + 1 (the authors' sampler: as many
    generated ones as available up to 2, seeds for the rest).
    """
    n_gen = min(N_GENERATED_EXAMPLES, len(generated))
    n_seed = N_EXAMPLES - n_gen
    if len(seeds) < n_seed:
        raise ConfigError(f"{len(seeds)} seed questions, {n_seed} needed as examples")
    chosen = rng.sample(list(seeds), n_seed) + rng.sample(list(generated), n_gen)
    rng.shuffle(chosen)
    return chosen


def generation_chat(rng: random.Random, topic: int, seeds: Sequence[Example], generated: Sequence[Example]) -> Chat:
    prompt = render_generation_prompt(TOPIC_NAMES[topic], sample_examples(rng, seeds, generated))
    return SYSTEM_QUESTION_GENERATION, prompt


def question_id(topic: int, k: int) -> str:
    return f"T{topic:02d}-{k:05d}"


# --- the generation loop --------------------------------------------------------------------


@dataclass
class TopicStats:
    """Counts for one topic. With a resume ``state`` they cover every run of the topic together,
    so an interrupted and resumed topic reports what an uninterrupted one would."""

    topic: int
    topic_name: str
    attempts: int = 0  # generations asked
    valid: int = 0  # replies that parsed
    invalid: int = 0  # replies discarded (not JSON with Question/Options)
    resumed_from: int = 0  # questions already there when this run started
    retry: int = field(default=0, repr=False)  # rounds run at the current number of questions (resume state)

    def as_dict(self) -> dict:
        out = dict(vars(self))
        del out["retry"]
        return out

    def state(self) -> dict:
        """What a resumed run needs besides the records (see ``generate_topic``'s ``state``)."""
        return {"attempts": self.attempts, "valid": self.valid, "invalid": self.invalid, "retry": self.retry}


class GenerationExhausted(CultureSPAError):
    """The bound on generations was reached before enough questions parsed.

    ``records`` and ``stats`` hold what was generated, so a caller can save it and resume.
    """

    def __init__(self, message: str, records: list[dict], stats: TopicStats):
        super().__init__(message)
        self.records = records
        self.stats = stats


def _round_seeds(seed: int, topic: int, n_done: int, retry: int) -> tuple[random.Random, int]:
    """An example-sampling RNG and a generation seed for one round.

    Derived from the state (questions done, rounds already run at that count), not from a
    running counter, so a run resumed from saved records continues as the uninterrupted
    run would have.
    """
    sample_state, gen_seed = np.random.SeedSequence([seed, topic, n_done, retry]).generate_state(2)
    return random.Random(int(sample_state)), int(gen_seed)


def generate_topic(
    generate_texts: GenerateTexts,
    topic_index: int,
    seeds: Sequence[Item],
    n_questions: int,
    seed: int,
    batch_size: int = 64,
    max_attempts: int | None = None,
    existing: Sequence[dict] = (),
    on_round: Callable[[list[dict], TopicStats], None] | None = None,
    state: Mapping | None = None,
    strict: bool = False,
) -> tuple[list[dict], TopicStats]:
    """Generate questions of one topic until ``n_questions`` parsed.

    ``seeds``: WVS items (those of other topics are ignored). ``existing``: records of an
    earlier, interrupted run of this topic, continued from; ``state``: that run's
    ``TopicStats.state()`` saved with them, so the counts and the bound cover both runs and the
    resumed run asks exactly what the uninterrupted one would have. ``strict``: replies parse as
    the authors parse them (``parse_generated``). ``max_attempts``: bound on
    the generations of the topic (default: those so far plus 3 per missing question); reaching
    it raises GenerationExhausted naming the topic and the counts. ``on_round`` is called after
    each round with all records so far (for checkpointing). Deterministic for a given seed.
    """
    if not 0 <= topic_index < len(TOPIC_NAMES):
        raise ConfigError(f"topic index {topic_index} outside 0..{len(TOPIC_NAMES) - 1}")
    if batch_size < 1 or n_questions < 0:
        raise ConfigError(f"batch_size must be >= 1 and n_questions >= 0 (got {batch_size}, {n_questions})")
    seed_examples = [(it.text, list(it.options)) for it in topic_seeds(seeds, topic_index)]
    records = [dict(r) for r in existing]
    stats = TopicStats(topic_index, TOPIC_NAMES[topic_index], resumed_from=len(records))
    if state is not None:
        stats.attempts, stats.valid, stats.invalid, stats.retry = (
            int(state["attempts"]), int(state["valid"]), int(state["invalid"]), int(state["retry"]))
        if stats.valid != len(records):
            raise CultureSPAError(
                f"topic {topic_index}: the saved state counts {stats.valid} valid replies but "
                f"{len(records)} questions were saved; the checkpoint is inconsistent")
    limit = (max_attempts if max_attempts is not None
             else stats.attempts + DEFAULT_ATTEMPTS_PER_QUESTION * (n_questions - len(records)))
    while len(records) < n_questions:
        if stats.attempts >= limit:
            raise GenerationExhausted(_exhausted_message(stats, len(records), n_questions, limit), records, stats)
        n_before = len(records)
        n_ask = min(batch_size, n_questions - len(records), limit - stats.attempts)
        _run_round(generate_texts, topic_index, seed_examples, records, stats, n_ask, seed, stats.retry, strict)
        stats.retry = stats.retry + 1 if len(records) == n_before else 0
        if on_round is not None:
            on_round(records, stats)
    return records, stats


def _run_round(generate_texts, topic, seed_examples, records, stats, n_ask, seed, retry, strict=False):
    """Ask ``n_ask`` prompts in one batch; append the replies that parse to ``records``."""
    rng, gen_seed = _round_seeds(seed, topic, len(records), retry)
    generated = [(r["question"], r["options"]) for r in records]  # frozen for the round
    chats = [generation_chat(rng, topic, seed_examples, generated) for _ in range(n_ask)]
    replies = generate_texts(chats, gen_seed)
    if len(replies) != len(chats):
        raise CultureSPAError(f"topic {topic}: the model returned {len(replies)} replies for {len(chats)} prompts")
    stats.attempts += n_ask
    for (_, prompt), reply in zip(chats, replies):
        parsed = parse_generated(reply, strict)
        if parsed is None:
            stats.invalid += 1
            continue
        stats.valid += 1
        records.append(_record(topic, len(records), parsed, prompt))


def _record(topic: int, k: int, parsed: tuple[str, list[str]], prompt: str) -> dict:
    question, options = parsed
    return {
        "qid": question_id(topic, k),
        "topic": topic,
        "topic_name": TOPIC_NAMES[topic],
        "question": question,
        "options": options,
        "prompt": prompt,
        "question_source": "generated",
    }


def _exhausted_message(stats: TopicStats, n_have: int, n_wanted: int, limit: int) -> str:
    return (
        f"topic {stats.topic} ({stats.topic_name}): only {n_have} of {n_wanted} questions after "
        f"{stats.attempts} generations (max_attempts={limit}): asked {stats.attempts}, "
        f"valid {stats.valid}, invalid {stats.invalid}"
        + (f", {stats.resumed_from} from an earlier run" if stats.resumed_from else "")
        + "; raise max_attempts or check the model's replies (they must be JSON with Question and Options)"
    )


# --- the generation job (one topic, resumable) ---------------------------------------------------


def generation_function(model, settings: Mapping) -> GenerateTexts:
    """The model as step 1 asks it: (chats, seed) -> replies, sampled at the config's temperature
    and top_p. The model loads at the first call: a rerun with nothing left to ask loads none."""
    from .answering import AnswerSettings, load_engine
    from .engine import Prompt

    engine = None

    def generate(chats, seed):
        nonlocal engine
        if engine is None:
            engine = load_engine(model, AnswerSettings(batch_size=settings["batch_size"]))
        prompts = [Prompt(f"g{i}", system, user, []) for i, (system, user) in enumerate(chats)]
        return engine.generate_texts(prompts, settings["temperature"], settings["top_p"], settings["max_new_tokens"], seed)

    return generate


def generation_fingerprint(model, topic: int, settings: Mapping) -> str:
    """What decides the questions of a topic, in the order they come (per_topic and the attempt
    bound only decide when to stop, so a rerun with more of either continues the journal)."""
    import hashlib
    from pathlib import Path

    from .models import as_spec

    keys = ("batch_size", "temperature", "top_p", "max_new_tokens", "seed")
    spec = as_spec(model).as_dict()
    if Path(spec["path"]).exists():
        spec["path"] = str(Path(spec["path"]).resolve())
    blob = json.dumps({"model": spec, "topic": topic, **{k: settings.get(k) for k in keys}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def generate_topic_file(model, topic: int, wvs_questions: str, settings: Mapping, out_path: str, stats_path: str,
                        generate: GenerateTexts | None = None) -> list[dict]:
    """Self-instruct generation for one topic into ``out_path`` (JSONL) and its counts into
    ``stats_path``; resumable (``resume.Journal``, one entry per round: its new questions and the
    counts so far), so a killed job ends with the questions and counts of an uninterrupted one.
    ``settings``: the config's ``questions`` section."""
    import logging

    from . import io
    from .resume import Journal
    from .wvs import load_items

    log = logging.getLogger(__name__)
    journal = Journal(out_path, generation_fingerprint(model, topic, settings))
    existing = [r for entry in journal.entries for r in entry["records"]]
    state = journal.entries[-1]["state"] if journal.entries else None
    if journal.entries:
        log.info("resuming topic %d from %d questions in %s (%s)", topic, len(existing), journal.path, state)
    logged = len(existing)

    def checkpoint(records, stats):
        nonlocal logged
        journal.append({"records": records[logged:], "state": stats.state()})
        logged = len(records)
        log.info("topic %d: %d/%d questions (attempts %d, unparseable %d)", topic, len(records),
                 settings["per_topic"], stats.attempts, stats.invalid)

    try:
        records, stats = generate_topic(
            generate or generation_function(model, settings),
            topic,
            load_items(wvs_questions),
            settings["per_topic"],
            seed=settings["seed"],
            batch_size=settings["batch_size"],
            max_attempts=int(settings["max_attempts_factor"] * settings["per_topic"]),
            existing=existing,
            on_round=checkpoint,
            state=state,
        )
    except GenerationExhausted as e:
        raise GenerationExhausted(
            f"{e} (config: questions.max_attempts_factor={settings['max_attempts_factor']} x "
            f"questions.per_topic={settings['per_topic']}); the {len(e.records)} questions so far are kept in "
            f"{journal.path}: a rerun with a larger bound continues from them",
            e.records, e.stats,
        ) from None
    finally:
        journal.close()
    io.write_json(stats_path, stats.as_dict())
    io.write_jsonl(out_path, records)
    journal.remove()
    return records
