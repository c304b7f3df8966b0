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

An adapter with no pair to train on (a small run, or a model whose culture-aware answers never
differ from its culture-unaware ones for a culture) is not an error: its outputs are written as
"not trained" (the adapter folder holds ``not_trained.json`` with the reason, ``loss.csv`` only its
header, ``train_stats.json`` status and reason), so the run goes on; ``adapter_status`` reads it
back, and its evaluations and table cells are missing with that reason (``untrained.py``).
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
NOT_TRAINED_FILE = "not_trained.json"  # in the adapter folder, instead of the adapter, when nothing was trained
TRAINED, NOT_TRAINED = "trained", "not_trained"  # train_stats.json "status"
PAIR_SET_NAMES = {"crqpc": "culture-related pairs", "rds": "RDS pairs", "cds": "CDS pairs"}
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
    "max_length": 4096,  # the authors' cutoff_len; longer examples are truncated, not dropped
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

# The authors' setting exactly: plain LoRA on the bf16 base (LLaMA-Factory, bf16: true, no quantization_bit).
# Needs the full-precision base in GPU memory (~16 GB for Llama-3-8B plus activations).
PAPER_BF16_PRESET: dict = {**PAPER_PRESET, "quantization": None, "compute_dtype": "bfloat16"}

PRESETS = {"paper": PAPER_PRESET, "paper_bf16": PAPER_BF16_PRESET, "demo": DEMO_PRESET}


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
    max_length: int = 4096  # longer examples are truncated as LLaMA-Factory's cutoff_len (build_examples), counted
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


def cutoff_lengths(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """How many prompt (source) and completion (target) tokens an example keeps under
    ``cutoff_len``: LLaMA-Factory's rule (``infer_seqlen``, data/processors/processor_utils.py, the
    version the authors trained with, cutoff_len 4096). A short completion is kept whole and the
    prompt cut; a short prompt is kept whole and the completion cut; otherwise both are cut in
    proportion to their lengths."""
    if target_len * 2 < cutoff_len:
        max_target = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target = cutoff_len - source_len
    else:
        max_target = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target = min(max_target, target_len)
    new_source = min(max(cutoff_len - new_target, 0), source_len)
    return new_source, new_target


def truncate_example(example: Mapping, max_length: int) -> dict:
    """An example cut to ``max_length`` tokens as LLaMA-Factory cuts (``cutoff_lengths``): the prompt
    and the completion each lose tokens from their right end, so the prompt's start (chat template,
    system prompt) is kept. ``truncated`` says whether anything was cut."""
    labels = example["labels"]
    n_source = next((i for i, t in enumerate(labels) if t != IGNORE_INDEX), len(labels))
    n_target = len(labels) - n_source
    keep_source, keep_target = cutoff_lengths(n_source, n_target, max_length)
    keep = list(range(keep_source)) + list(range(n_source, n_source + keep_target))
    return {
        "input_ids": [example["input_ids"][i] for i in keep],
        "labels": [labels[i] for i in keep],
        "attention_mask": [1] * len(keep),
        "truncated": len(keep) < len(labels),
    }


def build_examples(
    tokenizer, records: Iterable[Mapping], system_for: Callable[[str], str], max_length: int
) -> list[dict]:
    """Training examples from pair records; one longer than ``max_length`` tokens is truncated as
    the authors' LLaMA-Factory truncates (``truncate_example``), never dropped, and flagged
    ``truncated`` (counted in the run statistics)."""
    from .prompts import render_question

    examples, systems = [], {}
    for rec in records:
        culture = rec["culture"]
        if culture not in systems:
            systems[culture] = system_for(culture)
        ex = build_example(tokenizer, systems[culture], render_question(record_item(rec)), str(rec["answer"]))
        examples.append(truncate_example(ex, max_length))
    n_truncated = sum(ex["truncated"] for ex in examples)
    if n_truncated:
        log.warning("truncated %d of %d training examples to max_length=%d tokens (prompt and answer cut from the "
                    "right, as LLaMA-Factory's cutoff_len)", n_truncated, len(examples), max_length)
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
    """Right-pad input_ids (pad id), labels (-100) and attention_mask (0); and keep the output layer
    to the positions that predict a label token.

    A training example is a ~100-token prompt and an answer of a few tokens, and only the answer is
    learned; the logits over SmolLM2's 49,152-token vocabulary at every other position were a quarter
    of a step's arithmetic and most of its memory. ``logits_to_keep`` (the positions p whose next
    token is a label in some row of the batch) makes the model compute only those, and
    ``shift_labels`` are the labels aligned with them, so the loss (and the Trainer's token count for
    gradient accumulation) is the one the full logits give, with the same tokens counted.
    """
    import torch

    def fn(batch: Sequence[dict]) -> dict:
        n = max(len(b["input_ids"]) for b in batch)
        out = {"input_ids": [], "labels": [], "attention_mask": []}
        for b in batch:
            k = n - len(b["input_ids"])
            out["input_ids"].append(b["input_ids"] + [pad_id] * k)
            out["labels"].append(b["labels"] + [IGNORE_INDEX] * k)
            out["attention_mask"].append(b["attention_mask"] + [0] * k)
        tensors = {key: torch.tensor(v, dtype=torch.long) for key, v in out.items()}
        following = tensors["labels"][:, 1:]
        keep = (following != IGNORE_INDEX).any(dim=0).nonzero().flatten()
        tensors["logits_to_keep"] = keep
        tensors["shift_labels"] = following[:, keep]
        return tensors

    return fn


# --- model ------------------------------------------------------------------------------------


def _compute_dtype(setting: str, device: str):
    """The training compute dtype: an explicit setting wins; "auto" as inference picks it
    (``models.resolve_dtype``: bf16 on GPUs that have it, else float16; bf16 on CPUs that compute
    it natively, else float32)."""
    from .models import resolve_dtype

    return resolve_dtype(setting, device)


def _load_trainable(spec, settings: TrainSettings, device: str):
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
        model = AutoModelForCausalLM.from_pretrained(spec.path, revision=spec.revision, **kwargs)
    except OSError as e:
        raise CultureSPAError(f"cannot load model {spec.path}: {e}") from e
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


def _fingerprint(model, settings: TrainSettings, examples: Sequence[dict]) -> dict:
    from .models import as_spec

    spec = as_spec(model)
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex["input_ids"], ex["labels"]]).encode())
    path = spec.path
    return {
        "model_path": str(Path(path).resolve()) if Path(path).exists() else str(path),
        "revision": spec.revision,
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
    model,
    records: Sequence[Mapping],
    system_for: Callable[[str], str],
    out_dir: str | Path,
    settings: TrainSettings,
    checkpoint_dir: str | Path,
    loss_csv: str | Path,
    stats_json: str | Path | None = None,
    callbacks: Sequence = (),
    empty_reason: str | None = None,
) -> dict:
    """Train one LoRA adapter of ``model`` (a ``models.ModelSpec`` or its dict; its chat template
    renders the examples, as it renders evaluation prompts) on ``records`` (pair records) and save
    it to ``out_dir``.

    ``system_for(culture_code)`` gives the system prompt of a record's culture (P1, or P2 for the
    cross-cultural-thinking variant). ``checkpoint_dir`` holds the Trainer's checkpoints: if it has
    one from the same run (same model, settings and examples), training resumes from it. Writes,
    each atomically: the adapter folder (with ``train_stats.json`` and ``train_settings.json``),
    ``loss_csv`` and, if given, ``stats_json``. Returns the run statistics. With no record, the
    same outputs are written as not trained (``write_not_trained``) with ``empty_reason``.
    """
    started = time.perf_counter()
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir)
    records = list(records)
    if not records:
        if not settings.keep_checkpoints:  # checkpoints of an earlier run on other data
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return write_not_trained(out_dir, loss_csv, stats_json, empty_reason or f"0 pair records for {out_dir}")

    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    from .models import as_spec, pick_device

    spec = as_spec(model)
    set_seed(settings.seed)
    tokenizer = spec.load_tokenizer()
    examples = build_examples(tokenizer, records, system_for, settings.max_length)
    resume = _prepare_checkpoint_dir(checkpoint_dir, _fingerprint(spec, settings, examples))
    device = pick_device()
    model, dtype = _load_trainable(spec, settings, device)
    trainable, total = model.get_nb_trainable_parameters()
    log.info(
        "QLoRA on %s: %d examples, device %s, compute %s, %d trainable of %d parameters (%.2f%%), "
        "batch %d x %d accumulation = %d",
        spec.name, len(examples), device, str(dtype).replace("torch.", ""), trainable, total,
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
        "status": TRAINED,
        "n_examples": len(examples),
        "n_records": len(records),
        "n_truncated": sum(ex["truncated"] for ex in examples),
        "max_length": settings.max_length,
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


def no_pairs_reason(country: str | None, data: str = "crqpc", n_all: int = 0, percent: int = 100) -> str:
    """Why an adapter has nothing to train on: '0 culture-related pairs for NGA' (``country`` None:
    the culture-joint adapter, 'for any culture'); with ``n_all`` pairs of which ``percent`` % rounds to 0,
    '0 of the 2 culture-related pairs for any culture at 10%'."""
    what = PAIR_SET_NAMES.get(data, f"{data} pairs")
    who = country or "any culture"
    if n_all and percent < 100:
        return f"0 of the {n_all} {what} for {who} at {percent}%"
    return f"0 {what} for {who}"


def write_not_trained(out_dir: str | Path, loss_csv: str | Path, stats_json: str | Path | None, reason: str,
                      n_pairs: int = 0) -> dict:
    """The declared outputs of a training job that had nothing to train on, each written atomically:
    ``out_dir`` holding only ``not_trained.json`` (status, reason, n_pairs), ``loss_csv`` with its
    header and no rows, ``stats_json`` with the status and reason. Returns the statistics."""
    import pandas as pd

    marker = {"status": NOT_TRAINED, "reason": reason, "n_pairs": n_pairs}
    with io.atomic_dir(out_dir) as tmp:
        (tmp / NOT_TRAINED_FILE).write_text(json.dumps(marker, indent=2) + "\n")
    io.write_csv(loss_csv, pd.DataFrame(columns=LOSS_COLUMNS))
    stats = {**marker, "n_records": n_pairs, "n_examples": 0, "steps": 0}
    if stats_json is not None:
        io.write_json(stats_json, stats)
    log.warning("%s: not trained: %s (its evaluations are recorded as not answered)", out_dir, reason)
    return stats


@dataclass(frozen=True)
class AdapterStatus:
    trained: bool
    reason: str | None = None  # why it was not trained
    n_pairs: int | None = None


def adapter_status(adapter_dir: str | Path) -> AdapterStatus:
    """Whether a step-4 adapter folder holds a trained adapter or the not-trained marker (and why)."""
    adapter_dir = Path(adapter_dir)
    marker = adapter_dir / NOT_TRAINED_FILE
    if marker.is_file():
        info = io.read_json(marker)
        return AdapterStatus(False, info.get("reason") or "no reason recorded", info.get("n_pairs"))
    if (adapter_dir / "adapter_config.json").is_file():
        return AdapterStatus(True)
    raise CultureSPAError(
        f"{adapter_dir}: neither a LoRA adapter (adapter_config.json) nor a not-trained marker ({NOT_TRAINED_FILE})"
    )


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


def load_for_inference(model, adapter_dir: str | Path, device: str | None = None, dtype: str | None = None):
    """The base model (a ``models.ModelSpec`` or its dict) with the adapter merged into its
    weights (``merge_and_unload``), in eval mode.

    The base is loaded unquantised (the paper merges into the bf16 model) on ``device`` (default:
    GPU when present), so the result is an ordinary transformers model for the answering engine.
    ``dtype`` overrides the specification's.
    """
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise CultureSPAError(f"{adapter_dir}: not a LoRA adapter folder (no adapter_config.json)")
    from peft import PeftModel

    from .models import as_spec, load_model

    spec = as_spec(model)
    model_path = spec.path
    base = load_model(model_path, dtype=dtype or spec.dtype, device=device, revision=spec.revision)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    model = model.merge_and_unload()
    model.eval()
    # the engine names a model after config._name_or_path (part of its resume fingerprint):
    # a merged model must not pass for its base
    model.config._name_or_path = f"{model_path}+{adapter_dir}"
    return model


# --- the fine-tuning job ----------------------------------------------------------------------


def train_variant(model, pairs_path: str, setting: str, percent: int, cultures: Sequence[Mapping], survey_files,
                  preset: Mapping, scope: str, seed: int, checkpoint_dir: str, adapter_out: str, loss_out: str,
                  stats_out: str, similarity_file: str | None = None, country: str | None = None,
                  data: str = "crqpc") -> dict:
    """Step 4 for one adapter: ``percent`` % of the pair records in ``pairs_path`` (a nested,
    seeded subsample below 100), each example's system prompt the P1 (or, for ``setting``
    cross_culture, the P2) prompt of its culture; ``preset``: the training preset's settings;
    ``scope``: "joint" or "specific" (its effective batch); ``country``: a culture-specific
    adapter's culture, ``data``: the pair set (crqpc, rds, cds), both for the reason written when
    there is nothing to train on (the run goes on, the adapter recorded as not trained)."""
    from . import pairs
    from .methods import training_system_prompts

    records = io.read_jsonl(pairs_path)
    n_all = len(records)
    if percent < 100:
        records = pairs.nested_fraction(records, percent / 100, seed)
    settings = TrainSettings.from_preset(preset, variant=scope)
    log.info("training a %s adapter on %d pairs (%d%% of %s)", scope, len(records), percent, pairs_path)
    system_for = training_system_prompts(setting, cultures, survey_files, similarity_file)
    stats = train_adapter(model, records, system_for, adapter_out, settings, checkpoint_dir, loss_out, stats_out,
                          empty_reason=no_pairs_reason(country, data, n_all, percent))
    log.info("training stats: %s", stats)
    return stats
