"""General ability: MMLU data, prompt format, scoring with the real SmolLM2, paired bootstrap."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from culturespa import mmlu
from culturespa.errors import ConfigError, CultureSPAError

from conftest import REPO, first_dir_with


def _find_mmlu() -> Path | None:
    return first_dir_with(
        (os.environ.get("CULTURESPA_MMLU"), REPO / "resources" / "mmlu", REPO.parent / "shared" / "benchmarks" / "mmlu"),
        "mmlu.zip",
        "mapping.json",
    )


@pytest.fixture(scope="module")
def mmlu_dir() -> Path:
    found = _find_mmlu()
    if found is None:
        pytest.skip("MMLU zip not found (set CULTURESPA_MMLU to the folder holding mmlu.zip and mapping.json)")
    return found


ONE_PER_CATEGORY = ["abstract_algebra", "high_school_geography", "philosophy", "nutrition"]


# --- data ---------------------------------------------------------------------------------------


def test_zip_and_mapping_agree(mmlu_dir):
    mapping = mmlu.load_mapping(mmlu_dir / "mapping.json")
    assert len(mapping) == 57 and set(mmlu.subjects_in_zip(mmlu_dir / "mmlu.zip")) == set(mapping)
    assert {v["category"] for v in mapping.values()} == set(mmlu.CATEGORIES)
    assert mapping["high_school_geography"] == {"name": "high school geography", "category": "Social Sciences"}


def test_read_split_keeps_text_options(mmlu_dir):
    qs = mmlu.read_split(mmlu_dir / "mmlu.zip", "college_mathematics", "test")
    assert len(qs) == 100 and all(q.answer in mmlu.LETTERS for q in qs)
    assert [q.index for q in qs] == list(range(100))
    assert qs[8].choices[0] == "None"  # an option reading "None" stays text, not a missing value
    assert all(isinstance(c, str) and c for q in qs for c in q.choices)
    dev = mmlu.read_split(mmlu_dir / "mmlu.zip", "college_mathematics", "dev")
    assert len(dev) == 5
    with pytest.raises(CultureSPAError, match="no data/test/astrology_test.csv"):
        mmlu.read_split(mmlu_dir / "mmlu.zip", "astrology", "test")


def test_subset_is_seeded_and_in_file_order(mmlu_dir):
    args = (mmlu_dir / "mmlu.zip", mmlu_dir / "mapping.json")
    a = mmlu.load(*args, subjects=ONE_PER_CATEGORY, max_per_subject=5, seed=1)
    b = mmlu.load(*args, subjects=ONE_PER_CATEGORY, max_per_subject=5, seed=1)
    c = mmlu.load(*args, subjects=ONE_PER_CATEGORY, max_per_subject=5, seed=2)
    assert [q.key for q in a.questions] == [q.key for q in b.questions]
    assert [q.key for q in a.questions] != [q.key for q in c.questions]
    assert len(a.questions) == 20 and set(a.dev) == set(ONE_PER_CATEGORY)
    for subject in ONE_PER_CATEGORY:
        idx = [q.index for q in a.questions if q.subject == subject]
        assert idx == sorted(idx) and len(idx) == 5
    # a subject's draw does not depend on the other subjects chosen
    alone = mmlu.load(*args, subjects=["philosophy"], max_per_subject=5, seed=1)
    assert [q.key for q in alone.questions] == [q.key for q in a.questions if q.subject == "philosophy"]
    with pytest.raises(ConfigError, match="unknown subjects"):
        mmlu.load(*args, subjects=["astrology"])


# --- prompt format ------------------------------------------------------------------------------

DEV = [
    mmlu.Question("toy", 0, "1+1=?", ("1", "2", "3", "4"), "B"),
    mmlu.Question("toy", 1, "2+2=?", ("4", "5", "6", "7"), "A"),
]
TARGET = mmlu.Question("toy", 0, "3+3=?", ("5", "6", "7", "8"), "B")


def test_few_shot_text_is_the_standard_format():
    text = mmlu.few_shot_text(TARGET, DEV, "toy arithmetic", k=2)
    assert text == (
        "The following are multiple choice questions (with answers) about toy arithmetic.\n\n"
        "1+1=?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
        "2+2=?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer: A\n\n"
        "3+3=?\nA. 5\nB. 6\nC. 7\nD. 8\nAnswer:"
    )
    assert mmlu.few_shot_text(TARGET, DEV, "toy arithmetic", k=0).endswith("about toy arithmetic.\n\n3+3=?\nA. 5\nB. 6\nC. 7\nD. 8\nAnswer:")


def test_llama_factory_format_and_random_shots():
    bench = mmlu.Benchmark([TARGET], {"toy": DEV}, {"toy": {"name": "toy arithmetic", "category": "STEM"}}, "test")
    # LLaMA-Factory's en eval template through its fewshot template: "Answer:" + letter, turns joined by "\n\n"
    assert mmlu.prompt_text(None, TARGET, bench, k=2, fmt="llama_factory") == (
        "The following are multiple choice questions (with answers) about toy arithmetic.\n\n"
        "1+1=?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:B\n\n"
        "2+2=?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer:A\n\n"
        "3+3=?\nA. 5\nB. 6\nC. 7\nD. 8\nAnswer:"
    )
    dev = [mmlu.Question("toy", i, f"{i}?", ("a", "b", "c", "d"), "A") for i in range(5)]
    assert mmlu.shots_for(TARGET, dev, 3) == dev[:3]
    orders = {tuple(d.index for d in mmlu.shots_for(mmlu.Question("toy", i, "?", ("a",) * 4, "A"), dev, 5, "random", 7))
              for i in range(30)}
    assert len(orders) > 10 and all(sorted(o) == list(range(5)) for o in orders)  # a permutation per question
    assert mmlu.shots_for(TARGET, dev, 5, "random", 7) == mmlu.shots_for(TARGET, dev, 5, "random", 7)  # seeded


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    from culturespa.models import load

    return load(smollm2_path, dtype="float32", device="cpu")


@pytest.mark.slow
def test_chat_prompt_and_letter_tokens(smollm2):
    _, tok = smollm2
    bench = mmlu.Benchmark([TARGET], {"toy": DEV}, {"toy": {"name": "toy arithmetic", "category": "STEM"}}, "test")
    chat = mmlu.prompt_text(tok, TARGET, bench, k=2, fmt="chat")
    plain = mmlu.prompt_text(tok, TARGET, bench, k=2, fmt="plain")
    assert chat.endswith("<|im_start|>assistant\n") and f"<|im_start|>user\n{plain}<|im_end|>" in chat
    ids = mmlu.letter_token_ids(tok)
    # SmolLM2 keeps both "A" and " A" as single tokens: both variants are scored
    assert all(len(v) == 2 for v in ids)
    assert [tok.decode([v[0]]) for v in ids] == list("ABCD")
    assert [tok.decode([v[1]]) for v in ids] == [" A", " B", " C", " D"]
    assert mmlu.letter_token_ids(tok, "bare") == [[v[0]] for v in ids]  # LLaMA-Factory's: the bare letter only


@pytest.mark.slow
def test_per_category_accuracy_on_a_tiny_subset(smollm2, mmlu_dir):
    model, tok = smollm2
    bench = mmlu.load(
        mmlu_dir / "mmlu.zip", mmlu_dir / "mapping.json", subjects=ONE_PER_CATEGORY, max_per_subject=2, seed=0
    )
    records = mmlu.evaluate(model, tok, bench, batch_size=4)
    assert len(records) == 8
    for r in records:
        assert r["pred"] in mmlu.LETTERS and r["gold"] in mmlu.LETTERS
        assert r["correct"] == (r["pred"] == r["gold"])
        assert np.all(np.isfinite(r["scores"])) and max(r["scores"]) <= 0
        assert r["category"] == bench.category(r["subject"])
    acc = mmlu.accuracy(records)
    assert acc["category"].tolist() == [*mmlu.CATEGORIES, mmlu.OVERALL]
    assert acc["n"].tolist() == [2, 2, 2, 2, 8]
    assert acc.iloc[-1]["accuracy"] == pytest.approx(np.mean([r["correct"] for r in records]))
    # the shared-prefix KV cache is an optimisation only: same scores as full prompts (on two of the
    # subjects: the 5-shot prompts without the cache are the slowest part of this test)
    two = dataclasses.replace(bench, questions=[q for q in bench.questions if q.subject in ONE_PER_CATEGORY[:2]])
    again = mmlu.evaluate(model, tok, two, batch_size=3, prefix_cache=False)
    cached = {(r["subject"], r["index"]): r for r in records}
    same = [cached[(r["subject"], r["index"])] for r in again]
    assert len(again) == 4
    assert [r["n_tokens"] for r in again] == [r["n_tokens"] for r in same]
    assert [r["pred"] for r in again] == [r["pred"] for r in same]
    np.testing.assert_allclose([r["scores"] for r in again], [r["scores"] for r in same], atol=2e-3)


# --- summaries and the paired bootstrap ---------------------------------------------------------


def _records(correct: list[bool], categories: list[str]) -> list[dict]:
    return [
        {"subject": f"s_{cat}", "index": i, "category": cat, "gold": "A", "pred": "A" if ok else "B", "correct": ok}
        for i, (ok, cat) in enumerate(zip(correct, categories))
    ]


def test_accuracy_by_category():
    recs = _records([True, False, True, True], ["STEM", "STEM", "Humanities", "Humanities"])
    acc = mmlu.accuracy(recs).set_index("category")
    assert acc.loc["STEM", "accuracy"] == 0.5 and acc.loc["Humanities", "accuracy"] == 1.0
    assert acc.loc["overall", "n"] == 4 and acc.loc["overall", "accuracy"] == 0.75
    assert list(acc.index) == ["STEM", "Humanities", "overall"]


def test_compare_paired_bootstrap():
    rng = np.random.default_rng(0)
    n = 200
    cats = ["STEM"] * 100 + ["Other"] * 100
    base = rng.random(n) < 0.5
    adapter = base.copy()
    flips = np.flatnonzero(~base)[:20]  # the adapter also gets 20 more right (10%), loses none
    adapter[flips] = True
    frame = mmlu.compare(_records(list(base), cats), _records(list(adapter), cats), model="smol", variant="joint",
                         n_boot=1000, seed=5)
    assert list(frame.columns) == mmlu.COMPARE_COLUMNS
    assert set(frame["metric"]) == {"accuracy_base", "accuracy", "delta"}
    overall = frame[(frame.category == "overall")].set_index("metric")
    assert overall.loc["delta", "value"] == pytest.approx(0.1)
    assert overall.loc["accuracy", "value"] - overall.loc["accuracy_base", "value"] == pytest.approx(0.1)
    assert (frame["ci_low"] <= frame["value"]).all() and (frame["value"] <= frame["ci_high"]).all()
    # paired: every per-question difference is >= 0, so the interval is tight and excludes 0,
    # although the two accuracies' own intervals overlap
    assert overall.loc["delta", "ci_low"] > 0
    assert overall.loc["accuracy", "ci_low"] < overall.loc["accuracy_base", "ci_high"]
    assert overall.loc["delta", "n"] == 200 and set(frame["model"]) == {"smol"}
    # seeded: the same call gives the same intervals
    again = mmlu.compare(_records(list(base), cats), _records(list(adapter), cats), model="smol", variant="joint",
                         n_boot=1000, seed=5)
    pd.testing.assert_frame_equal(frame, again)


def test_compare_identical_and_mismatched():
    recs = _records([True, False, True], ["STEM"] * 3)
    frame = mmlu.compare(recs, recs, n_boot=200)
    delta = frame[(frame.metric == "delta")]
    assert (delta[["value", "ci_low", "ci_high"]].to_numpy() == 0).all()
    with pytest.raises(CultureSPAError, match="same questions"):
        mmlu.compare(recs, recs[:2])
