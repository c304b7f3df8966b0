"""Step 3: culture-related QA pairs (CRQPC) and their controls (RDS, CDS).

For each culture and question where both the culture-unaware and the culture-aware answer
are valid, CRQPC keeps (question, culture, culture-aware answer) when the two answers
differ (METHOD.md, "Step 3"; the authors' ``data_process/3.CRQPC.py``). Controls of the
same size per culture: RDS, random culture-aware instances among the valid ones; CDS,
instances where the two answers agree (all of them, with the shortfall recorded, when
there are fewer than needed).

An answer is the engine's ``choice`` when the answer record has one, else the first integer
of ``reply``, valid if 0..15 (``parsing.parse_paper(reply, max_value=15)``).

How many answers differ depends on how the two answers of a question were drawn
(``answering.draws``, see ``seeds``). Logprob answers keep the option probabilities, and a choice
is a deterministic function of (probabilities, seed, question key), so ``draw_statistics`` gives,
from the same answer files, the diff counts under both shared and independent draws, and the
expected diff rate 1 - sum_k p_k q_k (p, q sharpened to the choice temperature), the rate
independent draws give on average. Generate-mode answers have no such notion: those columns stay
empty.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import CultureSPAError, DataFileError
from .parsing import PAIRS_MAX_ANSWER, parse_paper
from .seeds import DEFAULT_DRAWS, DRAWS, NO_PERSONA, disagreement, draw_choice, persona_seed
from .wvs import TOPIC_NAMES

SETS = ("CRQPC", "RDS", "CDS")
DRAW_COLUMNS = ("draws", "diff_shared", "diff_rate_shared", "diff_independent", "diff_rate_independent",
                "expected_diff_rate")


# --- answers --------------------------------------------------------------------------------


def answer_of(record: Mapping | None) -> int | None:
    """The answer number of one answer record, or None when missing or invalid."""
    if record is None:
        return None
    choice = record.get("choice")
    if choice is not None:
        # a constrained engine's choice; validated like a parsed reply, never trusted blindly
        ok = isinstance(choice, int) and not isinstance(choice, bool) and 0 <= choice <= PAIRS_MAX_ANSWER
        return choice if ok else None
    return parse_paper(record.get("reply"), max_value=PAIRS_MAX_ANSWER)


def index_answers(records: Iterable[Mapping], known_qids: set[str], what: str) -> dict[str, Mapping]:
    """Answer records by qid; a duplicate or an unknown qid means mismatched inputs."""
    by_qid: dict[str, Mapping] = {}
    for rec in records:
        qid = rec["qid"]
        if qid in by_qid:
            raise DataFileError(f"{what}: two answers for question {qid}")
        if qid not in known_qids:
            raise DataFileError(f"{what}: answer for {qid}, which is not among the questions")
        by_qid[qid] = rec
    return by_qid


# --- pairs ----------------------------------------------------------------------------------


def pair_record(question: Mapping, culture: str, answer: int) -> dict:
    """Everything the SFT example needs: P1(culture) system, rendered question, answer."""
    return {
        "qid": question["qid"],
        "culture": culture,
        "topic": question["topic"],
        "question": question["question"],
        "options": list(question["options"]),
        "first": question.get("first", 1),
        "answer": answer,
    }


@dataclass
class CultureComparison:
    """One culture's answers set against the culture-unaware ones, question by question."""

    culture: str
    valid: list[tuple[Mapping, int, int]] = field(default_factory=list)  # (question, unaware, aware)
    invalid_unaware: int = 0  # the unaware answer is missing or invalid
    invalid_aware: int = 0  # the culture-aware answer is missing or invalid
    missing_aware: int = 0  # no culture-aware answer record at all (counted in invalid_aware)

    @property
    def same(self) -> list[tuple[Mapping, int, int]]:
        return [v for v in self.valid if v[1] == v[2]]

    @property
    def diff(self) -> list[tuple[Mapping, int, int]]:
        return [v for v in self.valid if v[1] != v[2]]


def compare_culture(
    questions: Sequence[Mapping], unaware: Mapping[str, Mapping], aware: Mapping[str, Mapping], culture: str
) -> CultureComparison:
    comp = CultureComparison(culture)
    for q in questions:
        a_unaware, a_aware = answer_of(unaware.get(q["qid"])), answer_of(aware.get(q["qid"]))
        comp.invalid_unaware += a_unaware is None
        comp.invalid_aware += a_aware is None
        comp.missing_aware += q["qid"] not in aware
        if a_unaware is not None and a_aware is not None:
            comp.valid.append((q, a_unaware, a_aware))
    return comp


def _culture_rng(seed: int, culture: str, purpose: str) -> np.random.Generator:
    """A generator per (seed, culture, control): independent of the order cultures come in."""
    digest = hashlib.sha256(f"{seed}|{culture}|{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _sample(rng: np.random.Generator, items: list, n: int) -> list:
    """n items at random, in their original order."""
    chosen = sorted(rng.choice(len(items), size=n, replace=False)) if n else []
    return [items[i] for i in chosen]


@dataclass
class PairSets:
    """Per culture: the three pair sets, the CDS shortfall, and the comparison counts."""

    sets: dict[str, dict[str, list[dict]]]  # set name -> culture -> pairs
    cds_shortfall: dict[str, int]  # culture -> CDS pairs missing to match CRQPC's size
    comparisons: dict[str, CultureComparison]

    def joint(self, name: str) -> list[dict]:
        """The culture-joint set: the union over cultures (in culture order)."""
        return [p for pairs in self.sets[name].values() for p in pairs]

    def stats_rows(self) -> list[dict]:
        """Per culture: valid, same, diff, diff_rate, invalid counts, set sizes, shortfall."""
        rows = []
        for culture, comp in self.comparisons.items():
            n_valid, n_same = len(comp.valid), len(comp.same)
            rows.append(
                {
                    "culture": culture,
                    "valid": n_valid,
                    "same": n_same,
                    "diff": n_valid - n_same,
                    "diff_rate": (n_valid - n_same) / n_valid if n_valid else float("nan"),
                    "invalid_unaware": comp.invalid_unaware,
                    "invalid_aware": comp.invalid_aware,
                    "missing_aware": comp.missing_aware,
                    **{f"n_{name}": len(self.sets[name][culture]) for name in SETS},
                    "cds_shortfall": self.cds_shortfall[culture],
                }
            )
        return rows

    def topic_rows(self) -> list[dict]:
        """Pairs per set, culture and topic (every topic listed, zeros included)."""
        rows = []
        for name in SETS:
            for culture, pairs in self.sets[name].items():
                counts = np.bincount([p["topic"] for p in pairs], minlength=len(TOPIC_NAMES))
                rows += [
                    {"set": name, "culture": culture, "topic": t, "topic_name": TOPIC_NAMES[t], "n_pairs": int(n)}
                    for t, n in enumerate(counts)
                ]
        return rows


def build_pairs(
    questions: Sequence[Mapping],
    unaware: Iterable[Mapping],
    aware_by_culture: Mapping[str, Iterable[Mapping]],
    seed: int,
) -> PairSets:
    """CRQPC, RDS and CDS per culture.

    ``questions``: kept pool records (qid, topic, question, options, first), in pool order.
    ``unaware``: the culture-unaware answer records; ``aware_by_culture``: culture code ->
    that culture's answer records. Answer records are {qid, choice} or {qid, reply}.
    """
    qids = {q["qid"] for q in questions}
    if len(qids) != len(questions):
        raise CultureSPAError("questions: duplicate qids")
    unaware_by_qid = index_answers(unaware, qids, "culture-unaware answers")
    sets: dict[str, dict[str, list[dict]]] = {name: {} for name in SETS}
    shortfall, comparisons = {}, {}
    for culture, records in aware_by_culture.items():
        aware = index_answers(records, qids, f"culture-aware answers ({culture})")
        comp = compare_culture(questions, unaware_by_qid, aware, culture)
        crqpc = [pair_record(q, culture, a) for q, _, a in comp.diff]
        valid = [pair_record(q, culture, a) for q, _, a in comp.valid]
        same = [pair_record(q, culture, a) for q, _, a in comp.same]
        n = len(crqpc)
        sets["CRQPC"][culture] = crqpc
        sets["RDS"][culture] = _sample(_culture_rng(seed, culture, "RDS"), valid, n)
        sets["CDS"][culture] = _sample(_culture_rng(seed, culture, "CDS"), same, min(n, len(same)))
        shortfall[culture] = max(0, n - len(same))  # fewer agreeing answers than CRQPC pairs
        comparisons[culture] = comp
    return PairSets(sets, shortfall, comparisons)


# --- shared and independent draws ---------------------------------------------------------


def draw_statistics(
    questions: Sequence[Mapping],
    unaware: Iterable[Mapping],
    aware_by_culture: Mapping[str, Iterable[Mapping]],
    setting: str,
    answering: Mapping,
) -> dict[str, dict]:
    """Per culture, the ``DRAW_COLUMNS``: which draws the answers used, and the diff counts and rates
    the same logprob answers give under shared and under independent draws, plus the expected
    diff rate of independent draws. Raw answer records ({key, choice, probs}); ``setting`` is the
    culture-aware method (culture_aware or cross_culture); ``answering`` the config section.

    The recomputed choice of the configured draws must equal the stored one: otherwise the answers
    were drawn with other settings than the configured ones, and the files are named.
    """
    draws = answering.get("draws", DEFAULT_DRAWS)
    if draws not in DRAWS:
        raise CultureSPAError(f"answering.draws: {draws!r} is not one of {', '.join(DRAWS)}")
    empty = {c: {"draws": draws, **{k: float("nan") for k in DRAW_COLUMNS[1:]}} for c in aware_by_culture}
    if answering.get("mode") != "logprob":
        return empty  # free-text sampling: no shared-draw notion
    seed, temperature = int(answering["seed"]), float(answering.get("temperature", 0.6))
    argmax = answering.get("choice", "sample") == "argmax"
    numbers = {q["qid"]: list(range(int(q.get("first", 1)), int(q.get("first", 1)) + len(q["options"])))
               for q in questions}
    unaware_by = {r["key"]: r for r in unaware}
    seeds_unaware = {d: persona_seed(seed, d, "culture_unaware", NO_PERSONA) for d in DRAWS}
    out = {}
    for culture, records in aware_by_culture.items():
        seeds_aware = {d: persona_seed(seed, d, setting, culture) for d in DRAWS}
        n, diff, expected, mismatched = 0, {d: 0 for d in DRAWS}, 0.0, 0
        for a in records:
            u = unaware_by.get(a["key"])
            if u is None or u.get("probs") is None or a.get("probs") is None or a["key"] not in numbers:
                continue
            options = numbers[a["key"]]
            if len(u["probs"]) != len(options) or len(a["probs"]) != len(options):
                raise DataFileError(f"answers to {a['key']}: option probabilities do not match its {len(options)} options")
            n += 1
            if argmax:
                differ = int(np.argmax(u["probs"])) != int(np.argmax(a["probs"]))
                expected += differ
                for d in DRAWS:
                    diff[d] += differ
                continue
            for d in DRAWS:
                cu = draw_choice(options, u["probs"], seeds_unaware[d], a["key"], temperature)
                ca = draw_choice(options, a["probs"], seeds_aware[d], a["key"], temperature)
                diff[d] += cu != ca
                if d == draws:
                    mismatched += (cu != u.get("choice")) + (ca != a.get("choice"))
            expected += disagreement(u["probs"], a["probs"], temperature)
        if mismatched:
            raise DataFileError(
                f"{culture} ({setting}): {mismatched} stored choices differ from the draws the configured "
                f"answering settings give (seed {seed}, draws {draws}, temperature {temperature}); the answers were "
                "made with other settings: rerun step 2"
            )
        rate = (lambda k: k / n) if n else (lambda k: float("nan"))
        out[culture] = {
            "draws": draws,
            "diff_shared": diff["shared"],
            "diff_rate_shared": rate(diff["shared"]),
            "diff_independent": diff["independent"],
            "diff_rate_independent": rate(diff["independent"]),
            "expected_diff_rate": rate(expected),
        }
    return {**empty, **out}


# --- data quantity study --------------------------------------------------------------------


def _subsample_key(seed: int, pair: Mapping) -> bytes:
    return hashlib.sha256(f"{seed}|{pair['culture']}|{pair['qid']}".encode()).digest()


def nested_fraction(pairs: Sequence[Mapping], fraction: float, seed: int) -> list[Mapping]:
    """A seeded subsample of round(fraction * n) pairs, in their original order.

    Pairs are ranked by a hash of (seed, culture, qid) and the first ones taken, so the
    10% subset is inside the 20% subset and so on, whatever order the pairs come in.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n_take = int(round(fraction * len(pairs)))
    ranked = sorted(range(len(pairs)), key=lambda i: _subsample_key(seed, pairs[i]))
    chosen = sorted(ranked[:n_take])
    return [pairs[i] for i in chosen]


def nested_fractions(pairs: Sequence[Mapping], fractions: Sequence[float], seed: int) -> dict[float, list[Mapping]]:
    return {f: nested_fraction(pairs, f, seed) for f in fractions}


# --- the pair jobs: one per culture, then the culture-joint sets -----------------------------------


def _as_answers(records: Sequence[Mapping]) -> list[dict]:
    return [{"qid": r["key"], "choice": r.get("choice"), "reply": r.get("reply")} for r in records]


def collect_culture_files(pool_path: str, unaware_path: str, aware_path: str, culture: str, seed: int,
                          set_paths: Mapping[str, str], stats_out: str, topics_out: str,
                          setting: str = "culture_aware", answering: Mapping | None = None) -> PairSets:
    """One culture's pair sets (``set_paths``: strategy, e.g. "crqpc", -> output JSONL) and its
    rows of the statistics (per culture, per topic), from the pool and the step-2 answer files;
    with ``answering`` (the config section), the diff rates of shared and independent draws
    (``draw_statistics``)."""
    import pandas as pd

    from . import io

    pool, unaware, aware = io.read_jsonl(pool_path), io.read_jsonl(unaware_path), io.read_jsonl(aware_path)
    sets = build_pairs(pool, _as_answers(unaware), {culture: _as_answers(aware)}, seed)
    for strategy, path in set_paths.items():
        io.write_jsonl(path, sets.sets[strategy.upper()][culture])
    stats = pd.DataFrame(sets.stats_rows())
    if answering is not None:
        by_draws = draw_statistics(pool, unaware, {culture: aware}, setting, answering)
        stats = pd.concat([stats, pd.DataFrame([by_draws[culture]])], axis=1)
    io.write_csv(stats_out, stats)
    io.write_csv(topics_out, pd.DataFrame(sets.topic_rows()))
    return sets


def join_culture_files(set_paths: Mapping[str, Sequence[str]], joint_paths: Mapping[str, str],
                       stats_paths: Sequence[str], topic_paths: Sequence[str], stats_out: str, topics_out: str) -> None:
    """The culture-joint sets (the union of the cultures' sets, in the run's culture order) and
    the statistics of all cultures in one table each."""
    import logging

    import pandas as pd

    from . import io

    for strategy, paths in set_paths.items():
        io.write_jsonl(joint_paths[strategy], [rec for path in paths for rec in io.read_jsonl(path)])
    stats = pd.concat([io.read_csv(p) for p in stats_paths], ignore_index=True)
    io.write_csv(stats_out, stats)
    io.write_csv(topics_out, pd.concat([io.read_csv(p) for p in topic_paths], ignore_index=True))
    for row in stats.itertuples():
        logging.getLogger(__name__).info(
            "%s: valid %d, same %d, diff %d (diff rate %.3f), CRQPC %d", row.culture, row.valid, row.same, row.diff,
            row.diff_rate, row.n_CRQPC)
        if hasattr(row, "diff_rate_shared") and row.diff_rate_shared == row.diff_rate_shared:  # not NaN
            logging.getLogger(__name__).info(
                "%s: diff rate with shared draws %.3f, with independent draws %.3f (expected %.3f); these answers "
                "used %s draws", row.culture, row.diff_rate_shared, row.diff_rate_independent,
                row.expected_diff_rate, row.draws)
