"""General ability: 5-shot MMLU accuracy of a model, and the change an adapter makes.

Data: the MMLU zip as LLaMA-Factory distributes it (``data/{dev,val,test}/{subject}_{split}.csv``,
no header: question, A, B, C, D, answer letter) and ``mapping.json`` (subject -> display name and
category: STEM, Social Sciences, Humanities, Other), read in place from configured paths.

Prompt (decided once, the same for the base model and every adapter): the standard MMLU few-shot
text (Hendrycks et al.)::

    The following are multiple choice questions (with answers) about {subject name}.

    {dev question}
    A. ...
    B. ...
    C. ...
    D. ...
    Answer: {letter}

    ... (k dev examples, the subject's first k) ...
    {question}
    A. ...
    ...
    Answer:

sent as ONE user message through the model's chat template (``engine.chat_text``, no system
prompt: the template's default applies, if it has one) - ``fmt="chat"``, the default, because the
models here are instruction-tuned chat models and the adapters are trained inside that template.
``fmt="plain"`` scores the raw text instead (base-model style). ``fmt="llama_factory"`` is the text
LLaMA-Factory's evaluator builds with its ``en`` eval template and the ``fewshot`` chat template
(the authors' MMLU tool): the same text, but the answer letter follows "Answer:" without a space
("Answer:A"), and no BOS token is added.

Few-shot examples: ``shots="first"`` takes the subject's first k dev questions, the same for every
question (so their tokens are a prefix shared by a whole subject); ``shots="random"`` draws k dev
questions in random order for each question, as LLaMA-Factory's evaluator does
(``dataset["train"].shuffle().select(range(k))``), seeded per (seed, subject, question).

Scoring: one forward pass, the next-token distribution after the prompt. A letter's score is the
log of P("A") + P(" A") (the letter with and without a leading space, each a single token for the
tokenizers used here; a variant that is not a single token is left out). After a chat assistant
header the reply starts without a space ("A"); after plain "Answer:" it starts with one (" A"):
summing both makes the score independent of which one a model prefers. The prediction is the
argmax over A-D. ``letters="bare"`` scores the bare letter's token only (the last token of "A"), as
LLaMA-Factory's evaluator does.

Speed: within a subject every prompt shares the header and the k dev examples; that token prefix
runs once and its KV cache serves every batch, so each question costs only its own tokens.
"""

from __future__ import annotations

import io as _io
import json
import logging
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError, CultureSPAError, DataFileError
from .engine import common_prefix_len, last_logits_float32

log = logging.getLogger(__name__)

LETTERS = ("A", "B", "C", "D")
CATEGORIES = ("STEM", "Social Sciences", "Humanities", "Other")
OVERALL = "overall"
SPLITS = ("dev", "val", "test")
HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"
FORMATS = ("chat", "plain", "llama_factory")
SHOTS = ("first", "random")
COMPARE_COLUMNS = ["model", "variant", "category", "metric", "value", "ci_low", "ci_high", "n", "reason"]
NOT_ANSWERED = "not_answered"  # scoring.NOT_ANSWERED: a record of a model that was never asked (untrained.py)


@dataclass(frozen=True)
class Question:
    subject: str
    index: int  # row in the split's CSV
    question: str
    choices: tuple[str, str, str, str]
    answer: str  # "A".."D"

    @property
    def key(self) -> str:
        return f"{self.subject}/{self.index}"


# --- data -------------------------------------------------------------------------------------


def load_mapping(path: str | Path) -> dict[str, dict]:
    """subject -> {"name": ..., "category": ...}."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise DataFileError(f"{path}: MMLU mapping.json not found") from e
    except json.JSONDecodeError as e:
        raise DataFileError(f"{path}: not valid JSON ({e})") from e
    for subject, entry in raw.items():
        if not isinstance(entry, Mapping) or "name" not in entry or entry.get("category") not in CATEGORIES:
            raise DataFileError(f"{path}: subject {subject!r} needs a name and a category in {CATEGORIES}")
    return raw


def _open_zip(zip_path: str | Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(zip_path)
    except FileNotFoundError as e:
        raise DataFileError(f"{zip_path}: MMLU zip not found") from e
    except zipfile.BadZipFile as e:
        raise DataFileError(f"{zip_path}: not a zip file ({e})") from e


def _member(zf: zipfile.ZipFile, subject: str, split: str) -> str:
    """The archive member of (subject, split), with or without a top-level folder."""
    suffix = f"data/{split}/{subject}_{split}.csv"
    for name in zf.namelist():
        if name == suffix or name.endswith("/" + suffix):
            return name
    raise DataFileError(f"{zf.filename}: no {suffix} in the MMLU zip")


def read_split(zf_or_path, subject: str, split: str) -> list[Question]:
    """All questions of one subject and split, in file order."""
    if split not in SPLITS:
        raise ConfigError(f"mmlu split: {split!r} is not one of {SPLITS}")
    zf = zf_or_path if isinstance(zf_or_path, zipfile.ZipFile) else _open_zip(zf_or_path)
    name = _member(zf, subject, split)
    # keep_default_na=False: options such as "None" or "NA" are text, not missing values
    frame = pd.read_csv(_io.BytesIO(zf.read(name)), header=None, dtype=str, keep_default_na=False)
    if frame.shape[1] != 6:
        raise DataFileError(f"{zf.filename}:{name}: expected 6 columns, found {frame.shape[1]}")
    out = []
    for i, row in enumerate(frame.itertuples(index=False)):
        answer = str(row[5]).strip()
        if answer not in LETTERS:
            raise DataFileError(f"{zf.filename}:{name} row {i + 1}: answer {answer!r} is not A-D")
        out.append(Question(subject, i, str(row[0]), tuple(str(c) for c in row[1:5]), answer))
    return out


def subjects_in_zip(zip_path: str | Path) -> list[str]:
    with _open_zip(zip_path) as zf:
        names = [n.rsplit("/", 1)[-1] for n in zf.namelist() if "/data/test/" in "/" + n and n.endswith("_test.csv")]
    return sorted(n[: -len("_test.csv")] for n in names)


@dataclass
class Benchmark:
    """The selected questions and every subject's dev (few-shot) examples."""

    questions: list[Question]
    dev: dict[str, list[Question]]
    mapping: dict[str, dict]
    split: str

    def category(self, subject: str) -> str:
        return self.mapping[subject]["category"]


def load(
    zip_path: str | Path,
    mapping_path: str | Path,
    subjects: Sequence[str] | None = None,
    max_per_subject: int | None = None,
    seed: int = 0,
    split: str = "test",
) -> Benchmark:
    """The benchmark subset: ``subjects`` (default: all in mapping.json) and at most
    ``max_per_subject`` questions of each, drawn without replacement with a seeded RNG (per
    subject, so adding a subject does not change another's draw), kept in file order."""
    mapping = load_mapping(mapping_path)
    chosen = list(subjects) if subjects else sorted(mapping)
    unknown = [s for s in chosen if s not in mapping]
    if unknown:
        raise ConfigError(f"mmlu.subjects: unknown subjects {unknown}")
    if max_per_subject is not None and max_per_subject < 1:
        raise ConfigError(f"mmlu.max_per_subject: must be >= 1 or null, got {max_per_subject}")
    questions, dev = [], {}
    with _open_zip(zip_path) as zf:
        for s_i, subject in enumerate(chosen):
            qs = read_split(zf, subject, split)
            if max_per_subject is not None and len(qs) > max_per_subject:
                from .engine import derive_seed

                rng = np.random.default_rng(derive_seed(seed, "mmlu", subject))
                keep = np.sort(rng.choice(len(qs), size=max_per_subject, replace=False))
                qs = [qs[i] for i in keep]
            questions.extend(qs)
            dev[subject] = read_split(zf, subject, "dev")
    return Benchmark(questions, dev, mapping, split)


# --- prompts ----------------------------------------------------------------------------------


def format_example(q: Question, with_answer: bool, space: str = " ") -> str:
    text = q.question + "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, q.choices)) + "\nAnswer:"
    return text + (f"{space}{q.answer}\n\n" if with_answer else "")


def few_shot_text(q: Question, dev: Sequence[Question], subject_name: str, k: int = 5, space: str = " ") -> str:
    """The standard MMLU k-shot text (the first k of ``dev`` as examples), ending in "Answer:"."""
    return (
        HEADER.format(subject=subject_name)
        + "".join(format_example(d, True, space) for d in dev[:k])
        + format_example(q, False)
    )


def shots_for(q: Question, dev: Sequence[Question], k: int, shots: str = "first", seed: int = 0) -> list[Question]:
    """The dev questions shown before ``q``: the first k, or k in a random order drawn for ``q``."""
    if shots == "first":
        return list(dev[:k])
    if shots == "random":
        from .seeds import derive_seed

        order = np.random.default_rng(derive_seed(seed, "mmlu-shots", q.subject, q.index)).permutation(len(dev))
        return [dev[i] for i in order[:k]]
    raise ConfigError(f"mmlu.shots: {shots!r} is not one of {SHOTS}")


def prompt_text(tokenizer, q: Question, bench: Benchmark, k: int = 5, fmt: str = "chat", shots: str = "first",
                seed: int = 0) -> str:
    dev = shots_for(q, bench.dev[q.subject], k, shots, seed)
    name = bench.mapping[q.subject]["name"]
    if fmt == "plain":
        return few_shot_text(q, dev, name, k)
    if fmt == "llama_factory":
        return few_shot_text(q, dev, name, k, space="")
    if fmt == "chat":
        from .engine import chat_text

        return chat_text(tokenizer, None, few_shot_text(q, dev, name, k))
    raise ConfigError(f"mmlu.format: {fmt!r} is not one of {FORMATS}")


LETTER_MODES = ("both", "bare")


def letter_token_ids(tokenizer, letters: str = "both") -> list[list[int]]:
    """Per letter, the single-token ids of "A" and " A" (whichever are single tokens); ``bare``:
    the last token of "A" alone (LLaMA-Factory's ``tokenizer.encode(ch, add_special_tokens=False)[-1]``)."""
    if letters == "bare":
        return [[tokenizer(letter, add_special_tokens=False)["input_ids"][-1]] for letter in LETTERS]
    if letters != "both":
        raise ConfigError(f"mmlu.letters: {letters!r} is not one of {LETTER_MODES}")
    out = []
    for letter in LETTERS:
        ids = []
        for variant in (letter, " " + letter):
            toks = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if len(toks) == 1 and toks[0] not in ids:
                ids.append(toks[0])
        if not ids:
            raise CultureSPAError(f"the tokenizer splits both {letter!r} and ' {letter}' into several tokens")
        out.append(ids)
    return out


# --- scoring ----------------------------------------------------------------------------------


def _letter_scores(model, ids: list[list[int]], prefix_len: int, letter_ids, batch_size: int, pad_id: int):
    """log(P(letter) summed over its variants) for A-D, per prompt, with the shared prefix's KV
    cache computed once; the final norm and output layer in float32 whatever the model's dtype
    (``engine.last_logits_float32``)."""
    import torch
    from transformers import DynamicCache

    device = model.device
    P = prefix_len
    kv = None
    if P > 0:
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids[0][:P]], device=device), use_cache=True, logits_to_keep=1)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        kv = [(layer.keys, layer.values) for layer in cache.layers]
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
    scores = np.zeros((len(ids), len(LETTERS)))
    flat = [t for v in letter_ids for t in v]
    groups = np.repeat(np.arange(len(LETTERS)), [len(v) for v in letter_ids])
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        suffixes = [ids[i][P:] for i in batch]
        B, L = len(batch), max(len(s) for s in suffixes)
        input_ids = torch.full((B, L), pad_id, dtype=torch.long)
        mask = torch.zeros((B, P + L), dtype=torch.long)
        mask[:, :P] = 1
        positions = torch.full((B, L), P, dtype=torch.long)
        for r, s in enumerate(suffixes):  # left padding inside the suffix window
            o = L - len(s)
            input_ids[r, o:] = torch.tensor(s)
            mask[r, P + o :] = 1
            positions[r, o:] = torch.arange(P, P + len(s))
        cache = None
        if kv is not None:
            cache = DynamicCache(
                ddp_cache_data=[(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in kv],
                config=model.config,
            )
        with torch.inference_mode():
            logits = last_logits_float32(
                model,
                1,
                input_ids=input_ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                cache=cache,
                use_cache=cache is not None,
            )
            logp = torch.log_softmax(logits[:, -1, :], dim=-1)[:, flat].double().cpu().numpy()
        for r, i in enumerate(batch):
            for g in range(len(LETTERS)):
                scores[i, g] = np.logaddexp.reduce(logp[r, groups == g])
    return scores


def evaluate(
    model,
    tokenizer,
    bench: Benchmark,
    k_shot: int = 5,
    fmt: str = "chat",
    batch_size: int = 8,
    prefix_cache: bool = True,
    shots: str = "first",
    seed: int = 0,
    letters: str = "both",
) -> list[dict]:
    """One record per question: subject, category, index, gold, pred, correct, and the four
    letter log-scores. Same prompt and scoring for every model (base or adapter)."""
    if fmt not in FORMATS:
        raise ConfigError(f"mmlu.format: {fmt!r} is not one of {FORMATS}")
    if not bench.questions:
        raise CultureSPAError("no MMLU questions selected")
    letter_ids = letter_token_ids(tokenizer, letters)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    by_subject: dict[str, list[Question]] = {}
    for q in bench.questions:
        by_subject.setdefault(q.subject, []).append(q)
    records = []
    started = time.perf_counter()
    for subject, qs in by_subject.items():
        texts = [prompt_text(tokenizer, q, bench, k_shot, fmt, shots, seed) for q in qs]
        ids = [tokenizer(t, add_special_tokens=fmt == "plain")["input_ids"] for t in texts]
        prefix = 0
        if prefix_cache and len(ids) > 1:
            prefix = max(0, min(common_prefix_len(ids), min(len(x) for x in ids) - 1))
        scores = _letter_scores(model, ids, prefix, letter_ids, batch_size, pad_id)
        for q, sc, n_tok in zip(qs, scores, ids):
            pred = LETTERS[int(np.argmax(sc))]
            records.append(
                {
                    "subject": subject,
                    "category": bench.category(subject),
                    "index": q.index,
                    "gold": q.answer,
                    "pred": pred,
                    "correct": pred == q.answer,
                    "scores": [round(float(x), 5) for x in sc],
                    "n_tokens": len(n_tok),
                }
            )
        log.info("MMLU %s: %d questions, accuracy %.3f", subject, len(qs), np.mean([r["correct"] for r in records[-len(qs):]]))
    seconds = time.perf_counter() - started
    log.info("MMLU: %d questions in %.1f s (%.2f questions/s)", len(records), seconds, len(records) / seconds)
    return records


def not_answered(bench: Benchmark, reason: str) -> list[dict]:
    """Records for every selected question, none answered (the adapter was not trained): the
    comparison reports its accuracy as missing with ``reason``."""
    return [{"subject": q.subject, "category": bench.category(q.subject), "index": q.index, "gold": q.answer,
             "pred": None, "correct": None, "status": NOT_ANSWERED, "reason": reason} for q in bench.questions]


# --- summaries --------------------------------------------------------------------------------


def accuracy(records: Iterable[Mapping]) -> pd.DataFrame:
    """Accuracy per category (in the standard order, those present) and overall: category, n,
    correct, accuracy."""
    frame = pd.DataFrame(list(records))
    if frame.empty:
        raise CultureSPAError("no MMLU records to summarise")
    rows = []
    for cat in [c for c in CATEGORIES if c in set(frame["category"])] + [OVERALL]:
        part = frame if cat == OVERALL else frame[frame["category"] == cat]
        rows.append({"category": cat, "n": len(part), "correct": int(part["correct"].sum()),
                     "accuracy": float(part["correct"].mean())})
    return pd.DataFrame(rows)


def _bootstrap_ci(values: np.ndarray, n_boot: int, rng: np.random.Generator, chunk: int = 200) -> tuple[float, float]:
    """95% percentile interval of the mean of ``values`` resampled with replacement."""
    n = len(values)
    means = []
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(m, n))
        means.append(values[idx].mean(axis=1))
    means = np.concatenate(means)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def compare(
    base_records: Sequence[Mapping],
    adapter_records: Sequence[Mapping],
    model: str = "",
    variant: str = "",
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """The adapter against the base on the same questions, per category and overall.

    Rows (tidy: model, variant, category, metric, value, ci_low, ci_high, n) per category:
    ``accuracy_base``, ``accuracy`` (the adapter's) with 95% bootstrap intervals, and ``delta``
    (adapter - base accuracy) with a 95% paired bootstrap interval: questions are resampled with
    replacement and both models' answers to a question stay together. Seeded; each category
    (and overall) draws from its own RNG stream, so the intervals do not depend on which other
    categories are present.
    """
    from .engine import derive_seed

    def keyed(records, which):
        out = {}
        for r in records:
            key = (r["subject"], int(r["index"]))
            if key in out:
                raise CultureSPAError(f"MMLU {which} records: question {key} appears twice")
            out[key] = r
        return out

    base, adapter = keyed(base_records, "base"), keyed(adapter_records, "adapter")
    if set(base) != set(adapter):
        only_b, only_a = len(set(base) - set(adapter)), len(set(adapter) - set(base))
        raise CultureSPAError(
            f"MMLU comparison needs the same questions for base and adapter ({only_b} only in the base, "
            f"{only_a} only in the adapter records)"
        )
    if not base:
        raise CultureSPAError("no MMLU records to compare")
    keys = sorted(base)
    cats = np.array([base[k]["category"] for k in keys])
    b = np.array([bool(base[k]["correct"]) for k in keys], dtype=float)
    a = np.array([bool(adapter[k]["correct"]) for k in keys], dtype=float)
    unasked = [adapter[k].get("reason") or "not answered" for k in keys if adapter[k].get("status") == NOT_ANSWERED]
    if unasked and len(unasked) < len(keys):
        raise CultureSPAError(f"MMLU adapter records: {len(unasked)} of {len(keys)} questions were not answered")
    rows = []
    for cat in [c for c in CATEGORIES if c in set(cats)] + [OVERALL]:
        sel = np.ones(len(keys), bool) if cat == OVERALL else cats == cat
        n = int(sel.sum())
        for metric, values in (("accuracy_base", b[sel]), ("accuracy", a[sel]), ("delta", a[sel] - b[sel])):
            if unasked and metric != "accuracy_base":  # the adapter was never asked: missing, with the reason
                rows.append({"model": model, "variant": variant, "category": cat, "metric": metric,
                             "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": n, "reason": unasked[0]})
                continue
            rng = np.random.default_rng(derive_seed(seed, "mmlu-bootstrap", cat, metric))
            lo, hi = _bootstrap_ci(values, n_boot, rng)
            rows.append({"model": model, "variant": variant, "category": cat, "metric": metric,
                         "value": float(values.mean()), "ci_low": lo, "ci_high": hi, "n": n, "reason": ""})
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


# --- the MMLU jobs ---------------------------------------------------------------------------------


def evaluate_file(model, adapter: str | None, zip_path: str, mapping_path: str, subjects, max_per_subject,
                  k_shot: int, seed: int, out_path: str, fmt: str = "chat", shots: str = "first",
                  letters: str = "both") -> list[dict]:
    """MMLU for the base model (``adapter`` None) or with one adapter merged in, into a JSONL."""
    from . import io
    from .finetune import load_for_inference
    from .models import as_spec

    from .untrained import evaluation_reason

    spec = as_spec(model)
    bench = load(zip_path, mapping_path, subjects, max_per_subject, seed)
    why = evaluation_reason(adapter) if adapter else None
    if why:  # no model loaded: the comparison reports the adapter's accuracy as missing, with why
        log.warning("%s: MMLU recorded as not answered", why)
        records = not_answered(bench, why)
        io.write_jsonl(out_path, records)
        return records
    if adapter is None:
        net, tokenizer = spec.load()
    else:
        net, tokenizer = load_for_inference(spec, adapter), spec.load_tokenizer()
    records = evaluate(net, tokenizer, bench, k_shot=k_shot, fmt=fmt, shots=shots, seed=seed, letters=letters)
    io.write_jsonl(out_path, records)
    return records


def compare_files(model_name: str, base_path: str, variant_paths: Mapping[str, str], seed: int, out_path: str) -> None:
    """Each adapter's MMLU records against the base model's: accuracy and paired CIs of the change."""
    from . import io

    base = io.read_jsonl(base_path)
    table = pd.concat([compare(base, io.read_jsonl(p), model_name, variant, seed=seed)
                       for variant, p in variant_paths.items()], ignore_index=True)
    io.write_csv(out_path, table)
    log.info("MMLU change against the base model:\n%s", table[table.metric == "delta"].to_string(index=False))
