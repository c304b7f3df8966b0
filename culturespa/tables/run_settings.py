"""Tables of the run's settings (hyperparameters) and of the prompt texts (prompt templates)."""

from __future__ import annotations

import string
from typing import Any, Mapping, Sequence

import pandas as pd

from ..methods import CULTURE_UNAWARE, LABELS as METHOD_LABELS, P1
from .formats import Table


# --- 11. hyperparameters -----------------------------------------------------------------------


HYPER_GROUPS = [
    ("answering", "Answering", ("mode", "choice", "temperature", "top_p", "max_new_tokens", "batch_size", "seed")),
    ("questions", "Question generation", ("source", "per_topic", "batch_size", "max_attempts_factor", "temperature",
                                          "top_p", "max_new_tokens", "near_duplicate_threshold", "seed")),
    ("pairs", "Pairs", ("settings", "strategies", "seed")),
    ("evaluation", "Evaluation", ("base_methods", "tuned_methods", "runs", "max_items")),
    ("scoring", "Scoring", ("n_boot", "seed", "ci_level", "uniform_draws", "majority_baseline")),
    ("mmlu", "MMLU", ("k_shot", "subjects", "max_per_subject", "variants", "format", "shots", "letters", "seed")),
]
NONE_MEANS = {"max_items": "all items", "subjects": "all", "max_per_subject": "all"}


def _value(key: str, v: Any) -> str:
    if v is None:
        return NONE_MEANS.get(key, "none")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(key, x) for x in v)
    if isinstance(v, Mapping):
        return ", ".join(f"{k}: {_value(k, x)}" for k, x in v.items())
    return str(v)


def sft_settings(preset: Mapping) -> dict[str, dict]:
    """The settings each scope trains with (defaults of TrainSettings filled in)."""
    from ..finetune import VARIANTS, TrainSettings

    return {scope: TrainSettings.from_preset(preset, scope).to_dict() for scope in VARIANTS}


def hyperparameters(inputs: Mapping, settings: Mapping) -> Table:
    hyper = settings["hyper"]
    records, shown = [], []

    def add(group, key, value):
        records.append({"group": group, "setting": key, "value": value})
        shown.append({"Group": group, "Setting": key, "Value": value})

    sft = hyper.get("sft") or {}
    if sft:
        group = f"Fine-tuning (preset {sft['preset']})"
        by_scope = sft_settings(sft["settings"])
        joint, specific = by_scope["joint"], by_scope["specific"]
        for key in joint:
            a, b = _value(key, joint[key]), _value(key, specific[key])
            add(group, key, a if a == b else f"{a} (joint), {b} (specific)")
        add(group, "variants", _value("variants", sft.get("variants", [])))
    for key, title, names in HYPER_GROUPS:
        part = hyper.get(key)
        if part is None:
            continue
        if key == "mmlu" and not part.get("enabled"):
            add(title, "configured", "no (mmlu.enabled is false)")
            continue
        for name in names:
            if name in part:
                add(title, name, _value(name, part[name]))
    if hyper.get("countries"):
        add("Countries", "countries", _value("countries", hyper["countries"]))
    display = pd.DataFrame(shown)
    groups = list(display["Group"])
    starts = [i for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    display["Group"] = [g if i in starts else "" for i, g in enumerate(groups)]
    notes = [
        "Fine-tuning: the preset sft.preset names (config sft.presets, else the built-in paper/demo presets), with "
        "the defaults of culturespa.finetune.TrainSettings filled in; effective batch = per-device batch x "
        "gradient accumulation; max_steps > 0 overrides epochs.",
    ]
    return Table(pd.DataFrame(records), display, notes,
                 align=["l", "l", "p{0.5\\linewidth}"], sections=starts)


def hyperparameter_settings(sft: Mapping, answering: Mapping, questions: Mapping, pairs: Mapping,
                            evaluation: Mapping, scoring: Mapping, mmlu: Mapping, *, countries: Sequence[str]) -> dict:
    """What the hyperparameters table shows (only the keys it lists, so that a key it does not
    show, such as answering.compile, does not re-render it)."""
    from ..finetune import PRESETS

    name = sft["preset"]
    presets = {**PRESETS, **(sft.get("presets") or {})}
    sections = {"answering": answering, "questions": questions, "pairs": pairs, "evaluation": evaluation,
                "scoring": scoring, "mmlu": mmlu}
    shown = {key: {k: sections[key][k] for k in names if k in sections[key]} for key, _, names in HYPER_GROUPS}
    shown["mmlu"]["enabled"] = bool(mmlu.get("enabled"))
    return {
        "hyper": {
            "sft": {"preset": name, "settings": presets[name], "variants": list(sft["variants"])},
            **shown,
            "countries": list(countries),
        },
    }


def prompt_templates_settings() -> dict:
    """The prompt texts come from culturespa/prompts.py (the rule's input), not the config."""
    return {}


# --- 12. prompt templates ------------------------------------------------------------------------


def _placeholders(template: str) -> str:
    """The template as the model sees it, placeholders kept as {name} (literal {{ }} unescaped)."""
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    return template.format(**{f: "{" + f + "}" for f in fields})


def prompt_rows() -> list[tuple[str, str, str, str]]:
    """(name, used by, role, template) for every prompt text of culturespa/prompts.py."""
    from .. import prompts
    from ..methods import P1_P3, P2, P2_P3, P3

    lab = lambda *ms: ", ".join(METHOD_LABELS[m] for m in ms)  # noqa: E731
    return [
        ("SYSTEM_CULTURE_UNAWARE", lab(CULTURE_UNAWARE, P3), "system", prompts.SYSTEM_CULTURE_UNAWARE),
        ("SYSTEM_CULTURE_AWARE", lab(P1, P1_P3) + "; fine-tuning (culture-aware pairs)", "system",
         prompts.SYSTEM_CULTURE_AWARE),
        ("SYSTEM_CULTURE_AWARE + CROSS_CULTURE_THINKING", lab(P2, P2_P3) + "; fine-tuning (CCT pairs)", "system",
         prompts.SYSTEM_CULTURE_AWARE + prompts.CROSS_CULTURE_THINKING),
        ("USER_QUESTION", lab(CULTURE_UNAWARE, P1, P2) + "; fine-tuning; step 2 answers", "user",
         prompts.USER_QUESTION),
        ("USER_SELF_ALIGNMENT", lab(P3, P1_P3, P2_P3), "user", prompts.USER_SELF_ALIGNMENT),
        ("SELF_ALIGNMENT_EXAMPLE", f"{lab(P3)}: each of the {prompts.N_SELF_ALIGNMENT_EXAMPLES} examples", "user (part)",
         prompts.SELF_ALIGNMENT_EXAMPLE),
        ("SYSTEM_QUESTION_GENERATION", "Question generation (step 1)", "system", prompts.SYSTEM_QUESTION_GENERATION),
        ("USER_QUESTION_GENERATION", "Question generation (step 1)", "user", prompts.USER_QUESTION_GENERATION),
        ("GENERATION_EXAMPLE", "Question generation (step 1): each example", "user (part)", prompts.GENERATION_EXAMPLE),
    ]


def prompt_templates(inputs: Mapping, settings: Mapping) -> Table:
    records, shown = [], []
    for name, used_by, role, template in prompt_rows():
        text = _placeholders(template)
        records.append({"template": name, "used_by": used_by, "role": role, "text": text})
        shown.append({"Template": name, "Used by": used_by, "Role": role, "Text": text})
    notes = [
        "Texts as culturespa/prompts.py holds them (exactly the method's prompts, whitespace included); {name} is "
        "filled per question and culture: options as '1.text 2.text ...', {article}/{adjective} from the culture "
        "catalogue, P2's three most and least similar cultures by the paper score between survey majority answers.",
    ]
    return Table(pd.DataFrame(records), pd.DataFrame(shown), notes,
                 align=["p{0.17\\linewidth}", "p{0.15\\linewidth}", "l", "p{0.5\\linewidth}"])
