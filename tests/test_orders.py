import hashlib
import json
import re

import numpy as np
import pytest

from culturespa import methods, orders, prompts
from culturespa.cultures import catalogue_from_config
from culturespa.engine import draw_choice
from culturespa.errors import ConfigError
from culturespa.orders import ORIGINAL, PERMUTED, REVERSED, map_record, option_order
from culturespa.wvs import Item

FOUR = Item("Q1", "How important?", ("Very", "Rather", "Not very", "Not at all"))
ZERO = Item("Q94", "Member?", ("Not a member", "Inactive member", "Active member"), first=0)
TWO = Item("Q2", "Yes or no?", ("Yes", "No"))


@pytest.fixture(scope="module")
def catalogue(paper_config):
    return catalogue_from_config(paper_config)


@pytest.fixture(scope="module")
def similarity(data_dir):
    return methods.load_similarity(data_dir / "data/country_similarity.json")


@pytest.fixture(scope="module")
def examples(data_dir):
    return json.loads((data_dir / "data/self_alignment_examples.json").read_text())


def test_reversed_and_permuted_listings():
    rev = option_order(FOUR, REVERSED)
    assert rev.perm == (3, 2, 1, 0)
    assert prompts.render_options(rev.display(FOUR)) == "1.Not at all 2.Not very 3.Rather 4.Very"
    assert rev.original_number(1) == 4 and rev.displayed_number(4) == 1 and rev.position(4) == 0
    zero = option_order(ZERO, REVERSED)
    assert prompts.render_options(zero.display(ZERO)) == "0.Active member 1.Inactive member 2.Not a member"
    assert zero.original_number(0) == 2 and zero.original_number(2) == 0
    assert option_order(FOUR, ORIGINAL).identity
    perm = option_order(FOUR, PERMUTED, seed=3)
    assert sorted(perm.perm) == [0, 1, 2, 3]
    assert perm == option_order(FOUR, PERMUTED, seed=3)  # seeded: the same listing every time
    with pytest.raises(ConfigError, match="evaluation.orders"):
        option_order(FOUR, "shuffled")


def test_permutations_depend_on_seed_and_item(survey):
    long = [it for it in survey.items if it.n_options >= 4]
    a = [option_order(it, PERMUTED, 0).perm for it in long]
    b = [option_order(it, PERMUTED, 1).perm for it in long]
    assert a != b
    assert len(set(a)) > 1  # not one permutation for every item
    # roughly uniform: the first listed option is the original first about 1/K of the time
    share = np.mean([p[0] == 0 for p in a])
    assert share < 0.5


@pytest.mark.parametrize("order", orders.ORDERS)
def test_mapping_back_is_the_identity_on_answers(survey, order):
    """Listing an answer in ``order`` and mapping the displayed number back gives the answer."""
    for item in [FOUR, ZERO, TWO, *survey.items]:
        mapping = option_order(item, order, seed=7)
        for answer in item.numbers:
            shown = mapping.displayed_number(answer)
            assert shown in item.numbers
            assert mapping.original_number(shown) == answer
            shown_item = mapping.display(item)
            assert shown_item.options[shown - item.first] == item.options[answer - item.first]  # same text
            rec = map_record({"key": item.qid, "choice": shown, "probs": None, "reply": str(shown)}, mapping, seed=0)
            assert rec["choice"] == answer and rec["displayed_choice"] == shown
            assert rec["position"] == shown - item.first and rec["order"] == order
        probs = list(np.random.default_rng(0).dirichlet(np.ones(item.n_options)))
        displayed = [probs[j] for j in mapping.perm]  # what the model gives the displayed labels
        assert mapping.to_original(displayed) == probs


def test_logprob_answers_share_the_random_draw_across_orders():
    """An order-invariant model (same distribution over the options, whatever the listing)
    answers the same in every order: the choice is drawn in the original option order."""
    rng = np.random.default_rng(0)
    for n in range(200):
        key = f"Q{n}"
        probs = list(rng.dirichlet(np.ones(4)))
        original = {"key": key, "choice": draw_choice(FOUR.numbers, probs, 5, key, 0.6), "probs": probs,
                    "reply": "", "mode": "logprob"}
        base = map_record(original, option_order(FOUR, ORIGINAL), seed=5)
        assert base["choice"] == original["choice"] and base["probs"] == probs  # original: untouched
        for order in (REVERSED, PERMUTED):
            mapping = option_order(Item(key, "", FOUR.options), order, seed=1)
            shown = [probs[j] for j in mapping.perm]
            engine_draw = draw_choice(FOUR.numbers, shown, 5, key, 0.6)  # what the engine read, displayed
            rec = map_record({**original, "probs": shown, "choice": engine_draw}, mapping, seed=5)
            assert rec["choice"] == original["choice"]
            assert rec["probs"] == pytest.approx(probs)
            assert rec["reply"] == str(rec["displayed_choice"]) == str(mapping.displayed_number(rec["choice"]))
        argmax = map_record({**original, "probs": probs[::-1]}, option_order(FOUR, REVERSED), seed=5, choice="argmax")
        assert argmax["choice"] == 1 + int(np.argmax(probs))


def test_generate_answers_outside_the_options_stay_as_parsed():
    rev = option_order(FOUR, REVERSED)
    for shown in (7, 0, None):
        rec = map_record({"key": "Q1", "choice": shown, "probs": None, "reply": str(shown)}, rev, seed=0)
        assert rec["choice"] == shown and rec["position"] is None and rec["displayed_choice"] == shown


def test_original_order_prompts_are_byte_identical_to_the_paper(survey, catalogue, examples, similarity):
    """The hash of every prompt (all methods, all 259 items, USA and NGA) as built before option
    orders existed (commit 90923aa); the default order must not change a byte."""
    h = hashlib.sha256()
    for method in methods.METHODS:
        for code in ("USA", "NGA"):
            culture = None if method == methods.CULTURE_UNAWARE else catalogue[code]
            built = methods.build_prompts(method, survey.items, culture, survey, list(catalogue.values()), examples,
                                          similarity=similarity)
            explicit = methods.build_prompts(method, survey.items, culture, survey, list(catalogue.values()),
                                             examples, order=ORIGINAL, order_seed=99, similarity=similarity)
            assert built == explicit
            for p in built:
                assert p.mapping.identity
                h.update(json.dumps([p.key, p.system, p.user, list(p.options)]).encode())
    assert h.hexdigest() == "82608477788497d4b0ff8dda062f500c55291e04993e87c50ecb9d5b6e6b4b03"


@pytest.mark.parametrize("order", [REVERSED, PERMUTED])
def test_every_method_lists_options_in_the_order(survey, catalogue, examples, similarity, order):
    items = survey.items[:12]
    usa = catalogue["USA"]
    for method in methods.METHODS:
        culture = None if method == methods.CULTURE_UNAWARE else usa
        plain = methods.build_prompts(method, items, culture, survey, list(catalogue.values()), examples,
                                      similarity=similarity)
        moved = methods.build_prompts(method, items, culture, survey, list(catalogue.values()), examples,
                                      order=order, order_seed=3, similarity=similarity)
        for item, p, q in zip(items, plain, moved):
            assert q.system == p.system and q.options == p.options == tuple(item.numbers)
            assert q.mapping == option_order(item, order, 3)
            shown = q.mapping.display(item)
            assert q.user.endswith(p.user[p.user.rindex("#Options: "):].replace(
                prompts.render_options(item), prompts.render_options(shown)))


def test_self_alignment_examples_follow_the_order_with_answers_remapped(survey, catalogue, examples):
    """P3 in reversed order: each example lists its options reversed and answers with the
    displayed number of the same option text (the survey majority)."""
    usa = catalogue["USA"]
    item = survey.items[0]
    by_id = {it.qid: it for it in survey.items}
    chosen = methods.self_alignment_examples(item.qid, "USA", examples, survey, by_id)
    p = methods.build_prompts(methods.P3, [item], usa, survey, list(catalogue.values()), examples, order=REVERSED)[0]
    lines = [line for line in p.user.split("\n") if line.startswith("Question: ")]
    assert len(lines) == len(chosen) == prompts.N_SELF_ALIGNMENT_EXAMPLES
    for line, (ex, answer) in zip(lines, chosen):
        rev = option_order(ex, REVERSED)
        assert f"Options: {prompts.render_options(rev.display(ex))} " in line
        number, text = re.search(r"Answer: (\d+)\.(.*)$", line).groups()
        assert int(number) == rev.displayed_number(answer)
        assert text == ex.options[answer - ex.first]  # the same option, by its text


# --- the real model: SmolLM2 answering in both orders -----------------------------------------


@pytest.mark.slow
def test_smollm2_answers_in_both_orders_map_back_to_the_original_options(smollm2_path, survey, catalogue, examples):
    """SmolLM2-135M (float32) answers WVS items as an American (P1) with the options in original
    and reversed order, in logprob mode. The mapped-back record holds, over the ORIGINAL options, the
    distribution the model gave the displayed labels: the probability of original option j is the
    probability of the label it was displayed under; choice, displayed choice and position agree;
    and the order-robustness rows come out of these records."""
    import pandas as pd

    from culturespa.engine import Engine, Prompt
    from culturespa.models import load
    from culturespa.robustness import CONSISTENCY, FIRST_SHARE, order_scores
    from culturespa.scoring import ScoringSettings
    from culturespa.survey import Survey

    model, tok = load(smollm2_path, dtype="float32", device="cpu")
    engine = Engine(model, tok, batch_size=4, name="smollm2")
    # 1-4, yes/no, 1-10 and zero-based items
    wanted = ["Q1", "Q46", "Q57", "Q48", "Q94", "Q122"]
    items = [it for it in survey.items if it.qid in wanted]
    assert len(items) == len(wanted)
    frames = []
    for order in (ORIGINAL, REVERSED):
        chat = methods.build_prompts(methods.P1, items, catalogue["USA"], survey, list(catalogue.values()), examples,
                                     order=order)
        prompts_ = [Prompt(p.key, p.system, p.user, list(p.options)) for p in chat]
        raw = engine.answer(prompts_, mode="logprob", seed=3)
        mapped = orders.map_records(raw, chat, engine, seed=3)
        for item, p, before, after in zip(items, chat, raw, mapped):
            mapping = p.mapping
            assert p.options == tuple(item.numbers)  # the labels asked for: the item's own numbers
            assert len(after["probs"]) == item.n_options and sum(after["probs"]) == pytest.approx(1, abs=1e-9)
            assert min(after["probs"]) >= 0
            for k, shown_number in enumerate(item.numbers):  # label k was read for original option perm[k]
                original = mapping.original_number(shown_number)
                assert after["probs"][original - item.first] == before["probs"][k]
                assert f"{shown_number}.{item.options[original - item.first]}" in p.user
            assert after["choice"] in item.numbers and after["order"] == order
            assert after["position"] == mapping.position(after["choice"])
            assert after["reply"] == str(after["displayed_choice"]) == str(mapping.displayed_number(after["choice"]))
            if order == ORIGINAL:
                assert after["choice"] == before["choice"] and after["probs"] == before["probs"]
        frames.append(pd.DataFrame(mapped).rename(columns={"key": "qid"}).assign(method=methods.P1, persona="USA"))
    # reversed: the label "1" was read for the original last option
    q1 = next(i for i, it in enumerate(items) if it.qid == "Q1")
    rev = frames[1].iloc[q1]
    assert "#Options: 1.Not at all important 2.Not very important 3.Rather important 4.Very important" in \
        methods.build_prompts(methods.P1, [items[q1]], catalogue["USA"], survey, [], examples, order=REVERSED)[0].user
    answers = pd.concat(frames, ignore_index=True)
    asked = Survey(items, survey.countries, survey.dists)
    table = order_scores(answers, asked, ["USA"], "smollm2", ScoringSettings(n_boot=100, n_uniform_draws=50))
    consistency = table[(table.metric == CONSISTENCY) & (table.country == "USA")].value
    assert len(consistency) == 2 and consistency.between(0, 1).all()
    first = table[(table.metric == FIRST_SHARE) & (table.country == "USA")]
    assert set(first.order) == {ORIGINAL, REVERSED, "mean"}
    assert rev["order"] == REVERSED
