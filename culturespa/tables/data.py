"""Tables of the data the pipeline made: the question pool and its filters, the culture-related
QA pairs collected per culture and per topic, example questions."""

from __future__ import annotations

import math
from collections import Counter
from typing import Mapping

import pandas as pd

from .. import io
from ..errors import CultureSPAError
from ..wvs import TOPIC_NAMES
from .cells import SETTING_LABELS, Reasons, as_list, csv_frame
from .formats import MISSING, Table


# --- settings ---------------------------------------------------------------------------------------


def collected_pairs_settings(questions: Mapping, pairs: Mapping) -> dict:
    return {"source": questions["source"], "pair_settings": list(pairs["settings"]),
            "strategies": list(pairs["strategies"])}


def question_filtering_settings(questions: Mapping) -> dict:
    return {"source": questions["source"],
            "questions": {k: questions[k] for k in ("per_topic", "near_duplicate_threshold")}}


def topic_distribution_settings(questions: Mapping, pairs: Mapping) -> dict:
    return {"source": questions["source"], "pair_settings": list(pairs["settings"])}


def example_questions_settings(questions: Mapping) -> dict:
    return {"source": questions["source"]}


# --- 7. collected pairs ------------------------------------------------------------------------------


def collected_pairs(inputs: Mapping, settings: Mapping) -> Table:
    configured = list(settings.get("pair_settings") or [])
    paths = dict(zip(configured, as_list(inputs.get("pairs_stats", []))))
    strategies = [s.upper() for s in settings.get("strategies") or ("crqpc", "rds", "cds")]
    several = len(configured) > 1
    reasons = Reasons(every="every culture")
    records, shown, sections = [], [], []
    for setting in configured:
        stats = io.read_csv(paths[setting], required=["culture", "valid", "same", "diff", "diff_rate"])
        sections.append(len(shown))
        total = {"culture": "Total", **{k: int(stats[k].sum()) for k in ("valid", "same", "diff")}}
        total["diff_rate"] = total["diff"] / total["valid"] if total["valid"] else math.nan
        for k in ("invalid_unaware", "invalid_aware", "missing_aware", "cds_shortfall",
                  *(f"n_{s}" for s in strategies)):
            if k in stats.columns:
                total[k] = int(stats[k].sum())
        for rec in [*stats.to_dict("records"), total]:
            rec = {"setting": setting, **rec}
            line = {"Setting": SETTING_LABELS.get(setting, setting)} if several else {}
            line.update({"Culture": rec["culture"], "Valid": str(int(rec["valid"])), "Same": str(int(rec["same"])),
                         "Diff": str(int(rec["diff"]))})
            if pd.isna(rec["diff_rate"]):
                line["Diff rate (%)"] = MISSING
                reasons.add("Diff rate (%)", f"{setting}/{rec['culture']}", "no question with two valid answers")
                rec["status"], rec["reason"] = "missing", "diff_rate: no question with two valid answers"
            else:
                line["Diff rate (%)"] = f"{100 * rec['diff_rate']:.1f}"
            for s in strategies:
                col = f"{s} pairs"
                if f"n_{s}" in rec and not pd.isna(rec[f"n_{s}"]):
                    line[col] = str(int(rec[f"n_{s}"]))
                else:
                    line[col] = MISSING
                    reasons.add(col, f"{setting}/{rec['culture']}", f"no n_{s} column in stats.csv")
            line["Invalid (unaware / aware)"] = (
                f"{int(rec.get('invalid_unaware', 0))} / {int(rec.get('invalid_aware', 0))}"
                if "invalid_unaware" in rec else MISSING
            )
            rec.setdefault("status", "ok")
            rec.setdefault("reason", "")
            records.append(rec)
            shown.append(line)
    notes = [
        "Valid: questions of the pool with a valid culture-unaware and a valid culture-aware answer for the culture; "
        "same / diff: the two answers agree / differ; diff rate = diff / valid. CRQPC pairs: the differing answers "
        "(the training data); RDS and CDS: the control sets of the same size (random answers; agreeing answers).",
        "Invalid: questions whose culture-unaware / culture-aware answer was missing or invalid (not counted as valid).",
    ]
    shortfall = [r for r in records if r.get("cds_shortfall") and r["culture"] != "Total"]
    if shortfall:
        notes.append("CDS shortfall (fewer agreeing answers than CRQPC pairs): "
                     + ", ".join(f"{r['setting']}/{r['culture']} {int(r['cds_shortfall'])}" for r in shortfall) + ".")
    for setting in ("culture_aware", "cross_culture"):
        if setting not in configured:
            notes.append(f"{MISSING} {SETTING_LABELS[setting]} pairs: not collected ({setting} is not in pairs.settings).")
    notes += reasons.notes()
    frame = pd.DataFrame.from_records(records)
    if not records:
        display = pd.DataFrame([{"Culture": MISSING}])
    else:
        display = pd.DataFrame(shown)
    return Table(frame, display, notes,
                 sections=[s for s in sections if s] + [i for i, r in enumerate(shown) if r["Culture"] == "Total"])


# --- 8. question filtering ------------------------------------------------------------------------


FILTER_STAGES = {
    "input": ("", "questions generated (or taken from the authors' released pool)"),
    "exact_duplicate": ("paper (1)", "same text as a WVS item or an earlier question"),
    "unexplained_numeric_scale": ("paper (2)", "options are bare numbers and the question explains no scale"),
    "strip_number_prefix": ("paper (3)", "number prefixes stripped from the options (rewrites, drops none)"),
    "endpoint_card": ("paper (4)", "numeric options rewritten as an endpoint card; questions that do not fit dropped"),
    "near_duplicate": ("ours", "TF-IDF cosine ≥ {threshold} with a WVS evaluation item or an earlier question"),
    "per_topic_budget": ("ours", "a seeded sample of at most {per_topic} questions per topic"),
}


def _counts(frame: pd.DataFrame, path) -> pd.DataFrame:
    """filter_counts.csv / topic_counts.csv with n_kept/n_dropped (older files: kept/dropped)."""
    frame = frame.rename(columns={"kept": "n_kept", "dropped": "n_dropped"})
    missing = [c for c in ("stage", "n_kept", "n_dropped") if c not in frame.columns]
    if missing:
        raise CultureSPAError(f"{path}: missing columns {missing}")
    return frame


def question_filtering(inputs: Mapping, settings: Mapping) -> Table:
    counts = _counts(io.read_csv(inputs["filter_counts"]), inputs["filter_counts"])
    q = settings.get("questions") or {}
    fill = {"threshold": q.get("near_duplicate_threshold", "?"), "per_topic": q.get("per_topic", "?")}
    records, shown = [], []
    for rec in counts.to_dict("records"):
        origin, what = FILTER_STAGES.get(rec["stage"], ("unknown", ""))
        what = what.format(**fill)
        records.append({"stage": rec["stage"], "filter": origin, "description": what,
                        "n_kept": int(rec["n_kept"]), "n_dropped": int(rec["n_dropped"])})
        shown.append({"Stage": rec["stage"], "Filter": origin or "(input)",
                      "What it does": what, "Kept": f"{int(rec['n_kept']):,}", "Dropped": f"{int(rec['n_dropped']):,}"})
    notes = [
        f"Question source: {settings.get('source', '?')}. Paper (1)-(4): the paper's four filters, in its order, "
        "as the authors' notebook applies them; ours: added by this workflow (near duplicates, so that no evaluation "
        "item leaks into the training pairs, and the per-topic budget of the run).",
        "Kept: questions after the stage; dropped: questions the stage removed.",
    ]
    return Table(csv_frame(records), pd.DataFrame(shown), notes,
                 align=["l", "l", "p{0.42\\linewidth}", "r", "r"])


# --- 9. topic distribution -------------------------------------------------------------------------


def topic_distribution(inputs: Mapping, settings: Mapping) -> Table:
    counts = _counts(io.read_csv(inputs["topic_counts"]), inputs["topic_counts"])
    counts = counts[counts["topic"].astype(str) != "all"].copy()
    counts["topic"] = counts["topic"].astype(int)
    stages = list(dict.fromkeys(counts["stage"]))
    first, last = stages[0], stages[-1]
    pool = io.read_jsonl(inputs["pool"])
    in_pool = Counter(int(r["topic"]) for r in pool)
    configured = list(settings.get("pair_settings") or [])
    pair_files = dict(zip(configured, as_list(inputs.get("pair_topics", []))))
    pairs = {}
    for setting, path in pair_files.items():
        t = io.read_csv(path, required=["set", "topic", "n_pairs"])
        t = t[t["set"] == "CRQPC"]
        pairs[setting] = t.groupby("topic")["n_pairs"].sum().to_dict()
    records, shown = [], []
    for topic, name in enumerate(TOPIC_NAMES):
        at = counts[counts.topic == topic]
        n_in = at[at.stage == first]["n_kept"]
        n_out = at[at.stage == last]["n_kept"]
        rec = {"topic": topic, "topic_name": name,
               "n_input": int(n_in.iloc[0]) if len(n_in) else pd.NA,
               "n_after_filters": int(n_out.iloc[0]) if len(n_out) else pd.NA,
               "n_pool": in_pool.get(topic, 0)}
        line = {"Topic": str(topic), "Name": name, "Generated": _int(rec["n_input"]),
                "After filters": _int(rec["n_after_filters"]), "In pool": str(rec["n_pool"])}
        for setting, by_topic in pairs.items():
            rec[f"crqpc_pairs_{setting}"] = int(by_topic.get(topic, 0))
            line[f"CRQPC pairs ({SETTING_LABELS.get(setting, setting)})" if len(pairs) > 1 else "CRQPC pairs"] = \
                str(rec[f"crqpc_pairs_{setting}"])
        records.append(rec)
        shown.append(line)
    total = {"Topic": "", "Name": "Total"}
    for col in list(shown[0])[2:]:
        vals = [r[col] for r in shown]
        total[col] = MISSING if MISSING in vals else f"{sum(int(v.replace(',', '')) for v in vals):,}"
    shown.append(total)
    for r in shown:
        for col in ("Generated", "After filters"):
            if r[col] != MISSING and r is not total:
                r[col] = f"{int(r[col]):,}"
    notes = [
        f"Generated: questions in the {settings.get('source', '?')} pool before filtering; after filters: after the "
        f"last filter ({last}); in pool: the final pool after the per-topic budget of the run.",
        ("CRQPC pairs: culture-related QA pairs whose question is of the topic, summed over the cultures."
         if pairs else "No CRQPC pairs per topic: no pair setting is configured (pairs.settings)."),
    ]
    bad = [r for r in shown[:-1] if MISSING in (r["Generated"], r["After filters"])]
    if bad:
        notes.append(f"{MISSING} topics {', '.join(r['Topic'] for r in bad)}: no row in topic_counts.csv.")
    cols = list(shown[0])
    return Table(csv_frame(records), pd.DataFrame(shown, columns=cols), notes,
                 align=["r", "l"] + ["r"] * (len(cols) - 2),
                 sections=[len(shown) - 1])


def _int(x) -> str:
    return MISSING if x is pd.NA or pd.isna(x) else str(int(x))


# --- 10. example questions -------------------------------------------------------------------------


def example_questions(inputs: Mapping, settings: Mapping) -> Table:
    from ..filters import to_item
    from ..prompts import render_options

    pool = io.read_jsonl(inputs["pool"])
    first: dict[int, dict] = {}
    for rec in pool:
        first.setdefault(int(rec["topic"]), rec)
    records, shown, missing = [], [], []
    for topic, name in enumerate(TOPIC_NAMES):
        rec = first.get(topic)
        if rec is None:
            missing.append(str(topic))
            records.append({"topic": topic, "topic_name": name, "qid": "", "question": "", "options": "",
                            "status": "missing", "reason": "no question of this topic in the pool"})
            shown.append({"Topic": name, "Question": MISSING, "Options": MISSING})
            continue
        options = render_options(to_item(rec))
        records.append({"topic": topic, "topic_name": name, "qid": rec["qid"], "question": rec["question"],
                        "options": options, "status": "ok", "reason": ""})
        shown.append({"Topic": name, "Question": rec["question"], "Options": options})
    notes = [f"Options numbered as the answering prompt shows them. Question source: {settings.get('source', '?')}."]
    if missing:
        notes.append(f"{MISSING} topics {', '.join(missing)}: no question of the topic in the pool.")
    return Table(csv_frame(records), pd.DataFrame(shown), notes,
                 align=["p{0.18\\linewidth}", "p{0.42\\linewidth}", "p{0.32\\linewidth}"])
