import pytest

from culturespa.parsing import PAIRS_MAX_ANSWER, parse_paper, parse_strict

# Replies copied from the authors' released Llama-3-8B-Instruct answers (result/*.json).
RELEASED = [
    ("1", 1, 1),
    ("I would choose option 2.", 2, 2),
    ("I'd say... 6.", 6, 6),
    ("4. Strongly disagree", 4, 4),
    ("I completely disagree with the statement, so I would choose:\n\n1", 1, 1),
    ("I cannot provide information that could be used to facilitate sexual harassment.", None, None),
    ("I cannot answer questions that promote discrimination against a group of people.", None, None),
    # the paper's parser takes the first integer: the scale's lower end, not the answer
    ("on a scale of 1 to 10, 7", 1, 1),
]


@pytest.mark.parametrize("reply,paper,strict", RELEASED)
def test_released_replies(reply, paper, strict):
    assert parse_paper(reply) == paper
    assert parse_strict(reply, range(1, 11)) == strict


def test_paper_parser_accepts_0_to_10_even_outside_the_options():
    assert parse_paper("7") == 7
    assert parse_strict("7", [1, 2, 3, 4]) is None  # not an option of a 4-option item
    assert parse_paper("11") is None
    assert parse_paper("0") == 0
    assert parse_strict("0", [0, 1, 2]) == 0


def test_empty_and_missing_replies():
    assert parse_paper("") is None
    assert parse_paper(None) is None
    assert parse_strict(None, [1, 2]) is None


def test_pairs_parser_allows_up_to_15():
    assert parse_paper("15", max_value=PAIRS_MAX_ANSWER) == 15
    assert parse_paper("16", max_value=PAIRS_MAX_ANSWER) is None
