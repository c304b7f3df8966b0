"""General ability: MMLU accuracy of the base and fine-tuned models (mmlu.csv)."""

from __future__ import annotations

import math
from typing import Mapping

import pandas as pd

from .. import design, io
from ..design import BASE
from ..results import NO_ROW
from .cells import Reasons, csv_frame
from .formats import MISSING, Table


def general_ability_settings(mmlu: Mapping, sft: Mapping) -> dict:
    """The variants compared and the MMLU sample the note describes; the fine-tuned variants run
    (a compared variant outside them is 'not run')."""
    return {"variants": list(sft["variants"]),
            "mmlu": {k: mmlu.get(k) for k in ("variants", "subjects", "max_per_subject", "k_shot", "format", "shots")}}


# --- 6. general ability (MMLU) -----------------------------------------------------------------------


def general_ability(inputs: Mapping, settings: Mapping) -> Table:
    mmlu = settings.get("mmlu") or {}
    variants = list(mmlu.get("variants") or [])
    reasons = Reasons(every="every category")
    path = inputs.get("mmlu")
    if not path:
        why = "MMLU not run (mmlu.enabled is false or mmlu.variants is empty)"
        frame = csv_frame([{"variant": v, "category": "", "metric": "", "value": math.nan, "ci_low": math.nan,
                         "ci_high": math.nan, "n": pd.NA, "status": "missing", "reason": why} for v in variants or [""]])
        display = pd.DataFrame([{"Category": MISSING, "Base model": MISSING,
                                 **{design.variant_label(v): MISSING for v in variants}}])
        return Table(frame, display,
                     [f"{MISSING} every cell: {why}; set mmlu.enabled: true and name adapters in mmlu.variants."])
    table = io.read_csv(path, required=["variant", "category", "metric", "value", "ci_low", "ci_high", "n"])
    categories = list(dict.fromkeys(table["category"]))
    records, shown = [], []
    for cat in categories:
        line = {"Category": cat}
        sub = table[table.category == cat]
        base_rows = sub[sub.metric == "accuracy_base"]
        n = int(sub["n"].iloc[0]) if len(sub) else pd.NA
        line["n"] = str(n)
        if base_rows.empty or pd.isna(base_rows["value"].iloc[0]):
            line["Base model"] = MISSING
            reasons.add("Base model", cat, "no base accuracy in mmlu.csv")
            records.append({"variant": BASE, "category": cat, "metric": "accuracy", "value": math.nan,
                            "ci_low": math.nan, "ci_high": math.nan, "n": n, "status": "missing",
                            "reason": "no base accuracy in mmlu.csv"})
        else:
            b = base_rows.iloc[0]
            line["Base model"] = _pct(b.value, b.ci_low, b.ci_high)
            records.append({"variant": BASE, "category": cat, "metric": "accuracy", "value": b.value,
                            "ci_low": b.ci_low, "ci_high": b.ci_high, "n": n, "status": "ok", "reason": ""})
        for v in variants:
            label = design.variant_label(v)
            for metric, col in (("accuracy", label), ("delta", f"Δ {label}")):
                rows = sub[(sub.variant == v) & (sub.metric == metric)]
                if v not in settings.get("variants", [v]):
                    why = f"not run: {v} is not in sft.variants"
                elif rows.empty:
                    why = f"{NO_ROW} for {v}/{cat}/{metric} in mmlu.csv"
                elif pd.isna(rows["value"].iloc[0]):
                    reason = rows["reason"].iloc[0] if "reason" in rows else None  # mmlu.compare's (not trained)
                    why = reason if isinstance(reason, str) and reason else "no scored questions"
                else:
                    why = ""
                if why:
                    line[col] = MISSING
                    reasons.add(col, cat, why)
                    records.append({"variant": v, "category": cat, "metric": metric, "value": math.nan,
                                    "ci_low": math.nan, "ci_high": math.nan, "n": n, "status": "missing",
                                    "reason": why})
                    continue
                r = rows.iloc[0]
                line[col] = _pct(r.value, r.ci_low, r.ci_high, signed=metric == "delta")
                records.append({"variant": v, "category": cat, "metric": metric, "value": r.value,
                                "ci_low": r.ci_low, "ci_high": r.ci_high, "n": int(r.n), "status": "ok",
                                "reason": ""})
        shown.append(line)
    subjects = mmlu.get("subjects")
    notes = [
        "Accuracy in % (the CSV holds proportions) on MMLU test questions, "
        f"{mmlu.get('k_shot', 5)}-shot"
        + (f", subjects {', '.join(subjects)}" if subjects else ", every subject")
        + (f", at most {mmlu['max_per_subject']} per subject" if mmlu.get("max_per_subject") else "")
        + "; n: questions per category. In brackets the 95% bootstrap CI; Δ: the tuned model's accuracy minus the "
        "base model's on the same questions, with a paired bootstrap CI.",
        *reasons.notes(categories),
    ]
    return Table(csv_frame(records), pd.DataFrame(shown), notes)


def _pct(value, lo, hi, signed: bool = False) -> str:
    fmt = (lambda x: f"{100 * x:+.1f}") if signed else (lambda x: f"{100 * x:.1f}")
    text = fmt(value)
    if not (pd.isna(lo) or pd.isna(hi)):
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text
