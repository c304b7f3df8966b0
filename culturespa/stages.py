"""What each workflow step does, end to end, given file paths and config sections.

The Snakemake scripts call exactly one function here; each function reads its inputs, calls the
modules that hold the method, and writes its outputs atomically. Tests call them directly.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from . import filters, io, methods, pairs, questions
from .errors import DataFileError
from .cultures import Culture, catalogue_from_config
from .survey import Survey
from .wvs import load_items

log = logging.getLogger("culturespa")


# --- models ---------------------------------------------------------------------------------


def convert_packaged_gguf(package: str, filename: str, out_dir: str) -> None:
    from .models import convert_gguf, packaged_file

    started = time.perf_counter()
    convert_gguf(packaged_file(package, filename), Path(out_dir))
    log.info("converted %s from %s in %.1f s", filename, package, time.perf_counter() - started)


def load_engine(model: Mapping, settings: Mapping, model_object=None, tokenizer=None):
    """The answering engine for a model spec (from rules/common.smk: model_spec) and the
    config's ``answering`` section; ``model_object``/``tokenizer`` for an already loaded
    (e.g. adapter-merged) model."""
    from .engine import Engine

    options = dict(
        batch_size=settings.get("batch_size", 16),
        choice=settings.get("choice", "sample"),
        temperature=settings.get("temperature", 0.6),
        top_p=settings.get("top_p", 0.9),
        max_new_tokens=settings.get("max_new_tokens", 256),
        compile=settings.get("compile", "auto"),
        name=model["name"],
    )
    if model_object is not None:
        return Engine(model_object, tokenizer, **options)
    return Engine.load(model["path"], dtype=model.get("dtype", "auto"), chat_template=model.get("chat_template"), **options)


def generation_function(model: Mapping, settings: Mapping):
    """Step 1's model: (chats, seed) -> replies, sampled at the config's temperature and top_p."""
    from .engine import Prompt

    engine = None  # loaded at the first call: a rerun that has nothing left to ask loads no model

    def generate(chats, seed):
        nonlocal engine
        if engine is None:
            engine = load_engine(model, {"batch_size": settings["batch_size"]})
        prompts = [Prompt(f"g{i}", system, user, []) for i, (system, user) in enumerate(chats)]
        return engine.generate_texts(prompts, settings["temperature"], settings["top_p"], settings["max_new_tokens"], seed)

    return generate


# --- step 1 ---------------------------------------------------------------------------------


def _generation_fingerprint(model: Mapping, topic: int, settings: Mapping) -> str:
    """What decides the questions of a topic, in the order they come (per_topic and the attempt
    bound only decide when to stop, so a rerun with more of either continues a partial)."""
    import hashlib
    import json

    keys = ("batch_size", "temperature", "top_p", "max_new_tokens", "seed")
    spec = {k: model.get(k) for k in ("name", "path", "dtype", "chat_template")}
    if spec["path"] and Path(spec["path"]).exists():
        spec["path"] = str(Path(spec["path"]).resolve())
    blob = json.dumps({"model": spec, "topic": topic, **{k: settings.get(k) for k in keys}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_generation_partial(partial: Path, fingerprint: str) -> tuple[list[dict], dict | None]:
    """(records, state) saved by an interrupted run of the same generation job, else ([], None).

    The partial is a JSONL file, rewritten atomically after every round: a header
    ``{"fingerprint", "state"}`` and then the questions so far. A corrupt partial is an error
    naming the file (io.read_jsonl), never half used."""
    if not partial.exists():
        return [], None
    lines = io.read_jsonl(partial)
    if lines and "fingerprint" not in lines[0] and all("qid" in r for r in lines):
        log.warning("%s: a partial of an older version (questions only): continuing from it, counts restart", partial)
        return lines, None
    if not lines or "fingerprint" not in lines[0]:
        raise DataFileError(f"{partial}: not a question-generation checkpoint (no header line); delete it to start over")
    if lines[0]["fingerprint"] != fingerprint:
        log.warning("%s belongs to another generation job (model or settings changed): starting over", partial)
        return [], None
    return lines[1:], lines[0]["state"]


def generate_topic_questions(model: Mapping, topic: int, wvs_questions: str, settings: Mapping, out_path: str, stats_path: str) -> None:
    """Self-instruct generation for one topic; resumable through ``<out>.partial``: a killed job
    continues where it stopped and ends with the questions and counts of an uninterrupted one."""
    partial = Path(f"{out_path}.partial")
    fingerprint = _generation_fingerprint(model, topic, settings)
    existing, state = _read_generation_partial(partial, fingerprint)
    if existing or state:
        log.info("resuming topic %d from %d questions in %s (%s)", topic, len(existing), partial, state)

    def checkpoint(records, stats):
        io.write_jsonl(partial, [{"fingerprint": fingerprint, "state": stats.state()}, *records])
        log.info("topic %d: %d/%d questions (attempts %d, unparseable %d)", topic, len(records),
                 settings["per_topic"], stats.attempts, stats.invalid)

    generate = generation_function(model, settings)
    try:
        records, stats = questions.generate_topic(
            generate,
            topic,
            load_items(wvs_questions),
            settings["per_topic"],
            seed=settings["seed"],
            batch_size=settings["batch_size"],
            max_attempts=int(settings["max_attempts_factor"] * settings["per_topic"]),
            existing=existing,
            on_round=checkpoint,
            state=state,
        )
    except questions.GenerationExhausted as e:
        raise questions.GenerationExhausted(
            f"{e} (config: questions.max_attempts_factor={settings['max_attempts_factor']} x "
            f"questions.per_topic={settings['per_topic']}); the {len(e.records)} questions so far are kept in "
            f"{partial}: a rerun with a larger bound continues from them",
            e.records, e.stats,
        ) from None
    io.write_json(stats_path, stats.as_dict())
    io.write_jsonl(out_path, records)
    partial.unlink(missing_ok=True)


def _read_raw_pool(raw_files: Sequence[str], source: str) -> list[dict]:
    if source == "released":
        return filters.load_released_pool(Path(raw_files[0]).parent)
    return [rec for path in raw_files for rec in io.read_jsonl(path)]


def _at_most_per_topic(records: list[dict], per_topic: int, seed: int) -> list[dict]:
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


def filter_question_pool(raw_files: Sequence[str], source: str, wvs_questions: str, settings: Mapping, outputs) -> None:
    records = _read_raw_pool(raw_files, source)
    kept, report = filters.filter_pool(records, load_items(wvs_questions), settings["near_duplicate_threshold"])
    kept = _at_most_per_topic(kept, settings["per_topic"], settings["seed"])
    counts = pd.DataFrame(report.table())
    counts = pd.concat([counts, pd.DataFrame([{"stage": "per_topic_budget", "topic": "all", "n_kept": len(kept),
                                               "n_dropped": report.rows[-1][1] - len(kept)}])], ignore_index=True)
    io.write_csv(outputs.counts, counts[counts.topic == "all"].drop(columns="topic"))
    io.write_csv(outputs.topics, counts[counts.topic != "all"])
    io.write_jsonl(outputs.dropped, report.dropped)
    io.write_jsonl(outputs.pool, kept)
    for stage, n_kept, n_dropped in report.rows:
        log.info("%-28s kept %6d dropped %5d", stage, n_kept, n_dropped)


# --- step 2 ---------------------------------------------------------------------------------


def answer_question_pool(
    model: Mapping,
    pool_path: str,
    method: str,
    culture: Mapping | None,
    settings: Mapping,
    out_path: str,
    survey_files=(None, None),
    catalogue: Sequence[Mapping] | None = None,
) -> None:
    """Every pooled question answered once, culture-unaware or as ``culture`` (P1 or P2)."""
    from .engine import Prompt, answer_to_file
    from .parsing import PAIRS_MAX_ANSWER

    items = filters.to_items(io.read_jsonl(pool_path))
    cultures = list(catalogue_from_config({"cultures": catalogue}).values()) if catalogue else []
    survey = Survey.load(*survey_files) if survey_files[0] else None
    this = Culture(**culture) if culture else None
    chat = methods.build_prompts(method, items, this, survey, cultures)
    engine = load_engine(model, settings)
    answer_to_file(
        engine,
        [Prompt(p.key, p.system, p.user, list(p.options)) for p in chat],
        out_path,
        mode=settings["mode"],
        seed=settings["seed"],
        max_answer=PAIRS_MAX_ANSWER,
    )


# --- step 3 ---------------------------------------------------------------------------------


def _as_answers(records: Sequence[Mapping]) -> list[dict]:
    return [{"qid": r["key"], "choice": r.get("choice"), "reply": r.get("reply")} for r in records]


def collect_pair_sets(pool_path: str, unaware_path: str, aware_paths: Mapping[str, str], strategies, seed: int, outputs) -> None:
    """CRQPC / RDS / CDS per culture and joint, plus per-culture and per-topic statistics."""
    pool = io.read_jsonl(pool_path)
    sets = pairs.build_pairs(
        pool,
        _as_answers(io.read_jsonl(unaware_path)),
        {c: _as_answers(io.read_jsonl(p)) for c, p in aware_paths.items()},
        seed,
    )
    for path in outputs.pairs:
        strategy, who = Path(path).parent.name, Path(path).stem
        name = strategy.upper()
        records = sets.joint(name) if who == "joint" else sets.sets[name][who]
        io.write_jsonl(path, records)
    stats = pd.DataFrame(sets.stats_rows())
    io.write_csv(outputs.stats, stats)
    io.write_csv(outputs.topics, pd.DataFrame(sets.topic_rows()))
    for row in stats.itertuples():
        log.info("%s: valid %d, same %d, diff %d (diff rate %.3f), CRQPC %d", row.culture, row.valid, row.same,
                 row.diff, row.diff_rate, row.n_CRQPC)


# --- step 4 ---------------------------------------------------------------------------------


def system_prompt_function(setting: str, catalogue: Sequence[Mapping], survey_files) -> callable:
    """culture code -> the system prompt a training example gets (P1, or P2 for the CCT variant)."""
    cultures = catalogue_from_config({"cultures": catalogue})
    survey = Survey.load(*survey_files) if setting == methods.P2 else None
    return lambda code: methods.system_prompt(
        setting, cultures[code],
        methods.neighbours(code, list(cultures.values()), survey) if setting == methods.P2 else None,
    )


def finetune_variant(model, wildcards, inputs, preset, catalogue, seed, checkpoints, outputs) -> None:
    from .finetune import TrainSettings, no_pairs_reason, train_adapter

    records = io.read_jsonl(inputs.pairs)
    n_all = len(records)
    fraction = int(wildcards.fraction)
    if fraction < 100:
        records = pairs.nested_fraction(records, fraction / 100, seed)
    log.info("training %s adapter on %d pairs (%d%% of %s), preset %s", preset["scope"], len(records), fraction,
             inputs.pairs, preset["name"])
    settings = TrainSettings.from_preset(preset["settings"], variant=preset["scope"])
    stats = train_adapter(
        model["path"],
        records,
        system_prompt_function(wildcards.setting, catalogue, (inputs.questions, inputs.proportions)),
        outputs.adapter,
        settings,
        checkpoints,
        outputs.loss,
        outputs.stats,
        # 0 pairs: the outputs say "not trained" with this reason, and the run goes on
        empty_reason=no_pairs_reason(getattr(wildcards, "country", None), wildcards.data, n_all, fraction),
    )
    log.info("training stats: %s", stats)


# --- step 5 ---------------------------------------------------------------------------------

PERSONA_FREE_KEY = "none"  # the persona column of culture-unaware answers (scoring.NO_PERSONA)


def evaluation_items(survey: Survey, max_items: int | None, seed: int = 0):
    """All evaluation items, or a seeded sample of ``max_items`` of them (in survey order)."""
    import random

    if not max_items or max_items >= len(survey.items):
        return survey.items
    keep = set(random.Random(seed).sample(range(len(survey.items)), max_items))
    return [it for i, it in enumerate(survey.items) if i in keep]


def _adapter_engine(model: Mapping, adapter_dir: str, settings: Mapping):
    from .finetune import load_for_inference
    from .models import load_tokenizer

    merged = load_for_inference(model["path"], adapter_dir, dtype=model.get("dtype", "auto"))
    return load_engine(model, settings, merged, load_tokenizer(model["path"], model.get("chat_template")))


def evaluate_wvs(model, variant, method, run, inputs, countries, catalogue, settings, evaluation, out_path) -> None:
    """One method for every country: answers (with persona, choice, probs) in one JSONL."""
    from .engine import Prompt, answer_to_file
    from .scoring import NO_PERSONA
    from .untrained import evaluation_reason, not_answered

    survey = Survey.load(inputs.questions, inputs.proportions)
    items = evaluation_items(survey, evaluation.get("max_items"))
    order = io.read_json(inputs.examples)
    cultures = catalogue_from_config({"cultures": catalogue})
    personas = [None] if method in methods.PERSONA_FREE else [cultures[c] for c in countries]
    adapters = {Path(a).parent.name: a for a in inputs.adapters}  # specific: country -> adapter
    unanswered = {a: why for a in inputs.adapters if (why := evaluation_reason(a))}  # adapters not trained
    engine = None if variant != "base" and (len(adapters) != 1 or unanswered) else (
        load_engine(model, settings) if variant == "base" else _adapter_engine(model, inputs.adapters[0], settings)
    )
    combined = []
    for culture in personas:
        persona = culture.code if culture else NO_PERSONA
        adapter = inputs.adapters[0] if len(adapters) == 1 else adapters.get(persona)
        chat = methods.build_prompts(method, items, culture, survey, list(cultures.values()), order)
        if adapter in unanswered:  # no model loaded: every answer is recorded as not answered, with why
            log.warning("%s: %s: its %d answers are recorded as not answered", persona, unanswered[adapter], len(chat))
            records = not_answered([p.key for p in chat], unanswered[adapter])
        else:
            records = answer_to_file(
                engine or _adapter_engine(model, adapter, settings),
                [Prompt(p.key, p.system, p.user, list(p.options)) for p in chat],
                f"{out_path}.{persona}.part",
                mode=settings["mode"],
                seed=settings["seed"] + 1000 * run,
            )
        combined += [{"persona": persona, "method": method, "run": run, **r} for r in records]
    io.write_jsonl(out_path, combined)
    for culture in personas:
        Path(f"{out_path}.{culture.code if culture else NO_PERSONA}.part").unlink(missing_ok=True)


def _answers_frame(paths: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame([r for p in paths for r in io.read_jsonl(p)])
    return frame.rename(columns={"key": "qid"})


def score_variant(model_name, variant, inputs, countries, scoring, outputs) -> None:
    from .scoring import ScoringSettings, score_answers, topic_scores

    full = Survey.load(inputs.questions, inputs.proportions)
    answers = _answers_frame(inputs.answers)
    # score on the items that were asked (evaluation.max_items), baselines included
    asked = set(answers["qid"])
    survey = Survey([it for it in full.items if it.qid in asked], full.countries, full.dists)
    log.info("scoring %d answers on %d items", len(answers), len(survey.items))
    settings = ScoringSettings.from_config(scoring)
    tables, matrices, topics = [], [], []
    for run, frame in answers.groupby("run"):
        table, mats = score_answers(frame, survey, countries, model_name, settings, baselines=variant == "base")
        tables.append(table.assign(variant=variant, run=run))
        matrices.append(mats.assign(variant=variant, run=run))
        topics.append(topic_scores(frame, survey, countries, model_name).assign(variant=variant, run=run))
    io.write_csv(outputs.table, pd.concat(tables, ignore_index=True))
    io.write_csv(outputs.matrices, pd.concat(matrices, ignore_index=True))
    io.write_csv(outputs.topics, pd.concat(topics, ignore_index=True))


def aggregate_alignment(table_paths, matrix_paths, topic_paths, outputs) -> None:
    """Mean over evaluation runs; ``run_sd`` is the spread between runs, ``n_runs`` how many."""
    keys = ["model", "variant", "method", "country", "metric"]
    numbers = ["value", "ci_low", "ci_high", "n_valid", "n_invalid", "run"]
    table = pd.concat([io.read_csv(p, required=keys, numeric=numbers) for p in table_paths], ignore_index=True)
    table["reason"] = table.get("reason")  # why a value is empty (scoring.py); older score files lack it
    summary = table.groupby(keys, sort=False, dropna=False).agg(
        value=("value", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"),
        n_valid=("n_valid", "sum"), n_invalid=("n_invalid", "sum"), n_runs=("run", "nunique"),
        run_sd=("value", "std"), reason=("reason", "first"),
    ).reset_index()
    io.write_csv(outputs.table, summary)
    mats = pd.concat([io.read_csv(p, required=["variant", "kind", "method", "row", "col"], numeric=["value", "run"])
                      for p in matrix_paths], ignore_index=True)
    mats["method"] = mats["method"].fillna("")
    mean = mats.groupby(["variant", "kind", "method", "row", "col"], sort=False)["value"].mean().reset_index()
    io.write_csv(outputs.matrices, mean)
    topics = pd.concat([io.read_csv(p, required=keys + ["topic", "topic_name"],
                                    numeric=["value", "n_valid", "n_invalid", "run"]) for p in topic_paths],
                       ignore_index=True)
    topics["reason"] = topics.get("reason")
    by_topic = topics.groupby(["model", "variant", "method", "country", "topic", "topic_name", "metric"], sort=False).agg(
        value=("value", "mean"), n_valid=("n_valid", "sum"), n_invalid=("n_invalid", "sum"), n_runs=("run", "nunique"),
        reason=("reason", "first"),
    ).reset_index()
    io.write_csv(outputs.topics, by_topic)
    for row in summary[(summary.country == "AVG") & (summary.metric == "paper_score")].itertuples():
        log.info("%-40s %-32s paper_score %.2f [%.2f, %.2f]", row.variant, row.method, row.value, row.ci_low, row.ci_high)


# --- general ability ------------------------------------------------------------------------


def evaluate_mmlu(model, variant, inputs, settings, out_path) -> None:
    from . import mmlu
    from .errors import ConfigError
    from .finetune import load_for_inference
    from .models import load, load_tokenizer
    from .untrained import evaluation_reason

    if len(inputs.adapters) > 1:
        raise ConfigError(f"mmlu.variants: {variant} has one adapter per culture; compare a joint variant")
    bench = mmlu.load(inputs.zip, inputs.mapping, settings.get("subjects"), settings.get("max_per_subject"),
                      settings.get("seed", 0))
    why = evaluation_reason(inputs.adapters[0]) if variant != "base" else None
    if why:  # no model loaded: the comparison reports the adapter's accuracy as missing, with why
        log.warning("%s: %s: MMLU recorded as not answered", variant, why)
        io.write_jsonl(out_path, mmlu.not_answered(bench, why))
        return
    if variant == "base":
        net, tokenizer = load(model["path"], dtype=model.get("dtype", "auto"), chat_template=model.get("chat_template"))
    else:
        net = load_for_inference(model["path"], inputs.adapters[0], dtype=model.get("dtype", "auto"))
        tokenizer = load_tokenizer(model["path"], model.get("chat_template"))
    io.write_jsonl(out_path, mmlu.evaluate(net, tokenizer, bench, k_shot=settings.get("k_shot", 5)))


def compare_mmlu(model_name, base_path, variant_paths: Mapping[str, str], seed: int, out_path) -> None:
    from . import mmlu

    base = io.read_jsonl(base_path)
    frames = [mmlu.compare(base, io.read_jsonl(p), model_name, variant, seed=seed) for variant, p in variant_paths.items()]
    table = pd.concat(frames, ignore_index=True)
    io.write_csv(out_path, table)
    log.info("MMLU change against the base model:\n%s", table[table.metric == "delta"].to_string(index=False))


# --- figures ---------------------------------------------------------------------------------


def export_rulegraph(snakefile: str, config: Mapping, out_path: str, target: str = "all") -> None:
    """Ask Snakemake for this workflow's rule graph under the run's own config (no lock: it only
    reads the DAG while the calling run holds the lock)."""
    import subprocess
    import sys
    import tempfile

    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        yaml.safe_dump(dict(config), fh)
    cmd = [sys.executable, "-m", "snakemake", target, "--rulegraph", "--nolock", "--snakefile", snakefile,
           "--configfile", fh.name]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        Path(fh.name).unlink(missing_ok=True)
    log.info("%s\n%s", " ".join(cmd), done.stderr)
    if done.returncode != 0 or "digraph" not in done.stdout:
        raise RuntimeError(f"snakemake --rulegraph failed ({done.returncode}): {done.stderr[-2000:]}")
    io.write_text(out_path, done.stdout[done.stdout.index("digraph"):])
