"""The engine's batch size: explicit, or "auto" (sized from free GPU memory; a fixed default on CPU)."""

from __future__ import annotations

import pytest
from transformers import LlamaConfig

from culturespa.engine import CPU_BATCH_SIZE, MAX_AUTO_BATCH, Engine, Prompt, auto_batch_size
from culturespa.errors import ConfigError

# Meta-Llama-3-8B-Instruct's shape
LLAMA3_8B = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                        intermediate_size=14336, vocab_size=128256)
GiB = 2**30


def per_row_bytes(config, seq_len, new_tokens, dtype_bytes=2):
    """What one prompt needs, worked out by hand for the Llama-3-8B shape."""
    kv = 32 * 2 * 8 * 128 * dtype_bytes * (seq_len + new_tokens)  # 128 KiB per position, every layer
    act = seq_len * (4 * 4096 + 3 * 14336 + (32 + 16) * 128) * dtype_bytes
    scores = 32 * seq_len * (seq_len + new_tokens) * 4
    return kv + act + scores + 128256 * 4 * 6


def test_auto_batch_size_fills_the_free_memory_with_powers_of_two():
    row = per_row_bytes(LLAMA3_8B, 300, 256)
    # 7 GiB free beside the 16 GB of weights (a 24 GB card): 0.7 * 7 GiB / row
    want = int(0.7 * 7 * GiB // row)
    got = auto_batch_size(7 * GiB, LLAMA3_8B, 300, 256)
    assert got == 1 << (want.bit_length() - 1) and got <= want < 2 * got
    assert 16 <= got <= 64  # sane for that card
    # an H200 (about 120 GiB beside the weights) hits the cap
    assert auto_batch_size(120 * GiB, LLAMA3_8B, 300, 256) == MAX_AUTO_BATCH
    assert auto_batch_size(120 * GiB, LLAMA3_8B, 300, 256, cap=100) == 64


def test_auto_batch_size_shrinks_with_longer_prompts_and_generation():
    sizes = [auto_batch_size(7 * GiB, LLAMA3_8B, n, 256) for n in (100, 300, 1000, 4000)]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert auto_batch_size(7 * GiB, LLAMA3_8B, 300, 0) >= auto_batch_size(7 * GiB, LLAMA3_8B, 300, 256)
    # float32 needs twice the keys and values
    assert auto_batch_size(7 * GiB, LLAMA3_8B, 300, 256, dtype_bytes=4) < auto_batch_size(7 * GiB, LLAMA3_8B, 300, 256)


def test_auto_batch_size_is_at_least_one():
    assert auto_batch_size(0, LLAMA3_8B, 300, 256) == 1
    assert auto_batch_size(-5, LLAMA3_8B, 300, 256) == 1
    assert auto_batch_size(10 * 2**20, LLAMA3_8B, 8000, 256) == 1


@pytest.fixture(scope="module")
def tiny():
    """A tiny random Llama on CPU."""
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        num_key_value_heads=1, intermediate_size=64, vocab_size=64))


def word_tokenizer():
    """A whitespace word-level tokenizer with a chat template (prepare only tokenises)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<pad>", "<s>", "</s>", "sys", "question", "assistant"] + [str(i) for i in range(40)]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    template = ("{% for m in messages %}<s> {{ m['content'] }} </s> {% endfor %}"
                "{% if add_generation_prompt %}assistant {% endif %}")
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", chat_template=template)


def test_auto_on_cpu_is_the_fixed_default_and_an_explicit_number_wins(tiny):
    tok = word_tokenizer()
    prompts = [Prompt(f"k{i}", "sys", f"question {i} " * (i % 5 + 1), [1, 2]) for i in range(40)]
    job = Engine(tiny, tok, batch_size="auto").prepare(prompts)
    assert job.batch_size == CPU_BATCH_SIZE
    # the plan cuts the length-sorted prompts into batches of at most the cap, every prompt once
    assert max(len(b) for b in job.batches) <= CPU_BATCH_SIZE
    assert sum(len(b) for b in job.batches) == 40
    assert job.prefix_len == 5  # "<s> sys </s> <s> question"
    job = Engine(tiny, tok, batch_size=7).prepare(prompts)
    assert job.batch_size == 7 and max(len(b) for b in job.batches) <= 7
    assert sum(len(b) for b in job.batches) == 40
    assert Engine(tiny, tok, batch_size="auto").settings()["batch_size"] == "auto"


@pytest.mark.parametrize("bad", [0, -1, "8", "big", 2.5, True])
def test_bad_batch_sizes_are_config_errors(tiny, bad):
    with pytest.raises(ConfigError, match="batch_size"):
        Engine(tiny, None, batch_size=bad)


@pytest.mark.parametrize("value, ok", [("auto", True), (16, True), (0, False), ("big", False), (2.5, False)])
def test_config_schema_takes_a_number_or_auto(paper_config, value, ok):
    import copy

    from culturespa.config import validate_schema

    config = copy.deepcopy(paper_config)
    assert config["answering"]["batch_size"] == "auto"
    config["answering"]["batch_size"] = value
    if ok:
        validate_schema(config)
    else:
        with pytest.raises(ConfigError, match="answering.batch_size"):
            validate_schema(config)
