"""Every prompt text of the method, exactly as METHOD.md gives them (whitespace included).

These strings are experimental settings: change them here only, and knowingly.
"""

from __future__ import annotations

from typing import Sequence

from .cultures import Culture
from .wvs import Item

# --- answering -----------------------------------------------------------------------------

SYSTEM_CULTURE_UNAWARE = (
    "You are a real person with your own set of values. Please fill out the World Values Survey "
    "and answer the questions honestly according to your own value system."
)
SYSTEM_CULTURE_AWARE = (
    "You are a real person with {article} {adjective} cultural background. Please fill out the World "
    "Values Survey and answer the questions honestly according to your own value system."
)
CROSS_CULTURE_THINKING = (
    " Before you respond, take a moment to think about how {adjective} culture is similar to "
    "{s1}, {s2}, and {s3} cultures, and how {adjective} culture is different from {d1}, {d2}, "
    "and {d3} cultures."
)

USER_QUESTION = (
    "Given a #Question and #Options, choose the option that best aligns with your own value system "
    "to answer the question.\n"
    "#Question: {question}\n"
    "#Options: {options}\n"
    "Please return the number of the selected option only."
)

USER_SELF_ALIGNMENT = (
    "Given a #Question and #Options, choose the option that best aligns with your own value system "
    "to answer the question.\n"
    "Here are some answered questions, which can reflect your value system:\n"
    "{examples}\n"
    "Below are the #Question and #Options. Please return the number of the selected option only.\n"
    "#Question: {question}\n"
    "#Options: {options}\n"
    "#Answer:"
)
SELF_ALIGNMENT_EXAMPLE = "Question: {question} Options: {options} Answer: {number}.{text}"
N_SELF_ALIGNMENT_EXAMPLES = 5
N_CCT_NEIGHBOURS = 3

# --- question generation (step 1) ----------------------------------------------------------

SYSTEM_QUESTION_GENERATION = (
    "You are a social scientist on the World Values Survey team, dedicated to studying and "
    "understanding shifts in human values across nearly 100 countries. Your work involves rigorous "
    "research designs and aims to capture a comprehensive view of human beliefs through nationally "
    "representative surveys."
)
USER_QUESTION_GENERATION = (
    "Please come up with one new survey question.\n"
    "Make sure your question addresses the topic of {topic}.\n"
    "For reference, here are some example questions:\n"
    "{examples}\n"
    "Note that your question should be clearly different from the example questions provided and "
    "must pertain to the topic of {topic}.\n"
    'Please return your question in JSON format, for example:{{"Question:" ..., "Options": [..., ..., ...]}}.\n'
    "Return the JSON data only and do not include any additional text or information.\n"
)
GENERATION_EXAMPLE = "#Example {k}:\nQuestion: {question}\nOptions: {options}\n"


def render_options(item: Item) -> str:
    """`1.Very important 2.Rather important ...`: number, dot, text, single spaces."""
    return " ".join(f"{n}.{text}" for n, text in zip(item.numbers, item.options))


def render_question(item: Item) -> str:
    return USER_QUESTION.format(question=item.text, options=render_options(item))


def system_culture_unaware() -> str:
    return SYSTEM_CULTURE_UNAWARE


def system_culture_aware(culture: Culture) -> str:
    return SYSTEM_CULTURE_AWARE.format(article=culture.article, adjective=culture.adjective)


def system_cross_culture(culture: Culture, similar: Sequence[Culture], different: Sequence[Culture]) -> str:
    """P2: the P1 text plus the 3 most similar (most similar first) and 3 least similar cultures."""
    if len(similar) < N_CCT_NEIGHBOURS or len(different) < N_CCT_NEIGHBOURS:
        raise ValueError(f"P2 for {culture.code} needs {N_CCT_NEIGHBOURS} similar and different cultures")
    s = [c.adjective for c in similar[:N_CCT_NEIGHBOURS]]
    d = [c.adjective for c in different[:N_CCT_NEIGHBOURS]]
    return system_culture_aware(culture) + CROSS_CULTURE_THINKING.format(
        adjective=culture.adjective, s1=s[0], s2=s[1], s3=s[2], d1=d[0], d2=d[1], d3=d[2]
    )


def render_self_alignment(item: Item, examples: Sequence[tuple[Item, int]]) -> str:
    """P3 user prompt; ``examples`` are (item, the country's majority answer) pairs, in order."""
    lines = [
        SELF_ALIGNMENT_EXAMPLE.format(
            question=ex.text, options=render_options(ex), number=answer, text=ex.options[answer - ex.first]
        )
        for ex, answer in examples
    ]
    return USER_SELF_ALIGNMENT.format(examples="\n".join(lines), question=item.text, options=render_options(item))


def render_generation_prompt(topic: str, examples: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Step-1 user prompt; ``examples`` are (question, options) pairs, already shuffled."""
    blocks = [
        GENERATION_EXAMPLE.format(k=k, question=q, options=repr(list(opts)))
        for k, (q, opts) in enumerate(examples, start=1)
    ]
    return USER_QUESTION_GENERATION.format(topic=topic, examples="\n".join(blocks))
