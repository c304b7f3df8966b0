"""Step 4: training examples, a real 4-bit QLoRA run on SmolLM2, resume, merged inference."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from culturespa.cultures import Culture
from culturespa.errors import ConfigError, CultureSPAError
from culturespa.finetune import (
    DEMO_PRESET,
    IGNORE_INDEX,
    LOSS_COLUMNS,
    PAPER_PRESET,
    STATS_FILE,
    TrainSettings,
    build_example,
    build_examples,
    cutoff_lengths,
    truncate_example,
    last_checkpoint,
    load_for_inference,
    train_adapter,
)
from culturespa.prompts import system_culture_aware

CULTURES = {
    "USA": Culture("USA", "American", "an", "North America"),
    "CHN": Culture("CHN", "Chinese", "a", "Asia"),
}


def system_for(code: str) -> str:
    return system_culture_aware(CULTURES[code])


def pair_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.choice([3, 4, 5])
        out.append(
            {
                "qid": f"T01-{i:05d}",
                "culture": rng.choice(sorted(CULTURES)),
                "topic": 1,
                "question": f"How much do you agree that tradition number {i} matters in daily life?",
                "options": [f"Choice {j}" for j in range(k)],
                "first": 1,
                "answer": rng.randint(1, k),
            }
        )
    return out


# --- settings (no model) ------------------------------------------------------------------------


def test_paper_preset_effective_batches():
    joint = TrainSettings.from_preset(PAPER_PRESET, "joint")
    specific = TrainSettings.from_preset(PAPER_PRESET, "specific")
    assert (joint.lora_rank, joint.lora_alpha, joint.lora_dropout) == (8, 16, 0.0)
    assert (joint.learning_rate, joint.lr_scheduler, joint.warmup_ratio, joint.epochs) == (1e-4, "cosine", 0.1, 1.0)
    assert joint.target_modules == "all-linear" and joint.quantization == "4bit"
    assert joint.effective_batch == 128 and joint.per_device_batch * joint.grad_accum == 128
    assert specific.effective_batch == 8 and specific.per_device_batch * specific.grad_accum == 8
    demo = TrainSettings.from_preset(DEMO_PRESET, "joint")
    assert demo.max_steps > 0 and demo.per_device_batch * demo.grad_accum == demo.effective_batch


def test_settings_reject_bad_presets():
    with pytest.raises(ConfigError, match="unknown keys"):
        TrainSettings.from_preset({**PAPER_PRESET, "lora_rnak": 4})
    with pytest.raises(ConfigError, match="multiple"):
        TrainSettings.from_preset(PAPER_PRESET, "joint", per_device_batch=48)
    with pytest.raises(ConfigError, match="variant"):
        TrainSettings.from_preset(PAPER_PRESET, "both")


def test_incomplete_checkpoint_is_skipped(tmp_path):
    ck = tmp_path / "ckpt"
    (ck / "checkpoint-2").mkdir(parents=True)
    (ck / "checkpoint-2" / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    (ck / "checkpoint-4").mkdir()  # killed while saving: no trainer_state.json
    (ck / "checkpoint-x").mkdir()
    assert last_checkpoint(ck) == ck / "checkpoint-2"
    assert not (ck / "checkpoint-4").exists()
    assert last_checkpoint(tmp_path / "absent") is None


def test_load_for_inference_needs_an_adapter(tmp_path):
    with pytest.raises(CultureSPAError, match="adapter_config.json"):
        load_for_inference(tmp_path, tmp_path)


# --- tokenisation (real tokenizer) --------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(smollm2_path):
    from culturespa.models import load_tokenizer

    return load_tokenizer(smollm2_path)


@pytest.mark.slow
def test_labels_cover_answer_and_end_of_turn_only(tokenizer):
    from culturespa.engine import chat_text

    system, user = system_for("USA"), "Pick one.\n#Options: 1.Yes 2.No"
    ex = build_example(tokenizer, system, user, "12")
    ids, labels = ex["input_ids"], ex["labels"]
    assert len(ids) == len(labels) == len(ex["attention_mask"])
    prompt_ids = tokenizer(chat_text(tokenizer, system, user), add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    assert ids[:n] == prompt_ids  # the exact tokens the engine feeds at evaluation
    assert labels[:n] == [IGNORE_INDEX] * n
    target = labels[n:]
    assert IGNORE_INDEX not in target and target == ids[n:]
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert target[-1] == eot  # the end-of-turn token is learned too
    assert tokenizer.decode(target[:-1]) == "12"  # and before it, the answer and nothing else
    assert tokenizer.decode(target, skip_special_tokens=True) == "12"


@pytest.mark.slow
def test_build_examples_uses_the_record_culture_prompt(tokenizer):
    recs = pair_records(4)
    seen = []

    def spy(code):
        seen.append(code)
        return system_for(code)

    examples = build_examples(tokenizer, recs, spy, max_length=512)
    assert len(examples) == 4 and sorted(set(seen)) == sorted({r["culture"] for r in recs})
    for rec, ex in zip(recs, examples):
        text = tokenizer.decode(ex["input_ids"])
        assert CULTURES[rec["culture"]].adjective in text and rec["question"] in text
        assert tokenizer.decode([t for t in ex["labels"] if t != IGNORE_INDEX], skip_special_tokens=True) == str(
            rec["answer"]
        )
    full = build_examples(tokenizer, recs, system_for, max_length=512)
    short = build_examples(tokenizer, recs, system_for, max_length=20)
    assert len(short) == 4 and all(ex["truncated"] for ex in short) and not any(ex["truncated"] for ex in full)
    for a, b in zip(full, short):
        answer = [t for t in a["labels"] if t != IGNORE_INDEX]
        # the answer (short) is kept whole, the prompt cut from the right: its start stays
        assert len(b["input_ids"]) == 20 and b["input_ids"][-len(answer):] == answer
        assert b["input_ids"][: 20 - len(answer)] == a["input_ids"][: 20 - len(answer)]


# --- a real QLoRA run, interrupted and resumed --------------------------------------------------


class Interrupted(Exception):
    pass


def _tiny_settings(**kw) -> TrainSettings:
    base = dict(
        per_device_batch=2, effective_batch=2, max_steps=4, save_steps=2, learning_rate=2e-3, warmup_ratio=0.0,
        max_length=256, gradient_checkpointing=False, logging_steps=1, seed=3,
    )
    return TrainSettings.from_preset({**PAPER_PRESET, **base, **kw}, "joint")


@pytest.fixture(scope="module")
def resumed_run(smollm2_path, tmp_path_factory):
    """A 4-step QLoRA run killed right after its step-2 checkpoint, then run again."""
    from transformers import TrainerCallback

    class StopAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= 2:
                raise Interrupted(state.global_step)

    class CountSteps(TrainerCallback):
        def __init__(self):
            self.first_step_seen = None
            self.n = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.n += 1
            if self.first_step_seen is None:
                self.first_step_seen = state.global_step

    root = tmp_path_factory.mktemp("qlora")
    paths = dict(out_dir=root / "adapter", checkpoint_dir=root / "ckpt", loss_csv=root / "loss.csv")
    records = pair_records(8)
    settings = _tiny_settings()
    with pytest.raises(Interrupted):
        train_adapter(smollm2_path, records, system_for, settings=settings, callbacks=[StopAfterSave()], **paths)
    after_kill = {
        "checkpoint": last_checkpoint(paths["checkpoint_dir"]),
        "adapter_exists": paths["out_dir"].exists(),
        "loss_exists": paths["loss_csv"].exists(),
    }
    counter = CountSteps()
    stats = train_adapter(
        smollm2_path, records, system_for, settings=settings, stats_json=root / "stats.json",
        callbacks=[counter], **paths,
    )
    return dict(paths, root=root, after_kill=after_kill, stats=stats, counter=counter, settings=settings)


@pytest.mark.slow
def test_interrupted_run_left_a_checkpoint_and_no_outputs(resumed_run):
    after = resumed_run["after_kill"]
    assert after["checkpoint"] is not None and after["checkpoint"].name == "checkpoint-2"
    assert not after["adapter_exists"] and not after["loss_exists"]


@pytest.mark.slow
def test_rerun_resumes_from_the_checkpoint(resumed_run):
    stats, counter = resumed_run["stats"], resumed_run["counter"]
    assert stats["resumed_from_step"] == 2
    assert stats["steps"] == 4 and stats["steps_this_run"] == 2
    assert counter.n == 2 and counter.first_step_seen == 3  # steps 3 and 4 only, not from 0
    assert not resumed_run["checkpoint_dir"].exists()  # cleaned up after success


@pytest.mark.slow
def test_run_writes_adapter_loss_curve_and_stats(resumed_run):
    out = resumed_run["out_dir"]
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16 and config["task_type"] == "CAUSAL_LM"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".adapter.")]  # no temp dirs left
    curve = pd.read_csv(resumed_run["loss_csv"])
    assert list(curve.columns) == LOSS_COLUMNS
    assert curve["step"].tolist() == [1, 2, 3, 4]  # the whole curve, across the interruption
    assert curve["loss"].notna().all() and (curve["loss"] > 0).all()
    stats = json.loads((resumed_run["root"] / "stats.json").read_text())
    assert stats == json.loads((out / STATS_FILE).read_text())
    assert stats["n_examples"] == 8 and stats["final_loss"] == pytest.approx(curve["loss"].iloc[-1])
    assert stats["peak_rss_mb"] > 100 and stats["wall_seconds"] > 0
    saved = json.loads((out / "train_settings.json").read_text())
    assert saved["effective_batch"] == 2 and saved["quantization"] == "4bit"


@pytest.mark.slow
def test_merged_adapter_changes_the_answer_distribution(resumed_run, smollm2_path):
    import torch
    from safetensors.torch import load_file

    from culturespa.engine import Engine, Prompt
    from culturespa.models import load_model, load_tokenizer
    from culturespa.prompts import render_question
    from culturespa.finetune import record_item

    weights = load_file(str(resumed_run["out_dir"] / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(float(v.abs().max()) > 0 for v in lora_b)  # trained away from the zero init

    tok = load_tokenizer(smollm2_path)
    rec = pair_records(1, seed=99)[0]
    item = record_item(rec)
    prompts = [Prompt("q", system_for("USA"), render_question(item), item.numbers)]
    base = load_model(smollm2_path, dtype="float32", device="cpu")
    merged = load_for_inference(smollm2_path, resumed_run["out_dir"], dtype="float32", device="cpu")
    assert not merged.training and not hasattr(merged, "peft_config")  # a plain model, merged
    p_base = Engine(base, tok, choice="argmax").option_probabilities(prompts)[0][0]
    p_tuned = Engine(merged, tok, choice="argmax").option_probabilities(prompts)[0][0]
    assert max(abs(a - b) for a, b in zip(p_base, p_tuned)) > 1e-3
    names = dict(base.named_parameters())
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(names[q_proj], dict(merged.named_parameters())[q_proj])


@pytest.mark.slow
def test_changed_data_discards_old_checkpoints(smollm2_path, tmp_path):
    """A checkpoint folder from another run (here: other records) is not resumed."""
    from culturespa.finetune import _fingerprint, _prepare_checkpoint_dir
    from culturespa.models import load_tokenizer

    tok = load_tokenizer(smollm2_path)
    settings = _tiny_settings()
    a = build_examples(tok, pair_records(4, seed=1), system_for, 256)
    b = build_examples(tok, pair_records(4, seed=2), system_for, 256)
    ck = tmp_path / "ckpt"
    assert _prepare_checkpoint_dir(ck, _fingerprint(smollm2_path, settings, a)) is None
    (ck / "checkpoint-2").mkdir()
    (ck / "checkpoint-2" / "trainer_state.json").write_text("{}")
    assert _prepare_checkpoint_dir(ck, _fingerprint(smollm2_path, settings, a)) == ck / "checkpoint-2"
    assert _prepare_checkpoint_dir(ck, _fingerprint(smollm2_path, settings, b)) is None
    assert not (ck / "checkpoint-2").exists()


def test_cutoff_follows_llama_factory():
    # LLaMA-Factory's infer_seqlen, by hand: a short target is kept and the source cut
    assert cutoff_lengths(100, 3, 50) == (47, 3)
    # a short source is kept and the target cut
    assert cutoff_lengths(10, 100, 50) == (10, 40)
    # both long: cut in proportion
    assert cutoff_lengths(60, 60, 50) == (25, 25)
    assert cutoff_lengths(30, 10, 50) == (30, 10)


def test_truncate_example_keeps_the_starts_of_prompt_and_answer():
    ex = {"input_ids": list(range(10)), "labels": [IGNORE_INDEX] * 7 + [7, 8, 9], "attention_mask": [1] * 10}
    cut = truncate_example(ex, 8)
    assert cut["input_ids"] == [0, 1, 2, 3, 4, 7, 8, 9] and cut["labels"] == [IGNORE_INDEX] * 5 + [7, 8, 9]
    assert cut["truncated"] and cut["attention_mask"] == [1] * 8
    # a target as long as half the cutoff: both cut in proportion (int(6 * 3 / 10) = 1 answer token)
    assert truncate_example(ex, 6)["input_ids"] == [0, 1, 2, 3, 4, 7]
    assert truncate_example(ex, 10)["input_ids"] == list(range(10)) and not truncate_example(ex, 10)["truncated"]


def test_label_positions_only_give_the_full_loss_and_gradients():
    """The collator's logits_to_keep / shift_labels: same loss, same LoRA gradients, same token count
    as the logits at every position (a small random Llama; rows of different lengths, an answer of
    1-3 tokens, a row whose answer was cut off)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from culturespa.finetune import collate

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    rows = []
    for length, answer in ((11, 2), (7, 1), (15, 3), (9, 0)):
        ids = torch.randint(1, 97, (length,)).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * length,
                     "labels": [IGNORE_INDEX] * (length - answer) + ids[length - answer:]})
    batch = collate(0)(rows)
    assert batch["shift_labels"].shape == (4, len(batch["logits_to_keep"])) and len(batch["logits_to_keep"]) < 14

    def loss_and_grads(**inputs):
        model.zero_grad()
        loss = model(**inputs).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    common = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    full, full_grads = loss_and_grads(**common)
    kept, kept_grads = loss_and_grads(**common, logits_to_keep=batch["logits_to_keep"],
                                      shift_labels=batch["shift_labels"])
    assert torch.allclose(full, kept, rtol=1e-5, atol=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(full_grads, kept_grads))
    assert int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()) == int((batch["shift_labels"] != IGNORE_INDEX).sum()) == 6
