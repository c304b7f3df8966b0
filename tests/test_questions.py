"""Step 1 generation loop: reply parsing, example sampling, rounds, retries, the bound."""

from __future__ import annotations

import json
import random

import pytest

from culturespa import questions as gq
from culturespa.errors import ConfigError, CultureSPAError
from culturespa.prompts import SYSTEM_QUESTION_GENERATION
from culturespa.wvs import TOPIC_NAMES, Item

# --- parse_generated ------------------------------------------------------------------------

GOOD = {"Question": "How often do you pray?", "Options": ["Often", "Sometimes", "Never"]}


@pytest.mark.parametrize(
    "reply",
    [
        json.dumps(GOOD),
        json.dumps({"question": GOOD["Question"], "options": GOOD["Options"]}),
        "```json\n" + json.dumps(GOOD, indent=2) + "\n```",
        "Here is a new survey question:\n" + json.dumps(GOOD) + "\nI hope this helps!",
        "{not json} then " + json.dumps(GOOD),  # the first object that decodes
        json.dumps([GOOD]),  # an object inside other text, here a list
    ],
)
def test_parse_generated_accepts_json_with_question_and_options(reply):
    assert gq.parse_generated(reply) == (GOOD["Question"], GOOD["Options"])


def test_strict_parsing_takes_the_whole_reply_as_json_like_the_authors():
    assert gq.parse_generated(" " + json.dumps(GOOD) + "\n", strict=True) == (GOOD["Question"], GOOD["Options"])
    for reply in ["```json\n" + json.dumps(GOOD) + "\n```", "Here it is: " + json.dumps(GOOD), json.dumps([GOOD])]:
        assert gq.parse_generated(reply) is not None and gq.parse_generated(reply, strict=True) is None


def test_parse_generated_prefers_capitalised_keys_like_the_authors():
    reply = json.dumps({"question": "lower?", "Question": "Upper?", "Options": ["a", "b"]})
    assert gq.parse_generated(reply) == ("Upper?", ["a", "b"])


@pytest.mark.parametrize(
    "reply",
    [
        None,
        "",
        "How often do you pray? Options: Often, Sometimes, Never",  # prose only
        'Question: "How often?" Options: ["a", "b"]',  # fields outside a JSON object
        json.dumps({"Question:": "How often?", "Options": ["a", "b"]}),  # the prompt's typo key
        json.dumps({"Question": "How often?"}),  # missing options
        json.dumps({"Options": ["a", "b"]}),  # missing question
        json.dumps({"Question": "How often?", "Options": []}),  # empty options
        json.dumps({"Question": "How often?", "Options": "a, b"}),  # options not a list
        json.dumps({"Question": "How often?", "Options": [1, 2, 3]}),  # numbers, not strings
        json.dumps({"Question": "   ", "Options": ["a"]}),  # blank question
        json.dumps({"Question": ["How?"], "Options": ["a"]}),
        '{"Question": "How often?", "Options": ["a", "b"]',  # truncated at max_new_tokens
    ],
)
def test_parse_generated_rejects_everything_else(reply):
    assert gq.parse_generated(reply) is None


# --- sample_examples ------------------------------------------------------------------------

SEEDS = [(f"seed {i}?", ["Yes", "No"]) for i in range(8)]
GENERATED = [(f"gen {i}?", ["A", "B"]) for i in range(10)]


def test_sample_examples_five_seeds_while_nothing_is_generated():
    ex = gq.sample_examples(random.Random(0), SEEDS, [])
    assert len(ex) == 5 and all(q.startswith("seed") for q, _ in ex) and len(set(q for q, _ in ex)) == 5


def test_sample_examples_three_seeds_and_two_generated_then():
    for s in range(20):
        ex = gq.sample_examples(random.Random(s), SEEDS, GENERATED)
        kinds = [q.split()[0] for q, _ in ex]
        assert kinds.count("seed") == 3 and kinds.count("gen") == 2 and len(set(ex_q for ex_q, _ in ex)) == 5


def test_sample_examples_one_generated_means_four_seeds():
    ex = gq.sample_examples(random.Random(0), SEEDS, GENERATED[:1])
    assert sorted(q.split()[0] for q, _ in ex) == ["gen"] + ["seed"] * 4


def test_sample_examples_are_shuffled_and_seeded():
    orders = {tuple(q for q, _ in gq.sample_examples(random.Random(s), SEEDS, GENERATED)) for s in range(30)}
    positions = {next(i for i, q in enumerate(o) if q.startswith("gen")) for o in orders}
    assert len(positions) > 1  # generated examples are not always in the same place
    a = gq.sample_examples(random.Random(7), SEEDS, GENERATED)
    assert a == gq.sample_examples(random.Random(7), SEEDS, GENERATED)


def test_sample_examples_too_few_seeds_is_a_config_error():
    with pytest.raises(ConfigError):
        gq.sample_examples(random.Random(0), SEEDS[:2], [])


# --- generate_topic with a scripted model ---------------------------------------------------

TOPIC = 4  # Corruption
WVS = [Item(f"Q{112 + i}", f"Corruption seed {i}?", ("Yes", "No"), 1, TOPIC) for i in range(6)] + [
    Item("Q1", "How important is family?", ("Very", "Not"), 1, 0)  # another topic: never an example
]


class ScriptedModel:
    """Replies from a script of 'ok'/'bad' (cycled); records every call."""

    def __init__(self, script=("ok",)):
        self.script = list(script)
        self.calls: list[tuple[list, int]] = []
        self.n = 0

    def __call__(self, chats, seed):
        self.calls.append((chats, seed))
        replies = []
        for system, user in chats:
            kind = self.script[self.n % len(self.script)]
            self.n += 1
            # the reply depends on the prompt and the seed only, as a seeded model's would
            tag = f"{seed % 1000}-{sum(map(ord, user)) % 997}-{self.n}"
            replies.append(json.dumps({"Question": f"Q {tag}?", "Options": ["x", "y"]}) if kind == "ok" else "Sure!")
        return replies


def test_generate_topic_records_and_prompts():
    model = ScriptedModel()
    records, stats = gq.generate_topic(model, TOPIC, WVS, n_questions=7, seed=1, batch_size=3)
    assert [r["qid"] for r in records] == [f"T04-{k:05d}" for k in range(7)]
    assert {r["topic"] for r in records} == {TOPIC} and {r["topic_name"] for r in records} == {"Corruption"}
    assert stats.as_dict() == {
        "topic": TOPIC, "topic_name": "Corruption", "attempts": 7, "valid": 7, "invalid": 0, "resumed_from": 0,
    }  # fmt: skip
    assert [len(chats) for chats, _ in model.calls] == [3, 3, 1]  # rounds of batch_size
    system, first_prompt = model.calls[0][0][0]
    assert system == SYSTEM_QUESTION_GENERATION
    assert "addresses the topic of Corruption." in first_prompt and "family" not in first_prompt
    assert first_prompt.count("#Example") == 5 and first_prompt.count("Corruption seed") == 5
    # later rounds show 3 seeds + 2 questions of earlier rounds
    later = model.calls[1][0][0][1]
    assert later.count("Corruption seed") == 3 and later.count("Question: Q ") == 2
    assert all(r["prompt"] == p for r, (_, p) in zip(records, [c for chats, _ in model.calls for c in chats]))


def test_generate_topic_retries_discarded_replies():
    model = ScriptedModel(["ok", "bad", "bad"])
    records, stats = gq.generate_topic(model, TOPIC, WVS, n_questions=4, seed=3, batch_size=4, max_attempts=50)
    assert len(records) == 4
    assert (stats.attempts, stats.valid, stats.invalid) == (10, 4, 6)
    # each round asks only for what is still missing: ok bad bad ok | bad bad | ok bad | bad | ok
    assert [len(chats) for chats, _ in model.calls] == [4, 2, 2, 1, 1]


def test_generate_topic_is_deterministic_for_a_seed():
    a, _ = gq.generate_topic(ScriptedModel(["ok", "bad"]), TOPIC, WVS, 6, seed=11, batch_size=2)
    b, _ = gq.generate_topic(ScriptedModel(["ok", "bad"]), TOPIC, WVS, 6, seed=11, batch_size=2)
    c, _ = gq.generate_topic(ScriptedModel(["ok", "bad"]), TOPIC, WVS, 6, seed=12, batch_size=2)
    assert a == b
    assert [r["prompt"] for r in a] != [r["prompt"] for r in c]


def test_generate_topic_bound_reached_names_topic_and_counts():
    model = ScriptedModel(["ok", "bad", "bad", "bad"])
    with pytest.raises(gq.GenerationExhausted) as err:
        gq.generate_topic(model, TOPIC, WVS, n_questions=5, seed=0, batch_size=4, max_attempts=8)
    msg = str(err.value)
    assert "topic 4 (Corruption)" in msg
    assert "asked 8, valid 2, invalid 6" in msg and "only 2 of 5" in msg
    assert isinstance(err.value, CultureSPAError)
    assert len(err.value.records) == 2 and err.value.stats.attempts == 8


def test_generate_topic_default_bound_is_three_per_question():
    with pytest.raises(gq.GenerationExhausted, match="asked 6, valid 0, invalid 6"):
        gq.generate_topic(ScriptedModel(["bad"]), TOPIC, WVS, n_questions=2, seed=0, batch_size=8)


def test_generate_topic_resumes_from_existing_records():
    full, _ = gq.generate_topic(ScriptedModel(), TOPIC, WVS, 6, seed=5, batch_size=3)
    checkpoints = []
    first, _ = gq.generate_topic(
        ScriptedModel(), TOPIC, WVS, 3, seed=5, batch_size=3, on_round=lambda r, s: checkpoints.append(len(r))
    )
    assert checkpoints == [3] and first == full[:3]
    model = ScriptedModel()
    model.n = 3  # the scripted model's own counter, as if it had kept running
    rest, stats = gq.generate_topic(model, TOPIC, WVS, 6, seed=5, batch_size=3, existing=first)
    assert stats.resumed_from == 3 and stats.attempts == 3
    assert rest == full  # same prompts, same seeds, same records as the uninterrupted run


def test_generate_topic_rejects_wrong_reply_count_and_bad_topic():
    with pytest.raises(CultureSPAError, match="returned 0 replies for 2 prompts"):
        gq.generate_topic(lambda chats, seed: [], TOPIC, WVS, 2, seed=0, batch_size=2)
    with pytest.raises(ConfigError):
        gq.generate_topic(ScriptedModel(), len(TOPIC_NAMES), WVS, 2, seed=0)
    with pytest.raises(ConfigError, match="no WVS seed items"):
        gq.generate_topic(ScriptedModel(), 7, WVS, 2, seed=0)
