"""Step 4: supervised fine-tuning on culture-related QA pairs with 4-bit QLoRA.

One training example per pair record: system = the culture's persona prompt (P1, or P2 for the
cross-cultural-thinking variant: the caller passes ``system_for``), user = the rendered survey
question, assistant = the answer number. The prompt is rendered through the model's chat template
exactly as the answering engine renders evaluation prompts (``engine.chat_text``); the loss falls on
the answer tokens and the end-of-turn token after them only.

Training is transformers ``Trainer`` + peft LoRA on a bitsandbytes nf4 base (QLoRA). Checkpoints go
to an undeclared folder so a killed job resumes; the adapter, the loss curve and the run statistics
are written atomically. ``load_for_inference`` merges an adapter into the full-precision base, as
the paper evaluates.
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from . import io
from .errors import ConfigError, CultureSPAError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
CHECKPOINT_FINGERPRINT = "culturespa_run.json"
STATS_FILE = "train_stats.json"
LOSS_COLUMNS = ["step", "epoch", "loss", "learning_rate"]
VARIANTS = ("joint", "specific")

# The paper's settings (METHOD.md, step 4). LLaMA-Factory, which the authors used, trains with
# plain LoRA in bf16; here the base is 4-bit (QLoRA), everything else as published.
PAPER_PRESET: dict = {
    "lora_rank": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "target_modules": "all-linear",
    "learning_rate": 1.0e-4,
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.1,
    "epochs": 1,
    "effective_batch": {"joint": 128, "specific": 8},
    "per_device_batch": 8,
    "max_length": 1024,
    "quantization": "4bit",
    "gradient_checkpointing": True,
    "save_steps": 50,
    "seed": 42,
}

# Small enough for 2 CPU cores on SmolLM2-135M: 12 steps, 96 examples (joint) or 48 (specific).
# Measured (benchmarks/bench_finetune.py): about 1.4 examples/s with one thread on a busy machine,
# so a joint adapter in about a minute, a specific one in about half; faster on an idle machine.
DEMO_PRESET: dict = {
    **PAPER_PRESET,
    "learning_rate": 5.0e-4,
    "effective_batch": {"joint": 8, "specific": 4},
    "per_device_batch": 4,
    "max_steps": 12,
    "max_length": 512,
    "gradient_checkpointing": False,
    "save_steps": 4,
}

PRESETS = {"paper": PAPER_PRESET, "demo": DEMO_PRESET}


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides an adapter. ``effective_batch = per_device_batch x grad_accum``."""

    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "all-linear"
    learning_rate: float = 1.0e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    effective_batch: int = 128
    per_device_batch: int = 8
    max_length: int = 1024  # examples longer than this (prompt + answer) are dropped, with a warning
    quantization: str | None = "4bit"  # "4bit" (QLoRA, nf4 + double quantisation) or None (plain LoRA)
    compute_dtype: str = "auto"  # "auto": bf16 where the hardware has it, else fp16 (GPU) / fp32 (CPU)
    gradient_checkpointing: bool = True
    optim: str = "adamw_torch"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    logging_steps: int = 1
    save_steps: int = 50
    save_total_limit: int = 2
    keep_checkpoints: bool = False  # remove checkpoint_dir after the adapter is saved
    seed: int = 42

    def __post_init__(self):
        if self.per_device_batch < 1 or self.effective_batch < 1:
            raise ConfigError("sft: per_device_batch and effective_batch must be >= 1")
        if self.effective_batch % self.per_device_batch:
            raise ConfigError(
                f"sft: effective_batch {self.effective_batch} is not a multiple of per_device_batch "
                f"{self.per_device_batch}"
            )
        if self.quantization not in (None, "4bit"):
            raise ConfigError(f"sft.quantization: {self.quantization!r} is not one of null, '4bit'")
        if self.compute_dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ConfigError(f"sft.compute_dtype: {self.compute_dtype!r} is not auto/bfloat16/float16/float32")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"sft.warmup_ratio: {self.warmup_ratio} is not in [0, 1)")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("sft: set epochs > 0 or max_steps > 0")

    @property
    def grad_accum(self) -> int:
        return self.effective_batch // self.per_device_batch

    @classmethod
    def from_preset(cls, preset: Mapping, variant: str = "joint", **overrides) -> "TrainSettings":
        """Settings from a config preset dict. ``effective_batch`` may be a number or a mapping
        ``{joint: .., specific: ..}`` (the paper's 128 and 8), picked by ``variant``."""
        if variant not in VARIANTS:
            raise ConfigError(f"sft: variant {variant!r} is not one of {', '.join(VARIANTS)}")
        merged = {**dict(preset), **overrides}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ConfigError(f"sft preset: unknown keys {unknown} (known: {sorted(known)})")
        eb = merged.get("effective_batch", cls.effective_batch)
        if isinstance(eb, Mapping):
            if variant not in eb:
                raise ConfigError(f"sft preset: effective_batch has no entry for variant {variant!r}")
            merged["effective_batch"] = int(eb[variant])
        tm = merged.get("target_modules")
        if isinstance(tm, (list, tuple)):
            merged["target_modules"] = tuple(tm)
        for key in ("learning_rate", "lora_dropout", "warmup_ratio", "epochs", "weight_decay", "max_grad_norm"):
            if key in merged:
                merged[key] = float(merged[key])
        return cls(**merged)

    def to_dict(self) -> dict:
        d = asdict(self)
        if isinstance(d["target_modules"], tuple):
            d["target_modules"] = list(d["target_modules"])
        return d


# --- training examples ------------------------------------------------------------------------


def _chat_text(tokenizer, system: str, user: str, assistant: str | None = None) -> str:
    from .engine import chat_text

    return chat_text(tokenizer, system, user, assistant)


def _encode(tokenizer, text: str) -> list[int]:
    """Token ids of rendered chat text, as the engine encodes prompts (the template writes any
    BOS token itself)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    ids.update(i for i, tok in tokenizer.added_tokens_decoder.items() if tok.special)
    return ids


def build_example(tokenizer, system: str, user: str, answer: str) -> dict:
    """input_ids / labels / attention_mask for one (system, user, answer) conversation.

    The prompt is the chat-template text the engine asks with (generation prompt included); the
    completion is what the template writes after it for an assistant message ``answer``: the
    answer tokens, then the end-of-turn. Labels are the completion's tokens up to and including the
    first special token after the answer (the end-of-turn; trailing newlines after it are dropped),
    and -100 on the prompt. The prompt tokens are exactly those the engine feeds at evaluation
    (``engine.chat_text`` + ``add_special_tokens=False``); the answer tokens are the tail of
    tokenising prompt + answer, the rule the engine uses for an option label's tokens.
    """
    prompt = _chat_text(tokenizer, system, user)
    full = _chat_text(tokenizer, system, user, answer)
    if not full.startswith(prompt):
        raise CultureSPAError(
            "the chat template renders the conversation with an answer differently from the prompt "
            "without one; cannot mask the prompt"
        )
    completion = full[len(prompt):]
    if not completion.startswith(answer):
        raise CultureSPAError(f"the chat template does not write the assistant answer right after the prompt: {completion!r}")
    prompt_ids = _encode(tokenizer, prompt)
    # the answer tokens as the engine reads option labels: tokenise prompt + answer, keep the tail
    with_answer = _encode(tokenizer, prompt + answer)
    if with_answer[: len(prompt_ids)] == prompt_ids and len(with_answer) > len(prompt_ids):
        answer_ids = with_answer[len(prompt_ids):]
    else:
        answer_ids = _encode(tokenizer, answer)
    rest_ids = tokenizer(completion[len(answer):], add_special_tokens=False)["input_ids"]
    special = _special_ids(tokenizer)
    end = next((i for i, t in enumerate(rest_ids) if t in special), None)
    if end is None:  # no special end-of-turn token: keep the non-whitespace tail
        rest_ids = tokenizer(completion[len(answer):].rstrip(), add_special_tokens=False)["input_ids"]
        if not rest_ids and tokenizer.eos_token_id is not None:
            rest_ids = [tokenizer.eos_token_id]
    else:
        rest_ids = rest_ids[: end + 1]
    target = answer_ids + rest_ids
    input_ids = prompt_ids + target
    labels = [IGNORE_INDEX] * len(prompt_ids) + target
    return {"input_ids": input_ids, "labels": labels, "attention_mask": [1] * len(input_ids)}


def record_item(record: Mapping):
    """A pair record as the survey item its question renders from."""
    from .filters import first_number
    from .wvs import Item

    try:
        options = tuple(record["options"])
        return Item(
            qid=str(record["qid"]),
            text=record["question"],
            options=options,
            first=int(record.get("first", first_number(options))),
            topic=record.get("topic"),
        )
    except KeyError as e:
        raise CultureSPAError(f"pair record {record.get('qid', '?')}: missing field {e}") from e


def build_examples(
    tokenizer, records: Iterable[Mapping], system_for: Callable[[str], str], max_length: int
) -> list[dict]:
    """Training examples from pair records; too-long ones are dropped with a warning."""
    from .prompts import render_question

    examples, too_long, systems = [], 0, {}
    for rec in records:
        culture = rec["culture"]
        if culture not in systems:
            systems[culture] = system_for(culture)
        ex = build_example(tokenizer, systems[culture], render_question(record_item(rec)), str(rec["answer"]))
        if len(ex["input_ids"]) > max_length:
            too_long += 1
            continue
        examples.append(ex)
    if too_long:
        log.warning("dropped %d training examples longer than max_length=%d tokens", too_long, max_length)
    return examples


class _ListDataset:
    """A map-style dataset over pre-tokenised examples (torch's Dataset protocol)."""

    def __init__(self, examples: Sequence[dict]):
        self.examples = list(examples)

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]


def collate(pad_id: int):
    """Right-pad input_ids (pad id), labels (-100) and attention_mask (0)."""
    import torch

    def fn(batch: Sequence[dict]) -> dict:
        n = max(len(b["input_ids"]) for b in batch)
        out = {"input_ids": [], "labels": [], "attention_mask": []}
        for b in batch:
            k = n - len(b["input_ids"])
            out["input_ids"].append(b["input_ids"] + [pad_id] * k)
            out["labels"].append(b["labels"] + [IGNORE_INDEX] * k)
            out["attention_mask"].append(b["attention_mask"] + [0] * k)
        return {key: torch.tensor(v, dtype=torch.long) for key, v in out.items()}

    return fn


# --- model ------------------------------------------------------------------------------------


def _compute_dtype(setting: str, device: str):
    """The training compute dtype: an explicit setting wins; "auto" as inference picks it
    (``models.resolve_dtype``: bf16 on GPUs that have it, else float16; bf16 on CPUs that compute
    it natively, else float32)."""
    from .models import resolve_dtype

    return resolve_dtype(setting, device)


def _load_trainable(model_path: str | Path, settings: TrainSettings, device: str):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = _compute_dtype(settings.compute_dtype, device)
    kwargs: dict = {"dtype": dtype}
    if settings.quantization == "4bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    else:
        kwargs["dtype"] = torch.float32 if device == "cpu" else dtype
    kwargs["device_map"] = "auto" if device == "cuda" else "cpu"
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_path), **kwargs)
    except OSError as e:
        raise CultureSPAError(f"cannot load model {model_path}: {e}") from e
    model.config.use_cache = False
    if settings.quantization:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=settings.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    target = settings.target_modules
    lora = LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=target if isinstance(target, str) else list(target),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    return model, dtype


# --- checkpoints and outputs ------------------------------------------------------------------


def _fingerprint(model_path, settings: TrainSettings, examples: Sequence[dict]) -> dict:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex["input_ids"], ex["labels"]]).encode())
    return {
        "model_path": str(Path(model_path).resolve()) if Path(model_path).exists() else str(model_path),
        "settings": settings.to_dict(),
        "n_examples": len(examples),
        "examples_sha256": h.hexdigest(),
    }


def last_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoint-N`` folder, or None. The Trainer writes
    ``trainer_state.json`` last, so a folder without a readable one was cut off mid-save (the job
    was killed): it is removed, and the one before it is used."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return None
    found = []
    for p in checkpoint_dir.iterdir():
        name, _, step = p.name.rpartition("-")
        if p.is_dir() and name == "checkpoint" and step.isdecimal():
            found.append((int(step), p))
    for _, path in sorted(found, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text())
            return path
        except (OSError, json.JSONDecodeError):
            log.warning("%s is incomplete (the job stopped while saving it): removing it", path)
            shutil.rmtree(path, ignore_errors=True)
    return None


def _prepare_checkpoint_dir(checkpoint_dir: Path, fingerprint: dict) -> Path | None:
    """The checkpoint to resume from. Checkpoints of a different run (other data, settings or
    model) are discarded rather than resumed."""
    stamp = checkpoint_dir / CHECKPOINT_FINGERPRINT
    resume = last_checkpoint(checkpoint_dir)
    if checkpoint_dir.exists():
        old = None
        if stamp.is_file():
            try:
                old = json.loads(stamp.read_text())
            except json.JSONDecodeError:
                old = None
        if old != fingerprint:
            if resume is not None or any(checkpoint_dir.iterdir()):
                log.warning("%s holds checkpoints of a different run; starting afresh", checkpoint_dir)
            shutil.rmtree(checkpoint_dir)
            resume = None
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    io.write_json(stamp, fingerprint)
    return resume


def _save_adapter_atomically(model, out_dir: Path, extra_files: Mapping[str, object]) -> None:
    with io.atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp))
        config = tmp / "adapter_config.json"
        if config.is_file():  # peft writes target_modules from a set: in a random order per process
            saved = json.loads(config.read_text())
            if isinstance(saved.get("target_modules"), list):
                saved["target_modules"] = sorted(saved["target_modules"])
                config.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
        for name, obj in extra_files.items():
            (tmp / name).write_text(json.dumps(obj, indent=2) + "\n")


def loss_frame(log_history: Sequence[Mapping]):
    """The training-loss curve (step, epoch, loss, learning_rate) from ``trainer.state.log_history``."""
    import pandas as pd

    rows = [
        {"step": int(e["step"]), "epoch": e.get("epoch"), "loss": e["loss"], "learning_rate": e.get("learning_rate")}
        for e in log_history
        if "loss" in e and "step" in e
    ]
    return pd.DataFrame(rows, columns=LOSS_COLUMNS)


def mean_logged_loss(curve) -> float | None:
    """The mean training loss over the logged steps, each logged value weighted by the steps it
    covers. The Trainer's own ``training_loss`` covers only the steps of the last run, so after a
    resume it would differ from an uninterrupted run's; the curve (restored from the checkpoint)
    covers them all."""
    if not len(curve):
        return None
    steps = curve["step"].astype(float).to_numpy()
    weights = steps - [0.0, *steps[:-1]]
    return float((curve["loss"].to_numpy() * weights).sum() / weights.sum())


def peak_memory_mb(device: str) -> dict:
    """Peak resident set size of this process (MB) and, on CUDA, peak allocated GPU memory."""
    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


# --- training ---------------------------------------------------------------------------------


def train_adapter(
    model_path: str | Path,
    records: Sequence[Mapping],
    system_for: Callable[[str], str],
    out_dir: str | Path,
    settings: TrainSettings,
    checkpoint_dir: str | Path,
    loss_csv: str | Path,
    stats_json: str | Path | None = None,
    callbacks: Sequence = (),
) -> dict:
    """Train one LoRA adapter on ``records`` (pair records) and save it to ``out_dir``.

    ``system_for(culture_code)`` gives the system prompt of a record's culture (P1, or P2 for the
    cross-cultural-thinking variant). ``checkpoint_dir`` holds the Trainer's checkpoints: if it has
    one from the same run (same model, settings and examples), training resumes from it. Writes,
    each atomically: the adapter folder (with ``train_stats.json`` and ``train_settings.json``),
    ``loss_csv`` and, if given, ``stats_json``. Returns the run statistics.
    """
    started = time.perf_counter()
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir)
    records = list(records)
    if not records:
        raise CultureSPAError(f"no training examples for {out_dir} (0 pair records): nothing to fine-tune on")

    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    from .models import load_tokenizer, pick_device
    set_seed(settings.seed)
    tokenizer = load_tokenizer(model_path)
    examples = build_examples(tokenizer, records, system_for, settings.max_length)
    if not examples:
        raise CultureSPAError(
            f"no training examples for {out_dir}: all {len(records)} pair records are longer than "
            f"max_length={settings.max_length} tokens"
        )
    resume = _prepare_checkpoint_dir(checkpoint_dir, _fingerprint(model_path, settings, examples))
    device = pick_device()
    model, dtype = _load_trainable(model_path, settings, device)
    trainable, total = model.get_nb_trainable_parameters()
    log.info(
        "QLoRA on %s: %d examples, device %s, compute %s, %d trainable of %d parameters (%.2f%%), "
        "batch %d x %d accumulation = %d",
        model_path, len(examples), device, str(dtype).replace("torch.", ""), trainable, total,
        100 * trainable / total, settings.per_device_batch, settings.grad_accum, settings.effective_batch,
    )
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=settings.per_device_batch,
        gradient_accumulation_steps=settings.grad_accum,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        optim=settings.optim,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16 and device == "cuda",
        use_cpu=device == "cpu",
        logging_strategy="steps",
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        report_to="none",
        seed=settings.seed,
        data_seed=settings.seed,
        disable_tqdm=not sys.stderr.isatty(),
        remove_unused_columns=False,
        dataloader_num_workers=0,
        gradient_checkpointing=False,  # enabled on the model above when asked for
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_ListDataset(examples),
        data_collator=collate(tokenizer.pad_token_id),
        callbacks=[_make_loss_logger(), *callbacks],
    )
    resumed_from = 0
    if resume is not None:
        resumed_from = int(resume.name.rsplit("-", 1)[-1])
        log.info("resuming from %s (step %d)", resume, resumed_from)
    train_started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    train_seconds = time.perf_counter() - train_started

    curve = loss_frame(trainer.state.log_history)
    steps = int(trainer.state.global_step)
    stats = {
        "n_examples": len(examples),
        "n_records": len(records),
        "steps": steps,
        "steps_this_run": steps - resumed_from,
        "resumed_from_step": resumed_from,
        "epochs": float(trainer.state.epoch or 0.0),
        "final_loss": float(curve["loss"].iloc[-1]) if len(curve) else None,
        "train_loss": mean_logged_loss(curve),
        "train_seconds": round(train_seconds, 2),
        "steps_per_second": round((steps - resumed_from) / train_seconds, 4) if train_seconds > 0 else None,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "device": device,
        "compute_dtype": str(dtype).replace("torch.", ""),
        "trainable_parameters": int(trainable),
        **peak_memory_mb(device),
    }
    _save_adapter_atomically(
        trainer.model, out_dir, {STATS_FILE: stats, "train_settings.json": settings.to_dict()}
    )
    io.write_csv(loss_csv, curve)
    if stats_json is not None:
        io.write_json(stats_json, stats)
    if not settings.keep_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info(
        "adapter saved to %s: %d steps, final loss %s, %.1f s, peak RSS %.0f MB",
        out_dir, steps, stats["final_loss"], stats["wall_seconds"], stats["peak_rss_mb"],
    )
    return stats


def _make_loss_logger():
    from transformers import TrainerCallback

    class LossLogger(TrainerCallback):
        """One log line per logging step (loss, learning rate), whatever tqdm does."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                log.info(
                    "step %d/%d epoch %.3f loss %.4f lr %.3g",
                    state.global_step, state.max_steps, logs.get("epoch", state.epoch or 0.0),
                    logs["loss"], logs.get("learning_rate", float("nan")),
                )

    return LossLogger()


# --- inference --------------------------------------------------------------------------------


def load_for_inference(model_path: str | Path, adapter_dir: str | Path, dtype: str = "auto", device: str | None = None):
    """The base model with the adapter merged into its weights (``merge_and_unload``), in eval mode.

    The base is loaded unquantised (the paper merges into the bf16 model) on ``device`` (default:
    GPU when present), so the result is an ordinary transformers model for the answering engine.
    """
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise CultureSPAError(f"{adapter_dir}: not a LoRA adapter folder (no adapter_config.json)")
    from peft import PeftModel

    from .models import load_model

    base = load_model(model_path, dtype=dtype, device=device)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    model = model.merge_and_unload()
    model.eval()
    # the engine names a model after config._name_or_path (part of its resume fingerprint):
    # a merged model must not pass for its base
    model.config._name_or_path = f"{model_path}+{adapter_dir}"
    return model


def adapter_stats(adapter_dir: str | Path) -> dict:
    return io.read_json(Path(adapter_dir) / STATS_FILE)
