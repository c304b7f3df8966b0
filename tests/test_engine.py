"""The answering engine, on the real SmolLM2-135M-Instruct (no mocked model)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from culturespa.engine import (
    Engine,
    Prompt,
    answer_to_file,
    chat_text,
    derive_seed,
    draw_choice,
    needs_boundary,
    plan_batches,
    sharpen,
    summarise,
)
from culturespa.errors import CultureSPAError
from culturespa.resume import partial_path
from culturespa.parsing import parse_paper
from culturespa.prompts import render_question
from culturespa.wvs import Item

SYSTEM = (
    "You are a real person with an American cultural background. Please fill out the World Values Survey and "
    "answer the questions honestly according to your own value system."
)

ITEMS = [
    Item("Q1", "For each of the following, indicate how important it is in your life. Family",
         ("Very important", "Rather important", "Not very important", "Not at all important")),
    Item("Q46", "Taking all things together, would you say you are",
         ("Very happy", "Rather happy", "Not very happy", "Not at all happy")),
    Item("Q48", "How much freedom of choice and control do you feel you have over the way your life turns out?",
         tuple(["No choice at all"] + [str(i) for i in range(2, 10)] + ["A great deal of choice"])),
    Item("Q94", "Are you an active member, an inactive member or not a member of a church or religious organization?",
         ("Don't belong", "Inactive member", "Active member"), first=0),
    Item("Q57", "Generally speaking, would you say that most people can be trusted or that you need to be very careful?",
         ("Most people can be trusted", "Need to be very careful")),
    Item("Q158", "Science and technology are making our lives healthier, easier, and more comfortable. (1-10)",
         tuple(["Completely disagree"] + [str(i) for i in range(2, 10)] + ["Completely agree"])),
    Item("Q122", "Immigration in your country: fills useful jobs in the workforce (0 = disagree, 2 = agree)",
         ("Disagree", "Hard to say", "Agree"), first=0),
]


def prompt_for(item: Item) -> Prompt:
    return Prompt(item.qid, SYSTEM, render_question(item), item.numbers)


PROMPTS = [prompt_for(it) for it in ITEMS]


# --- pure helpers (fast) --------------------------------------------------------------------


def test_sharpen_and_draw():
    q = sharpen([0.5, 0.3, 0.2], 0.6)
    assert q.sum() == pytest.approx(1) and q[0] > 0.5 and q[2] < 0.2
    assert sharpen([0.2, 0.5, 0.3], 0).tolist() == [0, 1, 0]
    draws = [draw_choice([1, 2, 3], [0.5, 0.3, 0.2], 7, f"k{i}", 0.6) for i in range(2000)]
    share = np.bincount(draws, minlength=4)[1:] / 2000
    assert np.allclose(share, q, atol=0.04)
    assert draw_choice([1, 2, 3], [0.5, 0.3, 0.2], 7, "x", 0.6) == draw_choice([1, 2, 3], [0.5, 0.3, 0.2], 7, "x", 0.6)


def test_needs_boundary_only_for_labels_that_start_another():
    assert needs_boundary(["1", "2", "3", "4"]) == [False] * 4
    assert needs_boundary([str(n) for n in range(1, 11)]) == [True] + [False] * 9
    assert needs_boundary(["0", "1", "2"]) == [False] * 3
    assert needs_boundary(["1", "12", "123"]) == [True, True, False]


def test_batch_plan_keeps_order_and_size_and_cuts_padding():
    def padded(lengths, plan):
        return sum(len(b) * lengths[b[0]] for b in plan)

    assert plan_batches([50] * 20, 8) == [list(range(0, 4)), list(range(4, 12)), list(range(12, 20))]
    lengths = [400] + [40] * 9  # one long prompt: padding the others to it costs more than a batch
    plan = plan_batches(lengths, 8)
    assert [k for b in plan for k in b] == list(range(10)) and max(map(len, plan)) <= 8
    assert plan[0] == [0] and padded(lengths, plan) == sum(lengths)
    lengths = [142, 120, 104, 96, 90, 85, 80, 75, 70, 66, 64, 62, 61] + [60] * 51  # a long tail, as WVS items have
    plan = plan_batches(lengths, 8)
    chunks = [list(range(i, i + 8)) for i in range(0, 64, 8)]
    assert padded(lengths, plan) < padded(lengths, chunks) and len(plan) <= len(chunks) + 2
    assert plan_batches([], 8) == []


def test_fewest_batch_plan_for_a_gpu():
    """On a GPU a batch costs far more than padding (a forward's fixed launch cost, paid again at every
    generated token): the plan takes the fewest batches the size allows, and the least padding among those."""
    lengths = [142, 120, 104, 96, 90, 85, 80, 75, 70, 66, 64, 62, 61] + [60] * 51
    cheap = plan_batches(lengths, 16)
    fewest = plan_batches(lengths, 16, fewest=True)
    assert len(fewest) == 4 < len(cheap)
    assert [k for b in fewest for k in b] == list(range(64)) and max(map(len, fewest)) <= 16
    # one long prompt: the cheap plan runs it alone; two batches must share it, so it takes one partner
    assert plan_batches([400] + [40] * 9, 8)[0] == [0]
    assert plan_batches([400] + [40] * 9, 8, fewest=True) == [[0, 1], list(range(2, 10))]
    assert sorted(map(len, plan_batches([50] * 20, 8, fewest=True))) == [4, 8, 8]


def test_derive_seed_is_stable():
    assert derive_seed(42, "Q1") == derive_seed(42, "Q1") != derive_seed(42, "Q2")
    assert 0 <= derive_seed("a", 1, 2.5) < 2**63


# --- the real model --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(smollm2_path):
    from culturespa.models import load

    return load(smollm2_path, dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def engine(loaded):
    model, tok = loaded
    return Engine(model, tok, batch_size=3, max_new_tokens=6, name="smollm2")


def test_engine_plans_fewest_batches_on_a_gpu(loaded, monkeypatch):
    import torch

    model, tok = loaded
    # one long prompt and 15 short ones, 8 per batch
    prompts = [Prompt(f"q{i}", "sys", "word " * (300 if i == 0 else 5), [1, 2]) for i in range(16)]
    engine = Engine(model, tok, batch_size=8)
    assert sorted(len(b) for b in engine.prepare(prompts).batches) == [1, 7, 8]  # CPU: the long one alone
    monkeypatch.setattr(Engine, "device", property(lambda self: torch.device("cuda")))
    assert [len(b) for b in engine.prepare(prompts).batches] == [8, 8]


def brute_force_label_probability(model, tok, digit_mask, prompt: Prompt, label: str, boundary: bool) -> float:
    """P(label's tokens), times P(then a non-digit) with ``boundary``, from a plain forward pass over
    prompt + label (no cache, no tree)."""
    import torch

    text = chat_text(tok, prompt.system, prompt.user)
    base = tok(text, add_special_tokens=False)["input_ids"]
    full = tok(text + label, add_special_tokens=False)["input_ids"]
    assert full[: len(base)] == base
    lab = full[len(base):]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([full])).logits[0].double(), -1)
    s = sum(float(logp[len(base) - 1 + d, lab[d]]) for d in range(len(lab)))
    digit = float(torch.logsumexp(logp[-1, digit_mask], -1))
    return math.exp(s) * (1 - math.exp(digit)) if boundary else math.exp(s)


@pytest.mark.slow
def test_distributions_and_option_mass(engine):
    records = engine.answer(PROMPTS, mode="logprob", seed=1)
    assert [r["key"] for r in records] == [p.key for p in PROMPTS]
    for p, r in zip(PROMPTS, records):
        assert len(r["probs"]) == len(p.options)
        assert sum(r["probs"]) == pytest.approx(1, abs=1e-9)
        assert 0 < r["option_mass"] <= 1
        assert r["choice"] in p.options and r["reply"] == str(r["choice"]) and r["mode"] == "logprob"
    assert summarise(records)["invalid"] == 0


@pytest.mark.slow
def test_ten_is_two_tokens_and_one_excludes_ten(engine, loaded):
    model, tok = loaded
    p = prompt_for(ITEMS[2])  # options 1..10
    assert p.options == list(range(1, 11))
    assert len(tok.encode("10", add_special_tokens=False)) == 2  # SmolLM2 splits digits
    (probs, mass), = engine.option_probabilities([p])
    raw = {n: q * mass for n, q in zip(p.options, probs)}
    digits = engine.digit_mask()
    p10 = brute_force_label_probability(model, tok, digits, p, "10", boundary=False)
    p1 = brute_force_label_probability(model, tok, digits, p, "1", boundary=True)  # "1" starts "10"
    p2 = brute_force_label_probability(model, tok, digits, p, "2", boundary=False)
    assert raw[10] == pytest.approx(p10, rel=1e-3)
    assert raw[1] == pytest.approx(p1, rel=1e-3)
    assert raw[2] == pytest.approx(p2, rel=1e-3)
    # "1" followed by anything: strictly more than "1" as a complete answer (it includes "10")
    import torch

    text = chat_text(tok, p.system, p.user)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        first = torch.softmax(model(torch.tensor([ids])).logits[0, -1].double(), -1)
    p1_any = float(first[tok.convert_tokens_to_ids("1")])
    assert raw[1] < p1_any and raw[1] + raw[10] <= p1_any + 1e-9


@pytest.mark.slow
def test_zero_based_item(engine, loaded):
    model, tok = loaded
    p = prompt_for(ITEMS[3])
    assert p.options == [0, 1, 2]
    (probs, mass), = engine.option_probabilities([p])
    assert len(probs) == 3 and sum(probs) == pytest.approx(1)
    p0 = brute_force_label_probability(model, tok, engine.digit_mask(), p, "0", boundary=False)
    assert probs[0] * mass == pytest.approx(p0, rel=1e-3)  # the first reply token, as the spec reads it


@pytest.mark.slow
def test_prefix_cache_changes_nothing(loaded):
    model, tok = loaded
    with_cache = Engine(model, tok, batch_size=4, prefix_cache=True).option_probabilities(PROMPTS)
    without = Engine(model, tok, batch_size=4, prefix_cache=False).option_probabilities(PROMPTS)
    assert Engine(model, tok).prepare(PROMPTS).prefix_len > 20  # the system prompt is shared
    for (a, ma), (b, mb) in zip(with_cache, without):
        assert np.allclose(a, b, atol=1e-4) and ma == pytest.approx(mb, rel=1e-3)


@pytest.mark.slow
def test_choice_reproducible_and_independent_of_batch_size(loaded):
    model, tok = loaded
    runs = [Engine(model, tok, batch_size=bs).answer(PROMPTS, seed=5) for bs in (1, 3, 7)]
    again = Engine(model, tok, batch_size=3).answer(PROMPTS, seed=5)
    assert [r["choice"] for r in runs[1]] == [r["choice"] for r in again]
    for other in runs[1:]:
        assert [r["choice"] for r in other] == [r["choice"] for r in runs[0]]
        for a, b in zip(other, runs[0]):
            assert np.allclose(a["probs"], b["probs"], atol=1e-4)
    argmax = Engine(model, tok, choice="argmax").answer(PROMPTS)
    for p, r in zip(PROMPTS, argmax):
        assert r["choice"] == p.options[int(np.argmax(r["probs"]))]


@pytest.mark.slow
def test_logprob_needs_options(engine):
    with pytest.raises(CultureSPAError, match="options"):
        engine.answer([Prompt("free", SYSTEM, "Say hello.", [])])
    with pytest.raises(CultureSPAError, match="unique"):
        engine.answer([PROMPTS[0], PROMPTS[0]])


class Crash(Exception):
    pass


def _crash_after_first(b, records):
    raise Crash(f"simulated crash after batch {b}")


def _lines(path):
    return path.read_text().splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["logprob", "generate"])
def test_resume_equals_uninterrupted(engine, tmp_path, mode):
    full = tmp_path / "full.jsonl"
    expected = answer_to_file(engine, PROMPTS, full, mode=mode, seed=3, progress=False)
    assert not partial_path(full).exists()
    assert [json.loads(line) for line in _lines(full)] == expected

    out = tmp_path / "resumed.jsonl"
    with pytest.raises(Crash):
        answer_to_file(engine, PROMPTS, out, mode=mode, seed=3, on_batch=_crash_after_first, progress=False)
    part = partial_path(out)
    assert part.exists() and not out.exists()
    assert len(_lines(part)) == 2  # header + the first batch
    seen = []
    answer_to_file(engine, PROMPTS, out, mode=mode, seed=3, on_batch=lambda b, r: seen.append(b), progress=False)
    assert 0 not in seen and seen  # the finished batch was skipped, the rest computed
    assert out.read_text() == full.read_text()
    assert not part.exists()


@pytest.mark.slow
def test_truncated_partial_line_is_redone(engine, tmp_path):
    full = tmp_path / "full.jsonl"
    answer_to_file(engine, PROMPTS, full, seed=3, progress=False)

    out = tmp_path / "out.jsonl"
    calls = []

    def crash_after_second(b, records):
        calls.append(b)
        if len(calls) == 2:
            raise Crash

    with pytest.raises(Crash):
        answer_to_file(engine, PROMPTS, out, seed=3, on_batch=crash_after_second, progress=False)
    part = partial_path(out)
    text = part.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    part.write_text(text[: len(text) - len(last) // 2 - 1])  # the crash hit mid-line
    seen = []
    answer_to_file(engine, PROMPTS, out, seed=3, on_batch=lambda b, r: seen.append(b), progress=False)
    assert seen == [calls[1]] + [b for b in range(3) if b not in calls]  # the cut batch is redone
    assert out.read_text() == full.read_text()


@pytest.mark.slow
def test_partial_from_another_job_is_ignored(engine, tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(Crash):
        answer_to_file(engine, PROMPTS, out, seed=3, on_batch=_crash_after_first, progress=False)
    seen = []
    answer_to_file(engine, PROMPTS, out, seed=4, on_batch=lambda b, r: seen.append(b), progress=False)
    assert sorted(seen) == [0, 1, 2]  # another seed: nothing reused


@pytest.mark.slow
def test_generate_mode_parses_and_counts_invalid(loaded, tmp_path, caplog):
    model, tok = loaded
    engine = Engine(model, tok, batch_size=4, max_new_tokens=4)
    chatty = [Prompt(f"poem{i}", SYSTEM, "Write a short poem about the sea.", [1, 2, 3]) for i in range(3)]
    prompts = PROMPTS[:3] + chatty
    with caplog.at_level(logging.INFO, logger="culturespa.engine"):
        records = answer_to_file(engine, prompts, tmp_path / "gen.jsonl", mode="generate", seed=0, progress=False)
    assert len(records) == len(prompts)  # invalid replies are kept, never dropped
    for r in records:
        assert isinstance(r["reply"], str) and r["mode"] == "generate"
        assert r["choice"] == parse_paper(r["reply"]) and r["probs"] is None
    invalid = summarise(records)["invalid"]
    assert invalid >= 1 and invalid == sum(r["choice"] is None for r in records)
    assert any(r["choice"] is not None for r in records[:3])
    assert any(f"invalid {invalid}" in m and "prompts/s" in m for m in caplog.messages)


@pytest.mark.slow
def test_generate_texts(engine):
    prompts = [Prompt(f"g{i}", "You are a helpful assistant.", f"Name a colour. ({i})", []) for i in range(4)]
    a = engine.generate_texts(prompts, temperature=0.9, top_p=0.95, max_new_tokens=5, seed=1)
    b = engine.generate_texts(prompts, temperature=0.9, top_p=0.95, max_new_tokens=5, seed=1)
    assert a == b and len(a) == 4 and all(isinstance(t, str) and t for t in a)


@pytest.mark.slow
def test_chat_text(loaded):
    _, tok = loaded
    prompt = chat_text(tok, "S", "U")
    assert prompt.endswith("<|im_start|>assistant\n")
    example = chat_text(tok, "S", "U", "3")
    assert example.startswith(prompt) and example.rstrip().endswith("3<|im_end|>")


# --- the packed logprob pass (bf16 on CPUs with native bf16) against the model's own forward -----


def _assert_same_answers(a, b, atol=1e-5, rel=1e-4):
    for (pa, ma), (pb, mb) in zip(a, b):
        assert np.allclose(pa, pb, atol=atol) and ma == pytest.approx(mb, rel=rel)


@pytest.mark.slow
def test_packed_forward_matches_model_forward(loaded):
    model, tok = loaded
    assert Engine(model, tok).settings()["forward"] == "hf"  # float32: the packed pass gains nothing
    for kw in ({"batch_size": 3}, {"batch_size": 7, "prefix_cache": False}):
        hf = Engine(model, tok, forward="hf", **kw).option_probabilities(PROMPTS)
        packed = Engine(model, tok, forward="packed", **kw).option_probabilities(PROMPTS)
        _assert_same_answers(packed, hf)


def _tiny(kind: str, vocab: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, head_dim=16, initializer_range=0.3, pad_token_id=2,
                  attn_implementation="sdpa")
    if kind == "qwen2":  # biases on q/k/v, 2 query heads per key/value head
        return Qwen2ForCausalLM(Qwen2Config(num_key_value_heads=2, **common)).eval()
    # Llama 3-style rope scaling, one key/value head for all query heads, untied output layer
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    return LlamaForCausalLM(LlamaConfig(num_key_value_heads=1, rope_parameters=rope, tie_word_embeddings=False,
                                        **common)).eval()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["llama3", "qwen2"])
def test_packed_forward_other_decoders(loaded, kind):
    _, tok = loaded
    model = _tiny(kind, len(tok))
    hf = Engine(model, tok, batch_size=4, forward="hf").option_probabilities(PROMPTS)
    engine = Engine(model, tok, batch_size=4, forward="packed")
    _assert_same_answers(engine.option_probabilities(PROMPTS), hf)
    import torch

    with torch.no_grad():  # weights changed in place after the engine's first use: it notices
        model.model.layers[1].mlp.down_proj.weight.mul_(3.0)
    hf2 = Engine(model, tok, batch_size=4, forward="hf").option_probabilities(PROMPTS)
    assert not np.allclose(hf2[0][0], hf[0][0], atol=1e-4)
    _assert_same_answers(engine.option_probabilities(PROMPTS), hf2)


@pytest.mark.slow
def test_packed_forward_bf16(loaded):
    """bf16 on CPU: the prepacked (oneDNN blocked-layout) weights give the answers of the model's own
    bf16 forward, up to bf16 rounding."""
    import torch

    _, tok = loaded
    model = _tiny("llama3", len(tok)).to(torch.bfloat16)
    hf = Engine(model, tok, batch_size=4, forward="hf").option_probabilities(PROMPTS)
    engine = Engine(model, tok, batch_size=4, forward="packed")
    packed = engine.option_probabilities(PROMPTS)
    assert engine._packed is not None and engine._packed.dtype == torch.bfloat16
    _assert_same_answers(packed, hf, atol=0.05, rel=0.1)


# --- compiled kernels of the packed pass (torch.compile, inductor) -----------------------------


@pytest.mark.slow
def test_compiled_kernels_match_the_model(loaded):
    """The compiled element-wise kernels really run, and give the model's own answers: to rounding
    in float32, and to bf16 rounding next to the eager kernels in bf16."""
    import torch

    from culturespa import packed

    if packed.compiler_found() is None:
        pytest.skip("no C++ compiler: the compiled kernels are off (the fallback is tested below)")
    model, tok = loaded
    hf = Engine(model, tok, batch_size=3, forward="hf").option_probabilities(PROMPTS)
    engine = Engine(model, tok, batch_size=3, compile="always", forward="packed")
    job = engine.prepare(PROMPTS)
    out = engine.option_probabilities(PROMPTS)
    assert engine._compiled(job) and packed.kernels_off_reason() is None
    _assert_same_answers(out, hf)

    # bf16 (where the packed pass runs by default) on a small model of the same architecture: bf16
    # matrix products are slow on CPUs without native bf16
    model16 = _tiny("llama3", len(tok)).to(torch.bfloat16)
    eager = Engine(model16, tok, batch_size=3, compile="never", forward="packed").option_probabilities(PROMPTS)
    fused = Engine(model16, tok, batch_size=3, compile="always", forward="packed").option_probabilities(PROMPTS)
    assert packed.kernels_off_reason() is None
    _assert_same_answers(fused, eager, atol=0.05, rel=0.1)


@pytest.mark.slow
def test_compile_failure_falls_back_to_eager(loaded, monkeypatch, caplog):
    """A compile error (no compiler, an inductor bug) is logged once and the pass goes on eagerly,
    with the eager answers."""
    from culturespa import packed

    class Broken:
        def norm(self, x, eps):
            raise RuntimeError("simulated inductor failure")

    monkeypatch.setattr(packed, "_KERNELS", Broken())
    monkeypatch.setattr(packed, "_KERNELS_OFF", None)
    model, tok = loaded
    eager = Engine(model, tok, batch_size=3, compile="never", forward="packed").option_probabilities(PROMPTS)
    with caplog.at_level(logging.WARNING, logger="culturespa.packed"):
        out = Engine(model, tok, batch_size=3, compile="always", forward="packed").option_probabilities(PROMPTS)
    _assert_same_answers(out, eager, atol=0, rel=0)
    assert "simulated inductor failure" in packed.kernels_off_reason()
    assert sum("compiled kernels off" in r.message for r in caplog.records) == 1
    # later jobs in the process do not try again
    assert not Engine(model, tok, compile="always", forward="packed")._compiled(Engine(model, tok).prepare(PROMPTS))


def test_compile_auto_only_for_large_jobs(loaded, monkeypatch):
    from culturespa import engine as engine_module
    from culturespa import packed

    monkeypatch.setattr(packed, "compiler_found", lambda: "/usr/bin/g++")
    monkeypatch.setattr(packed, "_KERNELS_OFF", None)
    model, tok = loaded
    auto = Engine(model, tok, compile="auto", forward="packed")
    assert not auto._compiled(auto.prepare(PROMPTS))  # 7 prompts: compiling would not pay
    monkeypatch.setattr(engine_module, "COMPILE_MIN_PROMPTS", 5)
    assert auto._compiled(auto.prepare(PROMPTS))
    assert not Engine(model, tok, compile="never")._compiled(auto.prepare(PROMPTS))
    assert not Engine(model, tok, compile="always", forward="hf")._compiled(auto.prepare(PROMPTS))
    with pytest.raises(Exception, match="compile"):
        Engine(model, tok, compile="sometimes")


# --- which logprob pass runs where -------------------------------------------------------------


@pytest.mark.parametrize("native", [True, False])
def test_packed_pass_only_for_bf16_on_a_cpu_with_native_bf16(loaded, monkeypatch, native):
    """auto: the packed pass only where it gains (bf16, native bf16 CPU, oneDNN bf16 kernels);
    elsewhere the model's own forward, whose answers it matches (tested above)."""
    import torch

    from culturespa import models

    monkeypatch.setattr(models, "cpu_bf16_native", lambda: (native, "mocked CPU"))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    model32, tok = loaded
    model16 = _tiny("llama3", len(tok)).to(torch.bfloat16)
    assert Engine(model16, tok).settings()["forward"] == ("packed" if native else "hf")
    assert Engine(model32, tok).settings()["forward"] == "hf"  # float32: never auto
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert Engine(model16, tok).settings()["forward"] == "hf"  # a torch without oneDNN bf16 kernels
    assert Engine(model16, tok, forward="packed").settings()["forward"] == "packed"  # explicit wins


def test_cpu_attention_is_sdpa_unless_asked(loaded):
    import torch

    model32, tok = loaded
    assert Engine(model32, tok)._logprob_attention() == "sdpa"
    assert Engine(model32, tok, attention="eager")._logprob_attention() == "eager"
    assert Engine(_tiny("llama3", len(tok)).to(torch.bfloat16), tok)._logprob_attention() == "sdpa"


# --- the read-out in float32 ---------------------------------------------------------------------


def test_float32_head_of_a_bf16_model(loaded):
    """A bf16 model's logits come from its final norm and output layer in float32 (the hidden
    state before the norm is the model's own): bf16 logits would quantise the probabilities."""
    import torch

    from culturespa.engine import float32_head, last_logits_float32

    _, tok = loaded
    model = _tiny("llama3", len(tok)).to(torch.bfloat16)
    ids = torch.tensor([[5, 17, 29, 301, 4000, 77]])
    captured = []
    hook = model.model.norm.register_forward_hook(lambda m, args, out: captured.append(args[0]))
    with torch.no_grad():
        own = model(ids).logits[0, -2:]  # the model's own head: bf16
        got = last_logits_float32(model, 2, input_ids=ids)[0]
    hook.remove()
    h = captured[0][0, -2:].double()
    norm = model.model.norm
    ref = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)) * norm.weight.double()
    ref = ref @ model.lm_head.weight.double().T
    assert got.dtype == torch.float32 and own.dtype == torch.bfloat16
    err_got, err_own = (got.double() - ref).abs().max(), (own.double() - ref).abs().max()
    assert err_got < 1e-4 * ref.abs().max() and err_own > 20 * err_got
    assert float32_head(model) is float32_head(model)  # the float32 copy of the output layer is kept


def test_float32_head_falls_back_for_scaled_logits(loaded):
    import torch

    from culturespa.engine import Float32Head, last_logits_float32

    _, tok = loaded
    model = _tiny("llama3", len(tok)).to(torch.bfloat16)
    assert Float32Head.supports(model)
    model.config.final_logit_softcapping = 30.0  # (a Gemma-style head the engine does not redo)
    assert not Float32Head.supports(model)
    ids = torch.tensor([[5, 17, 29]])
    with torch.no_grad():
        got = last_logits_float32(model, 1, input_ids=ids)
        own = model(ids, logits_to_keep=1).logits
    assert got.dtype == torch.float32 and torch.equal(got, own.float())  # the model's own (bf16) logits
