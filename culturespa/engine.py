"""The answering engine: every stage that asks the model something goes through here.

Two modes answer multiple-choice prompts:

``logprob`` (the default) generates nothing. It reads, from one batched forward pass, the
probability the model gives to each option label as the first tokens of its reply:

* A label is the decimal string of the option number (``"3"``, ``"10"``), tokenised as it would
  be right after the chat template's assistant header. Labels may span several tokens
  (SmolLM2 splits every digit; Llama 3 keeps ``"10"`` whole): the probability of a label is the
  product of its tokens' conditional probabilities, P("10") = P("1") * P("0" | "1").
* A label that is the start of another option's label ("1" when "10" is an option) counts only
  as a complete answer: its probability is multiplied by 1 - D(label), where D(label) is the
  next-token mass on tokens whose text starts with 0-9. So P("1") is "1 followed by a non-digit
  or the end", and "1" and "10" are disjoint events that never double count. Other labels are
  read as the spec reads them, the first reply tokens ("3" of a 1-4 scale).
* All the conditionals come from the same forward pass: after each prompt, the batch carries
  one extra slot per node of the prompt's label trie that a conditional is read after ("1" for
  P("0" | "1") and D("1")), with a 4-D attention mask letting a slot see the prompt and its own
  ancestors only (tree attention), so no second pass and no cache copies are needed. A 1-4
  scale needs no slot at all; a 1-10 scale needs one.
* ``option_mass`` is the sum of the label probabilities before renormalising (how much of the
  model's belief fell on valid answers at all); ``probs`` are renormalised over the options.
* ``choice`` is drawn from ``probs`` sharpened to temperature 0.6 (p^(1/0.6), renormalised),
  with an RNG seeded from (seed, key), so it does not depend on batching; or the argmax.

``generate`` (paper-faithful) samples a free-text reply (temperature 0.6, top_p 0.9, 256 new
tokens by default) and parses it with ``parsing.parse_paper``; an unparsable reply gives
``choice`` None and is counted, never dropped.

Speed: prompts are sorted by token length and cut into batches of at most ``batch_size`` (a
number, or "auto": on a GPU as many rows as its free memory holds for the job's longest prompt, see
``auto_batch_size``; 16 on CPU) that keep padding low (``plan_batches``; on a GPU the fewest
batches, since each forward pass there has a fixed launch cost), the token prefix
shared by every prompt of a job (chat-template start and system prompt) is run once and its
KV cache reused by every batch, and only the logits of the answer positions are computed.
The final norm and output layer run in float32 on the rows that are read, whatever the model's
dtype (``Float32Head``: bf16 logits would quantise the probabilities). The decoder runs as the
model's own forward (SDPA attention), except for bf16
Llama-architecture models (Llama, Mistral, Qwen2) on a CPU with native bf16, where
``packed.PackedDecoder`` was measured faster (``forward="auto"``; see ``packed``): the batch's
tokens packed without padding for the linear layers, fused q/k/v and gate/up weights laid out for
oneDNN, and for large jobs ``torch.compile`` kernels (``compile``); results differ from the
model's own forward by rounding only.

``answer_to_file`` makes a job resumable: batches are fixed from the full prompt list, each
finished batch is appended to ``<out>.partial`` (fsync'ed), a restart skips the finished batches,
and the final JSONL is written atomically in the original prompt order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import sys
import time
import weakref
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .errors import ConfigError, CultureSPAError
from .io import write_jsonl
from .packed import PackedDecoder, Part, additive_mask, kernels, kernels_off_reason
from .parsing import PAPER_MAX_ANSWER, parse_paper
from .seeds import derive_seed, draw_choice, sharpen  # noqa: F401  (the engine's draws; re-exported)
from .resume import Journal

log = logging.getLogger(__name__)

MODES = ("logprob", "generate")
CHOICE_TEMPERATURE = 0.6  # the paper's sampling temperature, applied to the option distribution
# compile="auto": below this many prompts, compiling (~11 s cold, a few s from the disk cache)
# costs more than the 7-12 % of the packed pass it saves (~3 ms per prompt for SmolLM2 on 2 cores)
COMPILE_MIN_PROMPTS = 2000
CPU_BATCH_SIZE = 16  # batch_size="auto" on CPU: 8-16 measured equally fast (benchmarks/README.md)
MAX_AUTO_BATCH = 256  # batch_size="auto" on a GPU: at most this many prompts per batch
_DIGITS = frozenset("0123456789")


@dataclass
class Prompt:
    """One question to the model. ``options``: the valid option numbers (empty: free-form)."""

    key: str
    system: str
    user: str
    options: list[int] = field(default_factory=list)


def chat_text(tokenizer, system: str | None, user: str, assistant: str | None = None) -> str:
    """The model's chat template applied to (system, user[, assistant]).

    Without ``assistant`` the text ends with the generation prompt (the assistant header);
    with it, the text is a complete training example. The one chat-template path of the project.
    """
    messages = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user})
    if assistant is not None:
        messages.append({"role": "assistant", "content": assistant})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=assistant is None)


@dataclass
class _Job:
    """A prompt list prepared once: token ids, the fixed batch plan, the shared prefix."""

    prompts: list[Prompt]
    texts: list[str]
    ids: list[list[int]]
    batches: list[list[int]]  # indices into prompts, fixed before anything is skipped
    prefix_len: int
    labels: list[list[tuple[int, ...]]] | None = None  # per prompt, per option: label token ids
    boundary: list[list[bool]] | None = None  # per prompt, per option: label starts another label
    prefix_kv: tuple | None = None  # (the backend that computed it, per layer (keys, values))
    decoder: object | None = None  # the packed decoder this job uses (checked once per job)
    forward: str | None = None  # the logprob pass this job uses, "packed" or "hf" (decided once)
    compiled: bool | None = None  # whether the packed pass uses compiled kernels (decided once)
    batch_size: int | None = None  # prompts per batch of this job's plan (batch_size="auto": chosen here)


class Engine:
    """A model and its tokenizer, answering prompts in batches.

    ``choice``: "sample" (temperature ``choice_temperature`` over the option distribution) or
    "argmax". ``forward`` (logprob mode): "auto" (the packed decoder where it gains, bf16 on a CPU
    with native bf16; else the model's own forward), "hf" or "packed". ``compile`` (packed pass): "always" runs its
    element-wise stretches as ``torch.compile`` kernels (7-12 % faster on CPU; the first compilation
    takes ~11 s, later processes load it from inductor's disk cache in a few), "never" keeps them
    eager, "auto" compiles for jobs of at least ``COMPILE_MIN_PROMPTS`` prompts, where the saving
    outweighs the compilation. Without a C++ compiler, or after a compile error (logged), the
    pass runs eagerly. ``temperature``/``top_p``/``top_k``/``max_new_tokens``: generate-mode
    sampling (``top_k`` None keeps the library default, as the paper's scripts did).
    ``batch_size``: prompts per batch, or "auto": ``auto_batch_size`` from the GPU's free memory,
    fixed once per job (``CPU_BATCH_SIZE`` on CPU).
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        batch_size: int | str = 16,
        prefix_cache: bool = True,
        sort_by_length: bool = True,
        choice: str = "sample",
        choice_temperature: float = CHOICE_TEMPERATURE,
        temperature: float = 0.6,
        top_p: float = 0.9,
        top_k: int | None = None,
        max_new_tokens: int = 256,
        attention: str = "auto",
        forward: str = "auto",
        compile: str = "auto",
        name: str | None = None,
    ):
        if batch_size != "auto" and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ConfigError(f"batch_size: must be an integer >= 1 or 'auto', got {batch_size!r}")
        if choice not in ("sample", "argmax"):
            raise ConfigError(f"choice: {choice!r} is not 'sample' or 'argmax'")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.prefix_cache = prefix_cache
        self.sort_by_length = sort_by_length
        self.choice = choice
        self.choice_temperature = choice_temperature
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.max_new_tokens = max_new_tokens
        if attention not in ("auto", "eager", "sdpa", "model"):
            raise ConfigError(f"attention: {attention!r} is not one of auto, eager, sdpa, model")
        self.attention = attention
        if forward not in ("auto", "hf", "packed"):
            raise ConfigError(f"forward: {forward!r} is not one of auto, hf, packed")
        if forward == "packed" and not PackedDecoder.supports(model):
            raise ConfigError("forward: 'packed' needs an unquantised Llama, Mistral or Qwen2 decoder")
        self.forward_impl = forward
        if compile not in ("auto", "always", "never"):
            raise ConfigError(f"compile: {compile!r} is not one of auto, always, never")
        self.compile = compile
        self._packed: PackedDecoder | None = None
        self.name = name or getattr(getattr(model, "config", None), "_name_or_path", "") or "model"
        self._digit_mask = None
        self._digit_idx = None
        self._label_cache: dict[tuple[str, str], tuple[int, ...]] = {}

    @classmethod
    def load(
        cls,
        path_or_hub_id: str | Path,
        dtype: str = "auto",
        device: str | None = None,
        chat_template: str | None = None,
        quantization: str | None = None,
        **kwargs,
    ) -> "Engine":
        from .models import load

        model, tokenizer = load(
            path_or_hub_id, dtype=dtype, device=device, chat_template=chat_template, quantization=quantization
        )
        return cls(model, tokenizer, name=kwargs.pop("name", str(path_or_hub_id)), **kwargs)

    # --- settings that change results (part of a resumable job's fingerprint) ----------------

    def settings(self) -> dict:
        return {
            "model": self.name,
            "dtype": str(getattr(self.model, "dtype", "")),
            "batch_size": self.batch_size,
            "prefix_cache": self.prefix_cache,
            "sort_by_length": self.sort_by_length,
            "choice": self.choice,
            "choice_temperature": self.choice_temperature,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_new_tokens": self.max_new_tokens,
            "attention": self.attention,
            "forward": self._forward_kind(),
            "compile": self.compile,
        }

    def _forward_kind(self) -> str:
        """The logprob pass: "packed" (``PackedDecoder``) or "hf" (the model's own forward).
        "auto": packed only where it was measured to gain (``PackedDecoder.gains_here``: bf16 on a
        CPU with native bf16, a supported model whose fused weight copy stays under 2 GiB), with
        eager-style attention; else hf (float32 on a CPU, any GPU)."""
        if self.forward_impl != "auto":
            return self.forward_impl
        if self.attention in ("auto", "eager") and PackedDecoder.supports(self.model):
            gains, why = PackedDecoder.gains_here(self.model)
            if gains and PackedDecoder.copy_bytes(self.model) <= 2 * 2**30:
                return "packed"
            log.debug("logprob pass: the model's own forward (%s)", why)
        return "hf"

    def _job_forward(self, job: _Job) -> str:
        """``_forward_kind`` for this job; it walks every layer, so once per job, not per batch."""
        if job.forward is None:
            job.forward = self._forward_kind()
        return job.forward

    def _compiled(self, job: _Job) -> bool:
        """Whether this job's packed pass uses the compiled kernels (decided once per job, so that
        a job is computed one way throughout; part of a resumable job's fingerprint)."""
        if job.compiled is None:
            want = self.compile == "always" or (self.compile == "auto" and len(job.prompts) >= COMPILE_MIN_PROMPTS)
            job.compiled = bool(want and self._job_forward(job) == "packed" and kernels() is not None)
            if want and not job.compiled and kernels_off_reason():
                log.info("compiled kernels not used: %s", kernels_off_reason())
        return job.compiled

    def _packed_decoder(self, job: _Job) -> "PackedDecoder":
        """The packed decoder, rebuilt when the model's parameters changed since it was built
        (checked once per job)."""
        if job.decoder is None:
            if self._packed is None or self._packed.stale():
                self._packed = PackedDecoder(self.model)
            job.decoder = self._packed
        return job.decoder

    def _logprob_attention(self) -> str:
        """Attention implementation for the tree-masked logprob pass of the model's own forward.
        "auto": sdpa on CPU; on GPU the model's own if sdpa or eager, else sdpa (flash kernels
        take no tree mask). On CPU sdpa's fused kernel beats eager attention on long prompts in
        every dtype measured (float32, one Zen 3 core: 4.9x per layer on 400-token P3 suffixes,
        1.6x on 60-token P1 ones; bf16 without native support: 1.13x on P1 prompts); only for
        short bf16 prompts on a native-bf16 CPU was eager a little faster (1.58 s against 1.70 s
        on the bench's P1 prompts, Zen 5), and there the packed pass runs instead."""
        own = getattr(self.model.config, "_attn_implementation", "sdpa")
        if self.attention == "model":
            return own
        if self.attention == "auto":
            return own if self.device.type != "cpu" and own in ("sdpa", "eager") else "sdpa"
        return self.attention

    @property
    def device(self):
        return self.model.device

    # --- preparing a job ---------------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prepare(self, prompts: Sequence[Prompt]) -> _Job:
        """Tokenise, find the token prefix shared by all prompts and fix the batch plan (sorted by
        length, longest first, cut by ``plan_batches``: the fewest batches on a GPU)."""
        prompts = list(prompts)
        keys = [p.key for p in prompts]
        if len(set(keys)) != len(keys):
            dup = sorted(k for k, n in Counter(keys).items() if n > 1)[:5]
            raise CultureSPAError(f"prompt keys must be unique within a job; duplicated: {dup}")
        texts = [chat_text(self.tokenizer, p.system, p.user) for p in prompts]
        # one batched call: the fast tokenizer encodes the texts in parallel (one call per text was
        # measured at ~1.5x the time on 2 cores, and it scales with the cores)
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        prefix_len = 0
        if self.prefix_cache and ids:
            prefix_len = common_prefix_len(ids)
            prefix_len = min(prefix_len, min(len(x) for x in ids) - 1)  # every prompt keeps >= 1 own token
        prefix_len = max(prefix_len, 0)
        size = self._plan_batch_size(ids)
        order = list(range(len(prompts)))
        if self.sort_by_length:
            order.sort(key=lambda i: (-len(ids[i]), i))
            fewest = self.device.type != "cpu"
            batches = plan_batches([len(ids[i]) - prefix_len for i in order], size, fewest=fewest)
            batches = [[order[k] for k in b] for b in batches]
        else:
            batches = [order[i : i + size] for i in range(0, len(order), size)]
        return _Job(prompts, texts, ids, batches, prefix_len, batch_size=size)

    def _plan_batch_size(self, ids: list[list[int]]) -> int:
        """The batch size of a job: the explicit one, or for "auto" one sized to the device's
        free memory now (with room for ``max_new_tokens`` generated tokens, so that one plan
        serves both modes)."""
        if self.batch_size != "auto":
            return self.batch_size
        if self.device.type != "cuda" or not ids:
            return CPU_BATCH_SIZE
        import torch

        free, _ = torch.cuda.mem_get_info(self.device)
        free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        longest = max(len(x) for x in ids)
        size = auto_batch_size(free, self.model.config, longest, self.max_new_tokens,
                               dtype_bytes=self.model.dtype.itemsize)
        log.info("batch_size auto: %d prompts per batch (%.1f GiB free on %s, longest prompt %d tokens)",
                 size, free / 2**30, self.device, longest)
        return size

    def _label_ids(self, text: str, label: str) -> tuple[int, ...]:
        """Token ids of ``label`` as the start of the reply to ``text``: tokenise text+label and
        keep what follows the prompt's own tokens (falls back to the label alone)."""
        cache_key = (text[-64:], label)
        hit = self._label_cache.get(cache_key)
        if hit is not None:
            return hit
        base = self._encode(text)
        full = self._encode(text + label)
        if full[: len(base)] == base and len(full) > len(base):
            out = tuple(full[len(base) :])
        else:
            out = tuple(self._encode(label))
        if not out:
            raise CultureSPAError(f"label {label!r} tokenises to nothing")
        self._label_cache[cache_key] = out
        return out

    def _prepare_labels(self, job: _Job) -> None:
        if job.labels is not None:
            return
        labels = []
        for p, text in zip(job.prompts, job.texts):
            if not p.options:
                raise CultureSPAError(f"{p.key}: logprob mode needs the item's option numbers (options is empty)")
            if len(set(p.options)) != len(p.options) or min(p.options) < 0:
                raise CultureSPAError(f"{p.key}: option numbers must be distinct and >= 0, got {p.options}")
            labels.append([self._label_ids(text, str(n)) for n in p.options])
        job.labels = labels
        job.boundary = [needs_boundary([str(n) for n in p.options]) for p in job.prompts]

    def digit_mask(self):
        """Boolean mask over the model's output vocabulary: tokens whose text starts with 0-9."""
        if self._digit_mask is None:
            import torch

            vocab = self.model.get_output_embeddings().weight.shape[0]
            mask = torch.zeros(vocab, dtype=torch.bool)
            for i, tok in enumerate(self.tokenizer.convert_ids_to_tokens(list(range(min(vocab, len(self.tokenizer)))))):
                if tok is None:
                    continue
                if tok[:1] in _DIGITS or (tok.startswith("<0x3") and len(tok) == 6 and tok[4] in _DIGITS):
                    mask[i] = True  # byte-level: ASCII digits are themselves; sentencepiece byte fallback <0x3N>
            self._digit_mask = mask.to(self.device)
        return self._digit_mask

    def _digit_ids(self):
        """``digit_mask`` as token indices (indexing with a boolean mask waits for the GPU)."""
        if self._digit_idx is None:
            self._digit_idx = self.digit_mask().nonzero().flatten()
        return self._digit_idx

    # --- logprob mode ------------------------------------------------------------------------

    def _prefix_kv(self, job: _Job, kind: str):
        """The shared prefix's keys and values per layer, computed once per job (by the backend
        that reads them)."""
        import torch

        if job.prefix_len == 0:
            return None
        owner = self._packed_decoder(job) if kind == "packed" else kind
        if job.prefix_kv is None or job.prefix_kv[0] is not owner:
            P = job.prefix_len
            ids = torch.tensor(job.ids[0][:P], device=self.device)
            with torch.inference_mode():
                if kind == "packed":
                    causal = torch.tril(torch.ones(P, P, dtype=torch.bool, device=self.device))
                    part = Part(ids, torch.arange(P, device=self.device), None, 1, P,
                                 additive_mask(causal[None], self.model.dtype), keep=ids.new_tensor([P - 1]))
                    _, kv = owner.forward(part, want_kv=True)
                    kv = [(k[None], v[None]) for k, v in kv]
                else:
                    out = self.model(input_ids=ids[None], use_cache=True, logits_to_keep=1)
                    cache = out.cache if hasattr(out, "cache") else out.past_key_values
                    kv = [(layer.keys, layer.values) for layer in cache.layers]
            job.prefix_kv = (owner, kv)
        return job.prefix_kv[1]

    def _batch_option_logprobs(self, job: _Job, batch: list[int]) -> list[tuple[list[float], float]]:
        """(probs, option_mass) for the prompts of one batch, from one forward pass."""
        import torch

        self._prepare_labels(job)
        suffixes = [job.ids[i][job.prefix_len :] for i in batch]
        # the label trie of each prompt, holding the nodes a conditional is read after: every
        # proper token prefix of a label, and a whole label that needs its boundary; slot order =
        # insertion order
        tries = []
        for i in batch:
            nodes: dict[tuple[int, ...], int] = {}
            for lab, bound in zip(job.labels[i], job.boundary[i]):
                for d in range(1, len(lab) + bound):
                    nodes.setdefault(lab[:d], len(nodes))
            tries.append(nodes)
        kind = self._job_forward(job)
        with torch.inference_mode():
            if kind == "packed":
                logits, row0 = self._packed_logits(job, suffixes, tries)
            else:
                logits, row0 = self._hf_logits(job, suffixes, tries)
            # log P(token) = logit - logsumexp(all); log D = logsumexp(digit logits) - logsumexp(all)
            lse = torch.logsumexp(logits, dim=-1)
            digit_lse = torch.logsumexp(logits.index_select(1, self._digit_ids()), dim=-1) - lse
            # gather the few conditionals the labels need: (row, token); row = row0 + 0 for the
            # answer position, row0 + 1 + j after trie node j
            want_row, want_tok = [], []
            for r, i in enumerate(batch):
                nodes = tries[r]
                for lab in job.labels[i]:
                    for d in range(len(lab)):
                        want_row.append(row0[r] + (0 if d == 0 else 1 + nodes[lab[:d]]))
                        want_tok.append(lab[d])
            rows = torch.tensor(want_row, device=logits.device)
            picked = logits[rows, torch.tensor(want_tok, device=logits.device)] - lse[rows]
            picked = picked.double().cpu().numpy()
            digit = digit_lse.double().cpu().numpy()
        results = []
        n = 0
        for r, i in enumerate(batch):
            nodes = tries[r]
            scores = []
            for lab, bound in zip(job.labels[i], job.boundary[i]):
                s = float(picked[n : n + len(lab)].sum())  # log P(label tokens)
                n += len(lab)
                if bound:
                    s += _log1mexp(digit[row0[r] + 1 + nodes[lab]])  # ... then a non-digit (or the end)
                scores.append(s)
            scores = np.array(scores, dtype=np.float64)
            top = scores.max()
            if not np.isfinite(top):
                results.append(([1.0 / len(scores)] * len(scores), 0.0))
                continue
            w = np.exp(scores - top)
            mass = float(np.exp(top) * w.sum())
            results.append(((w / w.sum()).tolist(), min(mass, 1.0)))
        return results

    def _packed_logits(self, job: _Job, suffixes, tries):
        """fp32 logits [rows, vocab] from ``PackedDecoder``: per prompt, its answer position then
        one row per trie node; and the first row of each prompt."""
        dec = self._packed_decoder(job)
        part, row0 = self._packed_part(job.prefix_len, suffixes, tries)
        hidden = dec.forward(part, prefix=self._prefix_kv(job, "packed"), compiled=self._compiled(job))
        return float32_head(self.model).logits(hidden), row0

    def _packed_part(self, P: int, suffixes, tries) -> tuple["Part", list[int]]:
        """The batch for the packed decoder: its packed tokens, tree mask and the rows read (answer position, then
        trie slots, per prompt); and each prompt's first read row."""
        import torch

        B = len(suffixes)
        sizes = [len(s) + len(t) for s, t in zip(suffixes, tries)]
        T = max(sizes)
        ids, pos, pad_idx, keep, row0 = [], [], [], [], []
        allowed = torch.zeros((B, T, P + T), dtype=torch.bool)
        allowed[:, :, :P] = True  # everyone sees the shared prefix
        diag = torch.arange(T)
        allowed[:, diag, P + diag] = True  # and itself (keeps padding rows finite)
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        offset = 0
        for r, (suf, nodes) in enumerate(zip(suffixes, tries)):
            L = len(suf)
            ids.extend(suf)
            pos.extend(range(P, P + L))
            allowed[r, :L, P : P + L] = causal[:L, :L]
            allowed[r, L : L + len(nodes), P : P + L] = True  # trie slots see the whole prompt
            for path, j in nodes.items():
                ids.append(path[-1])
                pos.append(P + L + len(path) - 1)
                for d in range(1, len(path)):  # and their ancestors in the trie
                    allowed[r, L + j, P + L + nodes[path[:d]]] = True
            pad_idx.extend(range(r * T, r * T + sizes[r]))
            row0.append(len(keep))
            keep.extend(range(offset + L - 1, offset + sizes[r]))
            offset += sizes[r]
        dev = self.device
        as_t = lambda x: torch.tensor(x, dtype=torch.long, device=dev)  # noqa: E731
        padded = len(ids) != B * T
        part = Part(as_t(ids), as_t(pos), as_t(pad_idx) if padded else None, B, T,
                     additive_mask(allowed, self.model.dtype).to(dev), keep=as_t(keep))
        return part, row0

    def _hf_logits(self, job: _Job, suffixes, tries):
        """fp32 logits [B * (M+1), vocab] from the model's own forward (any architecture with
        eager or SDPA attention): padded batch, 4-D tree mask, prefix KV cache; and the first
        row of each prompt."""
        import torch
        from transformers import DynamicCache

        P = job.prefix_len
        B = len(suffixes)
        Lmax = max(len(s) for s in suffixes)
        M = max(len(t) for t in tries)
        Q = Lmax + M
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.full((B, Q), pad_id, dtype=torch.long)
        positions = torch.full((B, Q), P, dtype=torch.long)
        allowed = torch.zeros((B, Q, P + Q), dtype=torch.bool)
        allowed[:, :, :P] = True  # everyone sees the shared prefix
        diag = torch.arange(Q)
        allowed[:, diag, P + diag] = True  # and itself (keeps padding rows finite)
        causal = torch.tril(torch.ones(Lmax, Lmax, dtype=torch.bool))
        for r, (suf, nodes) in enumerate(zip(suffixes, tries)):
            L = len(suf)
            o = Lmax - L
            input_ids[r, o:Lmax] = torch.tensor(suf)
            positions[r, o:Lmax] = torch.arange(P, P + L)
            allowed[r, o:Lmax, P + o : P + Lmax] = causal[:L, :L]
            for path, j in nodes.items():
                s = Lmax + j
                input_ids[r, s] = path[-1]
                positions[r, s] = P + L + len(path) - 1
                allowed[r, s, P + o : P + Lmax] = True  # the whole prompt
                for d in range(1, len(path)):  # its ancestors in the trie
                    allowed[r, s, P + Lmax + nodes[path[:d]]] = True
        impl = self._logprob_attention()
        mask = self._mask_for_attention(allowed, impl).to(self.device)
        kv = self._prefix_kv(job, "hf")
        cache = None
        if kv is not None:
            cache = DynamicCache(
                ddp_cache_data=[(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in kv],
                config=self.model.config,
            )
        with _attention_implementation(self.model, impl):
            logits = last_logits_float32(  # [B, M+1, V]: answer position, then slots
                self.model,
                M + 1,
                input_ids=input_ids.to(self.device),
                attention_mask=mask,
                position_ids=positions.to(self.device),
                cache=cache,
                use_cache=cache is not None,
            )
        return logits.reshape(B * (M + 1), -1), [r * (M + 1) for r in range(B)]

    def _mask_for_attention(self, allowed, impl: str):
        """[B, Q, K] booleans -> the 4-D mask the attention implementation expects."""
        mask = allowed[:, None, :, :]
        if impl == "sdpa":
            return mask
        if impl == "eager":
            return additive_mask(mask, self.model.dtype)
        raise ConfigError(
            f"logprob mode needs attn_implementation 'sdpa' or 'eager' (tree attention mask); "
            f"the model uses {impl!r}"
        )

    def option_probabilities(self, prompts: Sequence[Prompt]) -> list[tuple[list[float], float]]:
        """(probs over options, option_mass) per prompt, in input order."""
        job = self.prepare(prompts)
        out: list = [None] * len(job.prompts)
        for batch in job.batches:
            for i, res in zip(batch, self._batch_option_logprobs(job, batch)):
                out[i] = res
        return out

    # --- generation --------------------------------------------------------------------------

    def _generate_ids(self, job: _Job, batch: list[int], seed: int, temperature, top_p, top_k, max_new_tokens):
        import torch

        rows = [job.ids[i] for i in batch]
        L = max(len(r) for r in rows)
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad_id] * (L - len(r)) + r for r in rows])
        attention_mask = torch.tensor([[0] * (L - len(r)) + [1] * len(r) for r in rows])
        kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad_id)
        if temperature and temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
            if top_k is not None:
                kwargs["top_k"] = top_k
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device), **kwargs
            )
        return [
            self.tokenizer.decode(seq[L:], skip_special_tokens=True).strip() for seq in out.cpu().tolist()
        ]

    def generate_texts(
        self,
        prompts: Sequence[Prompt],
        temperature: float = 0.6,
        top_p: float = 0.9,
        max_new_tokens: int = 256,
        seed: int = 0,
        top_k: int | None = None,
    ) -> list[str]:
        """Sampled replies, in input order (batch b seeded from (seed, b))."""
        job = self.prepare(prompts)
        out: list = [None] * len(job.prompts)
        for b, batch in enumerate(job.batches):
            texts = self._generate_ids(job, batch, derive_seed(seed, b), temperature, top_p, top_k, max_new_tokens)
            for i, t in zip(batch, texts):
                out[i] = t
        return out

    # --- answering ---------------------------------------------------------------------------

    def answer_batch(
        self, job: _Job, b: int, mode: str = "logprob", seed: int = 0, max_answer: int = PAPER_MAX_ANSWER
    ) -> list[dict]:
        """The records of batch ``b`` of ``job``, in the batch's order."""
        batch = job.batches[b]
        if mode == "logprob":
            records = []
            for i, (probs, mass) in zip(batch, self._batch_option_logprobs(job, batch)):
                p = job.prompts[i]
                if self.choice == "argmax":
                    choice = int(p.options[int(np.argmax(probs))])
                else:
                    choice = draw_choice(p.options, probs, seed, p.key, self.choice_temperature)
                records.append(
                    {"key": p.key, "choice": choice, "probs": probs, "option_mass": mass, "reply": str(choice),
                     "mode": mode}
                )
            return records
        if mode == "generate":
            texts = self._generate_ids(
                job, batch, derive_seed(seed, b), self.temperature, self.top_p, self.top_k, self.max_new_tokens
            )
            return [
                {"key": job.prompts[i].key, "choice": parse_paper(t, max_answer), "probs": None,
                 "option_mass": None, "reply": t, "mode": mode}
                for i, t in zip(batch, texts)
            ]
        raise ConfigError(f"mode: {mode!r} is not one of {', '.join(MODES)}")

    def answer(
        self, prompts: Sequence[Prompt], mode: str = "logprob", seed: int = 0, max_answer: int = PAPER_MAX_ANSWER
    ) -> list[dict]:
        """One record per prompt, in input order (no file, no resume)."""
        job = self.prepare(prompts)
        out: list = [None] * len(job.prompts)
        for b, batch in enumerate(job.batches):
            for i, rec in zip(batch, self.answer_batch(job, b, mode, seed, max_answer)):
                out[i] = rec
        return out


# --- the read-out in float32 -------------------------------------------------------------------

# logits scaled or capped after the output layer: the model's own head is kept for these
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")
_FP32_HEAD_CACHE_BYTES = 512 * 2**20  # a float32 copy of a bf16 output layer up to this size is kept


class Float32Head:
    """The final norm and output layer of a causal LM, computed in float32 on the rows that are
    read, whatever the model's dtype: bf16 logits carry 8 significant bits, which quantises the
    option probabilities (distinct items with identical probability vectors). The decoder layers
    keep the model's dtype. A float32 copy of a low-precision output layer is kept when it is at
    most 512 MiB (SmolLM2: 113 MB); a larger one is converted in slices of the vocabulary."""

    def __init__(self, model):
        self.decoder = model.base_model
        self.norm = self.decoder.norm
        self.out = model.get_output_embeddings()
        self.dtype = model.dtype
        self._weight = None
        self._version = None

    @staticmethod
    def supports(model) -> bool:
        """A decoder with a final ``norm`` and a plain linear output layer, and no logit scaling
        or capping after it; other models keep their own head (logits cast to float32)."""
        import torch

        cfg = getattr(model, "config", None)
        if any(getattr(cfg, k, None) for k in _LOGIT_TRANSFORMS):
            return False
        base = getattr(model, "base_model", None)
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        return (base is not None and base is not model and isinstance(getattr(base, "norm", None), torch.nn.Module)
                and type(out) is torch.nn.Linear)

    def normed(self, hidden):
        """The final norm in float32: the norm module's own forward on float32 weights and input."""
        from torch.func import functional_call

        params = {k: v.detach().float() for k, v in self.norm.named_parameters()}
        return functional_call(self.norm, params, (hidden.float(),))

    def logits(self, hidden):
        """float32 logits [rows, vocab] from pre-norm hidden states [rows, width]."""
        import torch
        import torch.nn.functional as F

        h = self.normed(hidden)
        w, b = self.out.weight, self.out.bias
        b = None if b is None else b.float()
        if self.dtype == torch.float32:
            return F.linear(h, w, b)
        if w.numel() * 4 <= _FP32_HEAD_CACHE_BYTES:
            if self._weight is None or self._version != (w.data_ptr(), w._version):
                self._weight, self._version = w.detach().float(), (w.data_ptr(), w._version)
            return F.linear(h, self._weight, b)
        step = max(1, _FP32_HEAD_CACHE_BYTES // (4 * w.shape[1]))
        return torch.cat([F.linear(h, w[i : i + step].float(), None if b is None else b[i : i + step])
                          for i in range(0, w.shape[0], step)], dim=-1)

    def last_logits(self, keep: int, **forward_kwargs):
        """float32 logits [batch, keep, vocab] of the last ``keep`` positions: the decoder in the
        model's dtype (its final norm's input captured), then ``logits`` on those rows."""
        captured = []
        hook = self.norm.register_forward_hook(lambda module, args, output: captured.append(args[0]))
        try:
            self.decoder(**forward_kwargs)
        finally:
            hook.remove()
        return self.logits(captured[-1][:, -keep:])


def last_logits_float32(model, keep: int, **forward_kwargs):
    """float32 logits [batch, keep, vocab] of the last ``keep`` positions of ``model`` on
    ``forward_kwargs`` (``Float32Head`` where the model supports it, else its own logits cast)."""
    head = float32_head(model)
    if head is None:
        return model(**forward_kwargs, logits_to_keep=keep).logits[:, -keep:].float()
    return head.last_logits(keep, **forward_kwargs)


_HEADS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def float32_head(model) -> Float32Head | None:
    """The model's ``Float32Head`` (one per model and dtype), or None where it does not apply."""
    head = _HEADS.get(model)
    if head is None or head.dtype != model.dtype:
        if not Float32Head.supports(model):
            return None
        head = _HEADS[model] = Float32Head(model)
    return head


# --- resumable jobs ----------------------------------------------------------------------------


def _fingerprint(engine: Engine, job: _Job, mode: str, seed: int, max_answer: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"settings": engine.settings(), "mode": mode, "seed": seed, "max_answer": max_answer,
                         "batches": job.batches, "compiled": mode == "logprob" and engine._compiled(job)},
                        sort_keys=True).encode())
    for p in job.prompts:
        h.update(json.dumps(asdict(p), sort_keys=True).encode())
    return h.hexdigest()


def answer_journaled(
    engine: Engine,
    prompts: Sequence[Prompt],
    out_path: str | Path,
    mode: str = "logprob",
    seed: int = 0,
    max_answer: int = PAPER_MAX_ANSWER,
    on_batch: Callable[[int, list[dict]], None] | None = None,
    progress: bool = True,
) -> tuple[list[dict], Journal]:
    """Answer ``prompts`` resumably (``resume.Journal`` beside ``out_path``, one entry per finished
    batch); returns the records in input order and the journal, which the caller removes once it
    has written what it makes of the records. ``on_batch(batch_index, records)`` is called after
    each batch is safely in the journal."""
    from tqdm import tqdm

    if mode not in MODES:
        raise ConfigError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    out_path = Path(out_path)
    job = engine.prepare(prompts)
    journal = Journal(out_path, _fingerprint(engine, job, mode, seed, max_answer), {"n_prompts": len(job.prompts)})
    done = {int(e["batch"]): e["records"] for e in journal.entries}
    if done:
        log.info("%s: resuming, %d of %d batches already done", out_path, len(done), len(job.batches))
    n_done = sum(len(job.batches[b]) for b in done)
    start = time.perf_counter()
    bar = tqdm(total=len(job.prompts), initial=n_done, file=sys.stderr, disable=not progress,
               desc=out_path.name, unit="prompt")
    try:
        for b in range(len(job.batches)):
            if b in done:
                continue
            records = engine.answer_batch(job, b, mode, seed, max_answer)
            journal.append({"batch": b, "records": records})
            done[b] = records
            bar.update(len(records))
            if on_batch is not None:
                on_batch(b, records)
    finally:
        bar.close()
        journal.close()
    seconds = time.perf_counter() - start
    by_key = {rec["key"]: rec for recs in done.values() for rec in recs}
    ordered = [by_key[p.key] for p in job.prompts]
    n_new = len(job.prompts) - n_done
    masses = [r["option_mass"] for r in ordered if r["option_mass"] is not None]
    invalid = sum(r["choice"] is None for r in ordered)
    log.info(
        "%s: %d prompts (%d computed now) in %.1f s, %.2f prompts/s, mean option_mass %s, invalid %d",
        out_path, len(ordered), n_new, seconds, n_new / seconds if seconds > 0 else float("nan"),
        f"{np.mean(masses):.3f}" if masses else "n/a", invalid,
    )
    return ordered, journal


def answer_to_file(
    engine: Engine,
    prompts: Sequence[Prompt],
    out_path: str | Path,
    mode: str = "logprob",
    seed: int = 0,
    max_answer: int = PAPER_MAX_ANSWER,
    on_batch: Callable[[int, list[dict]], None] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Answer ``prompts`` into ``out_path`` (JSONL, input order), resumably (``answer_journaled``).
    Returns the records, in input order."""
    ordered, journal = answer_journaled(engine, prompts, out_path, mode, seed, max_answer, on_batch, progress)
    write_jsonl(out_path, ordered)
    journal.remove()
    return ordered


def summarise(records: Iterable[dict]) -> dict:
    """prompts, mean option_mass (logprob mode), invalid count."""
    records = list(records)
    masses = [r["option_mass"] for r in records if r.get("option_mass") is not None]
    return {
        "prompts": len(records),
        "mean_option_mass": float(np.mean(masses)) if masses else None,
        "invalid": sum(r["choice"] is None for r in records),
    }


@contextlib.contextmanager
def _attention_implementation(model, impl: str):
    """Temporarily run ``model`` with another attention implementation (read at each forward)."""
    config = model.config
    old = getattr(config, "_attn_implementation", None)
    if old == impl:
        yield
        return
    config._attn_implementation = impl
    try:
        yield
    finally:
        config._attn_implementation = old


def auto_batch_size(free_bytes: int, config, seq_len: int, new_tokens: int = 0, dtype_bytes: int = 2,
                    fraction: float = 0.7, cap: int = MAX_AUTO_BATCH) -> int:
    """Prompts per batch that fit in ``fraction`` of ``free_bytes`` (the memory beside the
    weights) for a decoder of ``config``'s shape, prompts of up to ``seq_len`` tokens and
    ``new_tokens`` generated ones: a power of two in [1, cap].

    Per prompt: the keys and values of every layer for ``seq_len + new_tokens`` positions (kept
    for the whole pass), one layer's activations at a time (residual, norm, q/k/v, MLP), fp32
    attention scores (SDPA's math path, the most it needs with a mask) and fp32 logits with the
    sampling copies (sort, cumsum) of generate."""
    hidden = config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    inter = getattr(config, "intermediate_size", None) or 4 * hidden
    total = seq_len + new_tokens
    kv = config.num_hidden_layers * 2 * kv_heads * head_dim * dtype_bytes * total
    act = seq_len * (4 * hidden + 3 * inter + (heads + 2 * kv_heads) * head_dim) * dtype_bytes
    scores = heads * seq_len * total * 4
    logits = config.vocab_size * 4 * 6
    rows = int(fraction * max(free_bytes, 0) // (kv + act + scores + logits))
    rows = max(1, min(rows, cap))
    return 1 << (rows.bit_length() - 1)


def plan_batches(lengths: Sequence[int], batch_size: int, fewest: bool = False) -> list[list[int]]:
    """Consecutive batches of at most ``batch_size`` over prompts sorted longest first
    (``lengths``: their token counts after the shared prefix), as positions in that order.

    A batch is padded to its longest prompt, so it costs (its size x its first length) tokens, plus
    one average prompt's tokens for running a batch at all; the plan minimises the sum (dynamic
    programming). Against plain chunks of ``batch_size``: the first 64 WVS items pad 4.6 % instead
    of 10.9 % (P1) and 3.6 % instead of 7.7 % (P3), for one batch more; the 259 items of a full
    job pad as little either way (1.2-1.7 %). That price of a batch holds on a CPU. ``fewest``: the
    fewest batches that ``batch_size`` allows, least padding among those, for a GPU: there a forward
    pass has a fixed launch cost worth thousands of tokens, and generating pays it at every step (on
    an H200 the cheap-batch plan cut 256 prompts into ~16 batches and generated 9x slower)."""
    n = len(lengths)
    if fewest:  # a batch more costs more than any padding it could save
        per_batch = n * max(lengths, default=0) + 1.0
    else:
        per_batch = sum(lengths) / n if n else 0.0
    best = [0.0] + [math.inf] * n  # best[j]: the cost of the first j prompts
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - batch_size), j):
            cost = best[i] + (j - i) * lengths[i] + per_batch
            if cost < best[j]:
                best[j], cut[j] = cost, i
    out, j = [], n
    while j > 0:
        out.append(list(range(cut[j], j)))
        j = cut[j]
    return out[::-1]


def needs_boundary(labels: Sequence[str]) -> list[bool]:
    """Per label: is it the start of another label ("1" of "10"), so that only "label, then a
    non-digit" may count for it."""
    return [any(o != lab and o.startswith(lab) for o in labels) for lab in labels]


def common_prefix_len(seqs: list[list[int]]) -> int:
    first = seqs[0]
    n = len(first)
    for s in seqs[1:]:
        m = min(n, len(s))
        k = 0
        while k < m and s[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


def _log1mexp(x: float) -> float:
    """log(1 - exp(x)) for x <= 0, accurately."""
    if x >= 0:
        return -math.inf
    return math.log(-math.expm1(x)) if x > -0.693 else math.log1p(-math.exp(x))
