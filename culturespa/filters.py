"""Filtering the generated question pool (step 1), with counts after each stage.

The paper's four filters (METHOD.md, "Filters, in order") follow the authors' notebook
``data_process/2.question_filtering.ipynb`` and reproduce its counts on the released pool:
13,000 -> 12,891 -> 12,860 -> 12,847 (same 13 questions dropped by filter 4). A fifth
filter, ours, drops near-duplicates of earlier kept questions and of the WVS evaluation
items, so that no evaluation item leaks into the training pairs.

Interpretation (each choice checked against the released pool; see tests/test_filters.py):

1. *Exact duplicate*: the question text equals (``==``: case-, whitespace- and
   punctuation-sensitive) the text of a seed or of an earlier question of the pool, in pool
   order (topic 0..12, generation order). Options are not compared. As the authors, the
   workflow compares with all 291 WVS questions (``exact_reference``; no released question
   equals any of them).
2. *Unexplained numeric scale*: every option is a bare integer (``str.isdigit``, so
   "1", "10", not " 1" or "1."), and the lower-cased question contains none of
   "on a scale", "with 1 being", "where 1 means", "which 1 means". Note "with 0 being" does
   not exempt (the authors dropped such a question, Q4713).
3. *Number prefix*: an option "has a number prefix" when it is an integer, then a separator
   ("-", ".", "(", and also ":" or ")", which the authors' regex lacked but which change
   nothing on the released pool), then text. A numeric range ("1-3 ...") or a decimal
   ("1.5 ...") is not a prefix. When every option has one, the prefix is stripped, the text
   trimmed, and a dangling ")" removed when no "(" remains ("1 (Rarely or never)" ->
   "Rarely or never").
   When every option starts with a numeric range ("1-3: Too slow", ...), the ranges are the
   options' content and the question is kept unchanged: the authors hand-excluded their
   one such question (Q1879) from filters 3 and 4; this generalises that exception.
4. *Endpoint card*: the remaining questions whose options all start with a digit must look
   like "1 - Strongly disagree", "2", ..., "10 - Strongly agree": first and last option with
   a number prefix and text, all others bare integers, numbers consecutive from 0 or 1.
   They become bare numbers and the question gains
   `` Using this card on which {s} means '{s_text}' and {e} means '{e_text}'``. Questions that
   do not fit, or whose endpoint text contains "refuse" (any case), are dropped. (The
   middle-options and consecutive-numbers checks are ours: they keep the rendered
   numbering equal to the card's numbers, and drop nothing extra on the released pool.)
5. *Near duplicate* (ours): cosine similarity of TF-IDF vectors of word unigrams+bigrams of
   the (normalised) question text >= threshold (default 0.9) with any WVS evaluation item
   or any earlier kept question. Word n-grams with IDF weight the content words that make
   two survey questions different ("divorce" vs "abortion") over the survey boilerplate
   ("Do you think ... can always be justified"), which character n-grams would not. The
   options are left out: shared option lists ("Daily", "Weekly", ...) made unrelated
   questions look alike. On the released pool, 0.9 drops 79 rewordings ("To what extent do
   you think/agree that ..."), none of them near an evaluation item (the closest pool
   question to any of the 259 is at 0.84, a shared stem with other options).

A generated question is numbered from 0 (``first`` = 0) when its first option, after
normalisation, is the number 0 (as the authors' ``question_template_generated_questions``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from .errors import DataFileError
from .wvs import TOPIC_NAMES, Item

SCALE_PHRASES = ("on a scale", "with 1 being", "where 1 means", "which 1 means")
CARD_TEXT = " Using this card on which {s} means '{s_text}' and {e} means '{e_text}'"
DEFAULT_NEAR_DUP_THRESHOLD = 0.9

STAGE_INPUT = "input"
STAGE_EXACT = "exact_duplicate"
STAGE_NUMERIC = "unexplained_numeric_scale"
STAGE_PREFIX = "strip_number_prefix"
STAGE_CARD = "endpoint_card"
STAGE_NEAR = "near_duplicate"
STAGES = (STAGE_INPUT, STAGE_EXACT, STAGE_NUMERIC, STAGE_PREFIX, STAGE_CARD, STAGE_NEAR)

RELEASED_FILE = "generated_questions_topic_{topic}_from_all_seed.json"

# integer + separator + text; "-" and "." must not be followed by a digit (range, decimal)
_PREFIX = re.compile(r"^(\d+)(?:\s*-(?!\s*\d)|\s*\.(?!\d)|\s*[(:)])\s*(?=\S)(.*)$", re.DOTALL)
_RANGE = re.compile(r"^\d+\s*-\s*\d+")
_STARTS_WITH_DIGIT = re.compile(r"^\d")


# --- option shapes --------------------------------------------------------------------------


def number_prefix(option: str) -> tuple[int, str] | None:
    """(number, text) when the option is "<integer><separator><text>", else None."""
    m = _PREFIX.match(option)
    if not m:
        return None
    text = m.group(2).strip()
    if text.endswith(")") and "(" not in text:  # "1 (Rarely)" leaves "Rarely)"
        text = text[:-1].rstrip()
    return (int(m.group(1)), text) if text else None


def all_start_with_digit(options: Sequence[str]) -> bool:
    return bool(options) and all(_STARTS_WITH_DIGIT.match(o) for o in options)


def all_bare_integers(options: Sequence[str]) -> bool:
    return bool(options) and all(o.isdigit() for o in options)


def all_ranges(options: Sequence[str]) -> bool:
    return bool(options) and all(_RANGE.match(o) for o in options)


def explains_scale(question: str) -> bool:
    q = question.lower()
    return any(p in q for p in SCALE_PHRASES)


def first_number(options: Sequence[str]) -> int:
    """0 when the first option is the number 0 (numbering from 0), else 1."""
    head = options[0] if options else ""
    return 0 if head.isdecimal() and int(head) == 0 else 1


# --- the paper's filters, one question at a time -------------------------------------------


def strip_number_prefixes(options: Sequence[str]) -> list[str] | None:
    """Filter 3: the options without their number prefix, or None if one has none."""
    parsed = [number_prefix(o) for o in options]
    if any(p is None for p in parsed):
        return None
    return [text for _, text in parsed]


def endpoint_card(question: str, options: Sequence[str]) -> tuple[str, list[str]] | None:
    """Filter 4: (question + card sentence, bare numbers) or None when not normalisable."""
    if len(options) < 2:
        return None
    start, end = number_prefix(options[0]), number_prefix(options[-1])
    if start is None or end is None or not all(o.strip().isdigit() for o in options[1:-1]):
        return None
    numbers = [start[0]] + [int(o) for o in options[1:-1]] + [end[0]]
    if numbers[0] not in (0, 1) or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return None  # rendering numbers options 0.. or 1..; the card must say the same
    (s, s_text), (e, e_text) = start, end
    if "refuse" in s_text.lower() or "refuse" in e_text.lower():
        return None  # "10 - Refused" is a non-answer, not a scale end
    card = CARD_TEXT.format(s=s, s_text=s_text, e=e, e_text=e_text)
    return question + card, [str(n) for n in numbers]


# --- near duplicates: TF-IDF cosine, chunked sparse products -------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def text_features(text: str) -> list[str]:
    """Word unigrams and bigrams of the lower-cased text."""
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def tfidf_matrix(texts: Sequence[str]) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows (smooth IDF, raw term counts), one per text."""
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, text in enumerate(texts):
        for feat, count in Counter(text_features(text)).items():
            rows.append(i)
            cols.append(vocab.setdefault(feat, len(vocab)))
            vals.append(float(count))
    x = sp.csr_matrix((vals, (rows, cols)), shape=(len(texts), max(len(vocab), 1)))
    df = np.bincount(x.indices, minlength=x.shape[1])
    idf = np.log((1 + len(texts)) / (1 + df)) + 1.0
    x = x @ sp.diags(idf)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ x)


def similar_pairs(
    x: sp.csr_matrix, y: sp.csr_matrix, threshold: float, chunk: int = 2048, lower_only: bool = False
) -> list[tuple[int, int, float]]:
    """(i, j, cosine) with cosine >= threshold between rows of x and y, chunk by chunk.

    ``lower_only`` keeps j < i (x and y the same matrix: each row against earlier rows).
    """
    pairs = []
    x, y = x.astype(np.float32).tocsr(), y.astype(np.float32).tocsr()
    for lo in range(0, x.shape[0], chunk):
        hi = min(lo + chunk, x.shape[0])
        # earlier rows only: the columns past this chunk cannot qualify, skip them
        others = y[:hi] if lower_only else y
        sims = x[lo:hi] @ others.T.tocsr()  # sparse result, never densified
        hit = np.flatnonzero(sims.data >= threshold - 1e-6)  # float32 rounding of 1.0
        rows = np.searchsorted(sims.indptr, hit, side="right") - 1 + lo
        cols, vals = sims.indices[hit], sims.data[hit]
        if lower_only:
            rows, cols, vals = rows[cols < rows], cols[cols < rows], vals[cols < rows]
        pairs += [(int(i), int(j), float(v)) for i, j, v in zip(rows, cols, vals)]
    return pairs


def near_duplicates(
    texts: Sequence[str], reference: Sequence[str], threshold: float
) -> dict[int, tuple[str, int, float]]:
    """Index -> ("reference" | "earlier", index it duplicates, cosine) for dropped texts.

    A text is dropped when it is too similar to a reference text, or to an earlier text
    that was itself kept (greedy, in order): a chain a~b~c with a !~ c keeps a and c.
    """
    if not texts:
        return {}
    x = tfidf_matrix(list(texts) + list(reference))
    pool, ref = x[: len(texts)], x[len(texts) :]
    to_ref: dict[int, tuple[int, float]] = {}
    if len(reference):
        for i, j, s in similar_pairs(pool, ref, threshold):
            if i not in to_ref or s > to_ref[i][1]:
                to_ref[i] = (j, s)
    earlier: dict[int, list[tuple[int, float]]] = {}
    for i, j, s in similar_pairs(pool, pool, threshold, lower_only=True):
        earlier.setdefault(i, []).append((j, s))
    dropped: dict[int, tuple[str, int, float]] = {}
    for i in range(len(texts)):
        if i in to_ref:
            dropped[i] = ("reference", *to_ref[i])
            continue
        kept_matches = [(j, s) for j, s in earlier.get(i, ()) if j not in dropped]
        if kept_matches:
            j, s = max(kept_matches, key=lambda m: m[1])
            dropped[i] = ("earlier", j, s)
    return dropped


# --- the whole pipeline ---------------------------------------------------------------------


@dataclass
class FilterReport:
    """Counts after each stage, overall and per topic, and every dropped question."""

    rows: list[tuple[str, int, int]] = field(default_factory=list)  # (stage, n_kept, n_dropped)
    per_topic: list[tuple[str, int, int, int]] = field(default_factory=list)  # (stage, topic, kept, dropped)
    dropped: list[dict] = field(default_factory=list)  # {qid, topic, stage, question, options, why}
    n_normalised: dict[str, int] = field(default_factory=dict)  # stage -> questions rewritten

    def count_after(self, stage: str) -> int:
        return next(n for s, n, _ in self.rows if s == stage)

    def table(self) -> list[dict]:
        """Rows for a CSV: overall (topic = "all") then per topic."""
        out = [{"stage": s, "topic": "all", "n_kept": k, "n_dropped": d} for s, k, d in self.rows]
        out += [{"stage": s, "topic": t, "n_kept": k, "n_dropped": d} for s, t, k, d in self.per_topic]
        return out


class _Stages:
    """Applies stages in order to a list of records, recording what each one drops."""

    def __init__(self, records: list[dict]):
        self.records = records
        self.report = FilterReport()
        self._topics = sorted({r["topic"] for r in records})
        self._record(STAGE_INPUT, [])

    def drop(self, stage: str, why: dict[int, str]) -> None:
        """Remove the records at the indices of ``why`` (index -> reason)."""
        gone = [dict(self._summary(self.records[i]), stage=stage, why=w) for i, w in sorted(why.items())]
        self.records = [r for i, r in enumerate(self.records) if i not in why]
        self._record(stage, gone)

    def _record(self, stage: str, gone: list[dict]) -> None:
        self.report.rows.append((stage, len(self.records), len(gone)))
        self.report.dropped.extend(gone)
        kept, lost = Counter(r["topic"] for r in self.records), Counter(g["topic"] for g in gone)
        for t in self._topics:
            self.report.per_topic.append((stage, t, kept[t], lost[t]))

    @staticmethod
    def _summary(rec: dict) -> dict:
        return {"qid": rec["qid"], "topic": rec["topic"], "question": rec["question"], "options": rec["options"]}


def _exact_duplicates(records: Sequence[dict], seed_texts: Iterable[str]) -> dict[int, str]:
    seen = {t: "seed" for t in seed_texts}
    why = {}
    for i, rec in enumerate(records):
        if rec["question"] in seen:
            why[i] = f"same text as {seen[rec['question']]}"
        else:
            seen[rec["question"]] = rec["qid"]
    return why


def _unexplained_numeric(records: Sequence[dict]) -> dict[int, str]:
    return {
        i: "options are bare numbers and the question does not explain the scale"
        for i, r in enumerate(records)
        if all_bare_integers(r["options"]) and not explains_scale(r["question"])
    }


def _needs_normalising(options: Sequence[str]) -> bool:
    """Options all start with a digit but are neither bare numbers nor numeric ranges."""
    return all_start_with_digit(options) and not all_bare_integers(options) and not all_ranges(options)


def _strip_prefixes(records: list[dict]) -> set[str]:
    """Filter 3 in place; the qids it rewrote (filter 4 must not look at them again:
    "1. 18-24 years" becomes "18-24 years", which starts with a digit)."""
    done = set()
    for rec in records:
        if _needs_normalising(rec["options"]):
            stripped = strip_number_prefixes(rec["options"])
            if stripped is not None:
                rec["options"] = stripped
                done.add(rec["qid"])
    return done


def _endpoint_cards(records: list[dict], skip: set[str]) -> tuple[dict[int, str], int]:
    why, n = {}, 0
    for i, rec in enumerate(records):
        if rec["qid"] in skip or not _needs_normalising(rec["options"]):
            continue
        normalised = endpoint_card(rec["question"], rec["options"])
        if normalised is None:
            why[i] = "numbered options that are not a 'first - text, 2, ..., last - text' card"
        else:
            rec["question"], rec["options"] = normalised
            n += 1
    return why, n


def filter_pool(
    records: Sequence[dict],
    seeds: Sequence[Item],
    near_dup_threshold: float | None = DEFAULT_NEAR_DUP_THRESHOLD,
    exact_reference: Sequence[str] | None = None,
) -> tuple[list[dict], FilterReport]:
    """The kept records (normalised ``question``/``options``, plus ``first``, with the
    originals kept as ``raw_question``/``raw_options``) and the report.

    ``records``: pool records with qid, topic, question, options, in pool order.
    ``seeds``: the WVS items whose texts no generated question may repeat (filter 1) or
    nearly repeat (filter 5); pass the 259 evaluation items. ``near_dup_threshold=None``
    runs the paper's four filters only. ``exact_reference``: the texts filter 1 compares with
    besides the pool (default: the seeds'; the workflow passes all 291 WVS questions, as the
    authors). Input records are not modified.
    """
    work = [dict(r, raw_question=r["question"], raw_options=list(r["options"])) for r in records]
    for rec in work:
        rec["options"] = list(rec["options"])
    stages = _Stages(work)
    reference = exact_reference if exact_reference is not None else [s.text for s in seeds]
    stages.drop(STAGE_EXACT, _exact_duplicates(stages.records, reference))
    stages.drop(STAGE_NUMERIC, _unexplained_numeric(stages.records))
    stripped = _strip_prefixes(stages.records)
    stages.report.n_normalised[STAGE_PREFIX] = len(stripped)
    stages.drop(STAGE_PREFIX, {})
    why_card, n_card = _endpoint_cards(stages.records, stripped)
    stages.report.n_normalised[STAGE_CARD] = n_card
    stages.drop(STAGE_CARD, why_card)
    if near_dup_threshold is not None:
        stages.drop(STAGE_NEAR, _near_duplicate_reasons(stages.records, seeds, near_dup_threshold))
    for rec in stages.records:
        rec["first"] = first_number(rec["options"])
    return stages.records, stages.report


def _near_duplicate_reasons(records: Sequence[dict], seeds: Sequence[Item], threshold: float) -> dict[int, str]:
    found = near_duplicates([r["question"] for r in records], [s.text for s in seeds], threshold)
    why = {}
    for i, (kind, j, sim) in found.items():
        other = seeds[j].qid if kind == "reference" else records[j]["qid"]
        why[i] = f"cosine {sim:.3f} with {other}"
    return why


# --- the released pool, and conversion to survey items --------------------------------------


def load_released_pool(data_dir: str | Path) -> list[dict]:
    """The authors' 13,000 generated questions as pool records, in the notebook's order.

    ``qid`` is ``T{topic:02d}-{k:05d}`` (k: position in the topic file); ``released_qid`` is
    the id the authors' filtering notebook used (``Q{n}``, n running over all 13 files).
    """
    data_dir = Path(data_dir)
    records, n = [], 0
    for topic, name in enumerate(TOPIC_NAMES):
        path = data_dir / RELEASED_FILE.format(topic=topic)
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataFileError(f"{path}: cannot read released generated questions: {e}") from e
        for k, rec in enumerate(raw):
            if rec.get("class") != name:
                raise DataFileError(f"{path}: record {k} has topic {rec.get('class')!r}, expected {name!r}")
            records.append(
                {
                    "qid": f"T{topic:02d}-{k:05d}",
                    "topic": topic,
                    "topic_name": name,
                    "question": rec["question"],
                    "options": list(rec["option_lst"]),
                    "prompt": rec.get("prompt"),
                    "question_source": "released",
                    "released_qid": f"Q{n}",
                }
            )
            n += 1
    return records


def to_item(record: dict) -> Item:
    """A kept pool record as a survey item (for rendering with prompts.render_question)."""
    return Item(
        qid=record["qid"],
        text=record["question"],
        options=tuple(record["options"]),
        first=record.get("first", first_number(record["options"])),
        topic=record["topic"],
    )


def to_items(records: Iterable[dict]) -> list[Item]:
    return [to_item(r) for r in records]


# --- the filter job -------------------------------------------------------------------------------


def at_most_per_topic(records: list[dict], per_topic: int, seed: int) -> list[dict]:
    """A seeded sample of at most ``per_topic`` kept questions per topic, in pool order (the
    released pool holds 1,000 per topic; a small budget takes a sample of it)."""
    import random

    by_topic: dict[int, list[int]] = {}
    for i, rec in enumerate(records):
        by_topic.setdefault(rec["topic"], []).append(i)
    keep = set()
    for topic, idx in by_topic.items():
        keep.update(idx if len(idx) <= per_topic else random.Random(seed * 1000 + topic).sample(idx, per_topic))
    return [rec for i, rec in enumerate(records) if i in keep]


def filter_pool_files(raw_files: Sequence[str], source: str, wvs_questions: str, per_topic: int, seed: int,
                      near_dup_threshold: float | None, pool_out: str, counts_out: str, topics_out: str,
                      dropped_out: str) -> list[dict]:
    """Step 1's filters over the raw generated questions (``source`` "generate": one JSONL per
    topic; "released": the authors' 13 files), then the per-topic budget; writes the pool, the
    counts after each filter (overall and per topic) and every dropped question with its reason."""
    import logging

    import pandas as pd

    from . import io
    from .wvs import load_items

    if source == "released":
        records = load_released_pool(Path(raw_files[0]).parent)
    else:
        records = [rec for path in raw_files for rec in io.read_jsonl(path)]
    kept, report = filter_pool(records, load_items(wvs_questions), near_dup_threshold)
    budgeted = at_most_per_topic(kept, per_topic, seed)
    counts = pd.DataFrame(report.table())
    budget = {"stage": "per_topic_budget", "topic": "all", "n_kept": len(budgeted), "n_dropped": len(kept) - len(budgeted)}
    counts = pd.concat([counts, pd.DataFrame([budget])], ignore_index=True)
    io.write_csv(counts_out, counts[counts.topic == "all"].drop(columns="topic"))
    io.write_csv(topics_out, counts[counts.topic != "all"])
    io.write_jsonl(dropped_out, report.dropped)
    io.write_jsonl(pool_out, budgeted)
    for stage, n_kept, n_dropped in report.rows:
        logging.getLogger(__name__).info("%-28s kept %6d dropped %5d", stage, n_kept, n_dropped)
    return budgeted
